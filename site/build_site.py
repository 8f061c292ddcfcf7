"""Build the course website from the committed lessons and their stored outputs (nothing is re-executed).

``python site/build_site.py`` (what ``make site`` runs) stages a Sphinx source tree in a work folder
-- the landing page site/index.md filled in with the course map and the README's set-up commands,
and one page per lesson ``notebooks/NN_*.ipynb``, made fit for a static page by
:func:`prepare_lesson` -- then runs ``sphinx-build`` with site/conf.py into build/site/ (the sources go to build/site-work/).
Each lesson's thesis sections come from site/thesis_map.yml.
"""
import argparse
import copy
import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys
import time

import jinja2
import nbformat
import yaml

from dipcourse.claims import MIMETYPE as CLAIMS_MIMETYPE
from dipcourse.colab import BADGE_IMAGE, BRANCH, REPO_URL, SETUP_TAG, colab_url

SITE = pathlib.Path(__file__).resolve().parent
ROOT = SITE.parent

#: Python modules the build needs (the ``site`` extra of pyproject.toml).
SITE_TOOLS = ("sphinx", "myst_nb", "sphinx_book_theme", "mathjax")
INSTALL_HINT = "install them with .venv/bin/pip install -e '.[site]' (make env does)"

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
INSTRUCTOR_TAG = "instructor"
# A tqdm bar's text form, e.g. "DIP-ADMM-v1:  40%|####      | 240/600 [00:05<00:07, 45.1it/s]".
TQDM_TEXT = re.compile(r"\d+%\|.*\|\s*\S+/\S+")
PROGRESS_MODELS = {"FloatProgressModel", "IntProgressModel"}


def missing_tools():
    """The modules of :data:`SITE_TOOLS` that are not installed."""
    return [name for name in SITE_TOOLS if importlib.util.find_spec(name) is None]


def lesson_files(notebooks):
    """The lessons ``NN_name.ipynb`` in folder ``notebooks``, in course order."""
    return sorted(pathlib.Path(notebooks).glob("[0-9][0-9]_*.ipynb"))


def binder_url(notebook_path):
    """mybinder.org's address that builds the repository (from binder/) and opens ``notebook_path``
    (relative to the repository root) in JupyterLab; the repository is ``dipcourse.colab.REPO_URL``,
    as for the Colab links."""
    if not REPO_URL.startswith("https://github.com/"):
        raise ValueError(f"the Binder link is built for GitHub repositories; REPO_URL is {REPO_URL!r}")
    repo = REPO_URL.removeprefix("https://github.com/").rstrip("/")
    return f"https://mybinder.org/v2/gh/{repo}/{BRANCH}?labpath={notebook_path}"


def launch_links(notebook_path):
    """Where ``notebook_path`` (relative to the repository root) runs: its Colab and Binder addresses."""
    return {"colab": colab_url(notebook_path), "binder": binder_url(notebook_path)}


