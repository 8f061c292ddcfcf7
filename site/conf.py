"""Sphinx configuration of the course website (run by site/build_site.py, which stages the sources).

Sphinx + MyST-NB reads the committed lessons as they are: execution is off, the pages show the
outputs stored in the notebooks. Everything a page needs is copied into the site, so it builds and
reads with no network: the theme (sphinx-book-theme) and MathJax 3 (``tex-svg-full.js`` from the
django-static-mathjax package -- a plain copy of MathJax's files -- one self-contained script with
every TeX extension and the SVG fonts built in) come from PyPI; Sphinx's default would load MathJax
from a CDN when the page is viewed.
"""
import importlib.util
import pathlib

project = "dipcourse"
author = "the dipcourse authors"
html_title = "Deep image prior — a course"

extensions = ["myst_nb"]
exclude_patterns = ["**.ipynb_checkpoints"]

# Pages show the committed outputs; nothing is executed.
nb_execution_mode = "off"
nb_merge_streams = True
# No ipywidgets JavaScript from a CDN: build_site.py turns widget outputs into a note and their picture.
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath"]

_MATHJAX_PACKAGE = pathlib.Path(importlib.util.find_spec("mathjax").origin).parent
MATHJAX = _MATHJAX_PACKAGE / "static" / "mathjax" / "es5" / "tex-svg-full.js"
mathjax_path = MATHJAX.name  # relative: served from the site's own _static/

html_theme = "sphinx_book_theme"
html_static_path = ["_static", str(MATHJAX)]
html_css_files = ["dipcourse.css"]
html_copy_source = False  # the staged notebooks are not the lessons: students get those from the repository
html_theme_options = {
    "use_download_button": False,
    "show_toc_level": 2,
}
# Light pages: the lessons' figures have white backgrounds (and the theme logs an error without a mode).
html_context = {"default_mode": "light"}