def lesson_title(nb):
    """The first level-1 heading of the notebook's Markdown cells."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise ValueError("the lesson has no title (a Markdown line starting with '# ')")


def is_progress_bar(data, state):
    """Whether widget output ``data`` (a mime bundle) is a tqdm progress bar: its text is a tqdm
    bar, or its model (in the notebook's saved widget ``state``) is an HBox holding a progress bar."""
    if TQDM_TEXT.search(data.get("text/plain", "").partition("\n")[0]):
        return True
    model = state.get(data[WIDGET_VIEW].get("model_id"), {})
    if model.get("model_name") != "HBoxModel":
        return False
    children = [state.get(child.removeprefix("IPY_MODEL_"), {}) for child in model["state"].get("children", [])]
    return any(child.get("model_name") in PROGRESS_MODELS for child in children)


def widget_note(links, has_picture):
    """HTML of the note that stands in for a widget on a static page."""
    picture = " Below, the picture it showed when the lesson was run." if has_picture else ""
    return (
        '<div class="admonition note dipcourse-widget-note">\n'
        '<p class="admonition-title">Interactive widget</p>\n'
        f'<p>Its sliders move only in a running notebook: run the lesson in <a href="{links["colab"]}">Colab</a>, '
        f'<a href="{links["binder"]}">Binder</a> or locally (<code>make lab</code>).{picture}</p>\n</div>')


def static_outputs(output, state, links):
    """The outputs a static page shows in place of stored ``output``: itself, or for a widget a
    note and the widget's picture (its ``image/png``, when stored), or nothing for a progress bar; a
    claims table loses its JSON bundle (the runner's data), keeping its HTML and text."""
    data = output.get("data", {})
    if CLAIMS_MIMETYPE in data:
        # The claims' JSON is for the course runner; the page shows the same claims as the table.
        output = copy.deepcopy(output)
        del output["data"][CLAIMS_MIMETYPE]
        return [output]
    if WIDGET_VIEW not in data:
        return [output]
    has_picture = "image/png" in data
    if not has_picture and is_progress_bar(data, state):
        return []
    shown = [nbformat.v4.new_output("display_data", {"text/html": widget_note(links, has_picture)})]
    if has_picture:
        shown.append(nbformat.v4.new_output("display_data", {"image/png": data["image/png"]},
                                            metadata=output.get("metadata", {})))
    return shown


def lesson_header(thesis, links):
    """Markdown put under a lesson's title: its thesis sections and where to run it."""
    return (
        "```{container} dipcourse-lesson-meta\n"
        f"**Thesis:** {thesis}\n\n"
        f"**Run this lesson:** [Open in Colab]({links['colab']}) · [Launch on Binder]({links['binder']}) · "
        "on your own machine with `make lab` ({ref}`set-up`)\n"
        "```")


def prepare_lesson(nb, notebook_path, thesis):
    """A copy of lesson ``nb`` (at ``notebook_path`` in the repository) fit for a static page:

    - the Colab badge and the Colab setup cell go: the page has its own launch links, put under the
      title with the lesson's ``thesis`` sections;
    - cells tagged ``instructor`` are collapsed under "Instructor notes";
    - widget outputs become a note with the widget's stored picture, if any (:func:`static_outputs`);
    - the saved widget state goes, so MyST-NB puts no widget JavaScript (from a CDN) on the page.
    """
    nb = copy.deepcopy(nb)
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    links = launch_links(notebook_path)
    cells = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if SETUP_TAG in tags:
            continue
        if cell.cell_type == "markdown":
            cell.source = "\n".join(line for line in cell.source.splitlines() if BADGE_IMAGE not in line).strip("\n")
            if INSTRUCTOR_TAG in tags:
                cell.source = (f'<details class="dipcourse-instructor">\n<summary>Instructor notes</summary>\n\n'
                               f"{cell.source}\n\n</details>")
        elif cell.cell_type == "code":
            if INSTRUCTOR_TAG in tags:
                cell.metadata["tags"] = [*tags, "hide-cell"]
                cell.metadata["mystnb"] = {"code_prompt_show": "Instructor notes",
                                           "code_prompt_hide": "Hide instructor notes"}
            cell.outputs = [shown for output in cell.outputs for shown in static_outputs(output, state, links)]
        cells.append(cell)
    title = next(i for i, cell in enumerate(cells) if cell.cell_type == "markdown" and
                 any(line.startswith("# ") for line in cell.source.splitlines()))
    cells.insert(title + 1, nbformat.v4.new_markdown_cell(lesson_header(thesis, links)))
    nb.cells = cells
    return nb


def setup_commands(readme):
    """The README's set-up commands: the first code block of its "## Set up" section."""
    section = readme.partition("\n## Set up")[2].partition("\n## ")[0]
    block = re.search(r"^```bash\n.*?^```$", section, re.S | re.M)
    if block is None:
        raise ValueError("README.md has no ```bash block under '## Set up'")
    return block.group(0)


def stage(notebooks, source):
    """Write the Sphinx sources into folder ``source``: index.md and lessons/NN_name.ipynb."""
    thesis_map = yaml.safe_load((SITE / "thesis_map.yml").read_text(encoding="utf-8"))
    (source / "lessons").mkdir(parents=True)
    lessons = []
    for path in lesson_files(notebooks):
        if path.stem not in thesis_map:
            raise SystemExit(f"site/thesis_map.yml has no entry for {path.stem}: add the thesis sections "
                             f"the lesson follows (the lesson table of the course design).")
        nb = nbformat.read(path, as_version=4)
        notebook_path = f"notebooks/{path.name}"
        nbformat.write(prepare_lesson(nb, notebook_path, thesis_map[path.stem]), source / "lessons" / path.name)
        lessons.append({"page": f"lessons/{path.stem}", "title": lesson_title(nb),
                        "thesis": thesis_map[path.stem], **launch_links(notebook_path)})
    if not lessons:
        raise SystemExit(f"no lessons NN_name.ipynb in {notebooks}")
    template = jinja2.Template((SITE / "index.md").read_text(encoding="utf-8"), keep_trailing_newline=True)
    (source / "index.md").write_text(template.render(
        lessons=lessons, setup=setup_commands((ROOT / "README.md").read_text(encoding="utf-8")),
        course_binder=lessons[0]["binder"]), encoding="utf-8")


def build(notebooks, out, work):
    """Stage the sources in ``work`` and build the HTML site into ``out`` (both made anew).
    Sphinx warnings fail the build. Returns sphinx-build's exit status."""
    for folder in (out, work):
        if folder.exists():
            shutil.rmtree(folder)
    stage(notebooks, work / "src")
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(SITE), "-d", str(work / "doctrees"),
               "-W", "--keep-going", "-q", str(work / "src"), str(out)]
    return subprocess.run(command).returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--notebooks", type=pathlib.Path, default=ROOT / "notebooks", help="folder of the lessons")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "build" / "site", help="where the site goes")
    args = parser.parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"!!! cannot build the site, the site tools are missing ({', '.join(missing)}): {INSTALL_HINT}",
              file=sys.stderr)
        return 1
    out = args.out.resolve()
    work = out.with_name(out.name + "-work")  # the staged sources and Sphinx's doctrees
    start = time.monotonic()
    status = build(args.notebooks.resolve(), out, work)
    if status:
        print(f"!!! sphinx-build failed (exit status {status}); its messages are above", file=sys.stderr)
        return status
    print(f">>> site built in {time.monotonic() - start:.0f} s: {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
