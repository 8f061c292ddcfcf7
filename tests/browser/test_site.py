"""The course website, built from the committed lessons with no network and read in headless Chromium.

The site is built with site/build_site.py -- inside ``unshare -rn`` (a network namespace with no
network at all) where the machine allows it -- served on 127.0.0.1, and every page is opened with
each request that would leave 127.0.0.1 refused and recorded. On each page: MathJax typeset every
formula (no raw ``$$`` or ``\\(`` left), every figure the notebook stores is shown and loaded,
no error text, no JavaScript error, no request left the machine; every internal link answers. A
fixture lesson checks the static stand-ins: a widget becomes a note with its stored picture (or the
note alone), progress bars are hidden, instructor notes are collapsed, the Colab setup cell is gone.
Screenshots go to ``test-output/site/``.

Skipped with a message when Chromium, Playwright or the site tools are missing; a failure under
``CI=true`` (the pattern of tests/backends.py).
"""
import base64
import collections
import functools
import html.parser
import http.server
import io
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
import urllib.request

import nbformat
import pytest
import yaml

from backends import IN_CI
from lab_driver import ERROR_MARKERS

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "site"))
import build_site  # noqa: E402

SCREENSHOTS = ROOT / "test-output" / "site"
LESSONS = build_site.lesson_files(ROOT / "notebooks")
THESIS_MAP = yaml.safe_load((ROOT / "site" / "thesis_map.yml").read_text(encoding="utf-8"))
BUILD_TIMEOUT = 600  # seconds; the whole site takes about 20 s on 2 cores
# Sphinx/MyST problems and failed cells, as they appear in the HTML.
ERROR_SELECTORS = ".system-message, .problematic, .output.traceback, .output.error, mjx-merror"
# Math delimiters MathJax should have consumed (searched in the page text outside code).
RAW_MATH = re.compile(r"\$\$|\\\(|\\\[|\$[^$\s][^$\n]*\$")

PROSE_TEXT = """() => {
  const main = (document.querySelector('main') || document.body).cloneNode(true);
  main.querySelectorAll('pre, code, script, style, mjx-container').forEach(e => e.remove());
  return main.innerText;
}"""
MATH_STATE = """async () => {
  if (window.MathJax && MathJax.startup) await MathJax.startup.promise;
  const math = Array.from(document.querySelectorAll('.math'));
  return {math: math.length, typeset: math.filter(e => e.querySelector('mjx-container')).length,
          mathjax: !!(window.MathJax && MathJax.startup)};
}"""
IMAGES_LOADED = "() => Array.from(document.images).every(img => img.complete)"
BROKEN_IMAGES = "() => Array.from(document.images).filter(img => !(img.naturalWidth > 0)).map(img => img.src)"


# ---------------------------------------------------------------------------------------------
# Building and serving
# ---------------------------------------------------------------------------------------------

def require_site_tools():
    """Skip (locally) or fail (CI=true) when the site's build tools are not installed."""
    missing = build_site.missing_tools()
    if not missing:
        return
    message = f"the site tools are missing ({', '.join(missing)}): {build_site.INSTALL_HINT}"
    if IN_CI:
        pytest.fail(f"CI=true requires the site tools; {message}", pytrace=False)
    pytest.skip(f"{message}. The site tests are skipped.")


@functools.cache
def no_network_prefix():
    """``unshare -rn`` when this machine lets us make a network namespace with no network, else nothing."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-rn"]
    return []


def build(notebooks, out):
    """Build the site from folder ``notebooks`` into ``out`` with no network (where possible)."""
    command = [*no_network_prefix(), sys.executable, str(ROOT / "site" / "build_site.py"),
               "--notebooks", str(notebooks), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert done.returncode == 0, f"site build failed ({' '.join(command)}):\n{done.stdout}\n{done.stderr}"
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def serve():
    """serve(folder) -> base URL of a static HTTP server on 127.0.0.1 over ``folder``."""
    servers = []

    def start(folder):
        handler = functools.partial(_Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def course_site(tmp_path_factory, serve):
    require_site_tools()
    return serve(build(ROOT / "notebooks", tmp_path_factory.mktemp("site") / "html"))


@pytest.fixture(scope="module")
def offline(browser):
    """A browser context in which every request that would leave 127.0.0.1 is refused and recorded
    (``context.refused``), and every JavaScript error is recorded (``context.js_errors``)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.refused, context.js_errors = [], []

    def route(route):
        if urllib.parse.urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            context.refused.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    yield context
    context.close()


@pytest.fixture
def tab(offline):
    """A new page (browser tab) of the offline context; its JavaScript errors are recorded."""
    page = offline.new_page()
    page.on("pageerror", lambda error: offline.js_errors.append(str(error)))
    page.on("console", lambda msg: msg.type == "error" and offline.js_errors.append(msg.text))
    yield page
    page.close()


@pytest.fixture(scope="module")
def shots():
    """The folder of the site's screenshots (test-output/site/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


# ---------------------------------------------------------------------------------------------
# What a page must show
# ---------------------------------------------------------------------------------------------

def open_page(page, url):
    """Open ``url``; wait for MathJax and the images. Returns the math counts (MATH_STATE)."""
    response = page.goto(url, wait_until="load")
    assert response is not None and response.ok, f"{url}: HTTP {response and response.status}"
    page.wait_for_function(IMAGES_LOADED, timeout=30_000)
    return page.evaluate(MATH_STATE)


def page_problems(page, context, math):
    """Everything wrong on the open page: untypeset math, raw delimiters, broken images, error text,
    Sphinx/MyST error markup, JavaScript errors, requests that tried to leave the machine."""
    problems = []
    if math["math"] and not math["mathjax"]:
        problems.append("the page has math but MathJax did not load")
    if math["typeset"] != math["math"]:
        problems.append(f"MathJax typeset {math['typeset']} of {math['math']} formulas")
    prose = page.evaluate(PROSE_TEXT)
    problems += [f"raw math left in the text: {m.group(0)[:80]!r}" for m in RAW_MATH.finditer(prose)]
    problems += [f"image not loaded: {src[:120]}" for src in page.evaluate(BROKEN_IMAGES)]
    text = page.inner_text("body")
    problems += [f"error text on the page: {marker!r}" for marker in ERROR_MARKERS if marker in text]
    problems += [f"error markup: {t[:200]!r}" for t in page.locator(ERROR_SELECTORS).all_inner_texts()]
    problems += [f"JavaScript error: {e}" for e in context.js_errors]
    problems += [f"request left the machine: {url}" for url in context.refused]
    context.js_errors.clear()
    context.refused.clear()
    return problems


def stored_figures(nb):
    """How many image/png outputs the committed notebook stores (each must be on the page)."""
    return sum("image/png" in output.get("data", {}) for cell in nb.cells for output in cell.get("outputs", []))


def widget_views(nb):
    """The widget outputs that are not progress bars (each becomes a note on the page)."""
    state = nb.metadata.get("widgets", {}).get(build_site.WIDGET_STATE, {}).get("state", {})
    return sum(build_site.WIDGET_VIEW in (data := output.get("data", {})) and
               ("image/png" in data or not build_site.is_progress_bar(data, state))
               for cell in nb.cells for output in cell.get("outputs", []))


# ---------------------------------------------------------------------------------------------
# The course's pages
# ---------------------------------------------------------------------------------------------

@pytest.mark.browser
def test_landing_page(tab, offline, course_site, shots):
    math = open_page(tab, course_site)
    assert page_problems(tab, offline, math) == []
    # Sphinx's smartquotes print an apostrophe as ’
    table = tab.locator("table").first.inner_text().replace("\u2019", "'")
    for path in LESSONS:
        title = build_site.lesson_title(nbformat.read(path, as_version=4))
        assert title in table and THESIS_MAP[path.stem] in table, f"course map lacks {path.stem}"
        binder = tab.locator(f'a[href="{build_site.binder_url(f"notebooks/{path.name}")}"]')
        assert binder.count() >= 1, f"no Binder link for {path.name}"
    assert "make lab" in tab.locator("pre").all_inner_texts()[0], "the README's set-up commands are missing"
    tab.screenshot(path=str(shots / "index.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.parametrize("lesson", LESSONS, ids=[path.stem for path in LESSONS])
def test_lesson_page(tab, offline, course_site, shots, lesson):
    nb = nbformat.read(lesson, as_version=4)
    math = open_page(tab, urllib.parse.urljoin(course_site, f"lessons/{lesson.stem}.html"))
    assert page_problems(tab, offline, math) == []
    if any("$" in cell.source for cell in nb.cells if cell.cell_type == "markdown"):
        assert math["math"] > 0, f"{lesson.stem}: the lesson has math, the page none"
    shown = tab.locator(".cell_output img")
    assert shown.count() == stored_figures(nb), f"{lesson.stem}: {shown.count()} figures shown of {stored_figures(nb)}"
    assert tab.locator(".dipcourse-widget-note").count() == widget_views(nb)
    outputs = "\n".join(tab.locator(".cell_output").all_inner_texts())
    assert not build_site.TQDM_TEXT.search(outputs), f"{lesson.stem}: a progress bar is shown"
    assert THESIS_MAP[lesson.stem] in tab.locator(".dipcourse-lesson-meta").inner_text()
    assert tab.locator('img[src*="colab-badge"]').count() == 0, "the Colab badge (an external image) is on the page"
    tab.screenshot(path=str(shots / f"{lesson.stem}.png"))
    for kind, element in (("figure", shown), ("widget", tab.locator(".dipcourse-widget-note"))):
        if element.count():
            element.first.scroll_into_view_if_needed()
            tab.screenshot(path=str(shots / f"{lesson.stem}-{kind}.png"))


class _Anchors(html.parser.HTMLParser):
    """The links (``a href``) and element ids of an HTML page."""

    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def read_anchors(url):
    """The _Anchors of ``url`` (none for a file that is not HTML); raises OSError on an HTTP error."""
    anchors = _Anchors()
    with urllib.request.urlopen(url, timeout=30) as reply:
        if reply.headers.get_content_type() == "text/html":
            anchors.feed(reply.read().decode("utf-8"))
    return anchors


def test_every_internal_link_answers(course_site):
    """Follow every link that stays on the site, from the landing page on: each answers, and each
    #fragment names an element of its page. (The pages themselves are opened in the browser above.)"""
    pages, queue, problems = {}, collections.deque([(course_site, "", "the landing page")]), []
    while queue:
        url, fragment, source = queue.popleft()
        if url not in pages:
            try:
                pages[url] = read_anchors(url)
            except OSError as error:
                problems.append(f"{source} links to {url}: {error}")
                pages[url] = None
                continue
            for href in pages[url].links:
                target, _, target_fragment = urllib.parse.urljoin(url, href).partition("#")
                if target.startswith(course_site):
                    queue.append((target, target_fragment, url))
        if fragment and pages[url] is not None and urllib.parse.unquote(fragment) not in pages[url].ids:
            problems.append(f"{source} links to {url}#{fragment}: no such id")
    reached = {urllib.parse.urlsplit(url).path for url in pages}
    missing = [path.stem for path in LESSONS if f"/lessons/{path.stem}.html" not in reached]
    assert missing == [], f"lessons not reachable from the landing page: {missing}"
    assert problems == []


# ---------------------------------------------------------------------------------------------
# The static stand-ins, on a fixture lesson
# ---------------------------------------------------------------------------------------------

def png_bytes():
    """A small PNG (a matplotlib figure), base64, as a notebook stores it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=60)
    ax.plot([0, 1, 2], [0, 1, 0])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def widget_output(model_id, text, png=None):
    data = {build_site.WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": model_id},
            "text/plain": text}
    if png:
        data["image/png"] = png
    return nbformat.v4.new_output("display_data", data)


def fixture_lesson():
    """A lesson with every kind of output the site treats specially (see prepare_lesson)."""
    from dipcourse.colab import BADGE_IMAGE, SETUP_TAG

    png = png_bytes()
    code = nbformat.v4.new_code_cell
    cells = [
        nbformat.v4.new_markdown_cell(
            f"[![Open In Colab]({BADGE_IMAGE})](https://colab.research.google.com/)\n\n# Lesson 01 — fixture\n\n"
            "Inline $a^2 + b^2 = c^2$ and displayed\n\n$$\\|x\\|_{TV} = \\sum_{i,j} |x_{i+1,j} - x_{i,j}|$$",
            metadata={"tags": ["colab-badge"]}),
        code("print('SETUP RAN')", metadata={"tags": [SETUP_TAG]},
             outputs=[nbformat.v4.new_output("stream", name="stdout", text="SETUP RAN\n")]),
        code("widget_with_picture", outputs=[widget_output("w-picture", "InstantExplorer(children=(...))", png)]),
        code("widget_without_picture", outputs=[widget_output("w-bare", "VBox(children=(FloatSlider(value=0.5),))")]),
        code("tqdm_bar_by_text", outputs=[widget_output("w-tqdm", "DIP:   0%|          | 0/1200 [00:00<?, ?it/s]")]),
        code("tqdm_bar_by_model", outputs=[widget_output("w-hbox", "HBox(children=(HTML(), FloatProgress()))")]),
        nbformat.v4.new_markdown_cell("Ask the class what $\\rho$ does.", metadata={"tags": ["instructor"]}),
        code("instructor_code", metadata={"tags": ["instructor"]},
             outputs=[nbformat.v4.new_output("stream", name="stdout", text="INSTRUCTOR OUTPUT\n")]),
        code("plain_figure", outputs=[nbformat.v4.new_output("display_data", {"image/png": png, "text/plain": "Fig"})]),
    ]
    state = {"w-hbox": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_w-html", "IPY_MODEL_w-bar"]}},
             "w-html": {"model_name": "HTMLModel", "state": {}},
             "w-bar": {"model_name": "FloatProgressModel", "state": {}}}
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    nb.metadata["widgets"] = {build_site.WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    return nb


def test_prepare_lesson_stand_ins():
    """Without a browser: what prepare_lesson keeps, replaces and drops."""
    page = build_site.prepare_lesson(fixture_lesson(), "notebooks/01_classical_cs.ipynb", "§2.1")
    from dipcourse.colab import BADGE_IMAGE

    sources = [cell.source for cell in page.cells]
    assert not any("SETUP RAN" in s or BADGE_IMAGE in s for s in sources)
    assert "§2.1" in sources[1] and "mybinder.org" in sources[1], "thesis and launch links go under the title"
    outputs = {cell.source: [set(o.get("data", {})) for o in cell.get("outputs", [])]
               for cell in page.cells if cell.cell_type == "code"}
    assert outputs["widget_with_picture"] == [{"text/html"}, {"image/png"}]
    assert outputs["widget_without_picture"] == [{"text/html"}]
    assert outputs["tqdm_bar_by_text"] == outputs["tqdm_bar_by_model"] == []
    assert "widgets" not in page.metadata


@pytest.mark.browser
def test_widget_stand_ins_in_the_browser(tab, offline, serve, tmp_path, shots):
    require_site_tools()
    # The fixture takes lesson 01's file name, so site/thesis_map.yml has an entry for it.
    (tmp_path / "notebooks").mkdir()
    nbformat.write(fixture_lesson(), tmp_path / "notebooks" / "01_classical_cs.ipynb")
    site = serve(build(tmp_path / "notebooks", tmp_path / "html"))
    math = open_page(tab, urllib.parse.urljoin(site, "lessons/01_classical_cs.html"))
    assert page_problems(tab, offline, math) == []
    assert math["math"] >= 2

    def output_of(source):
        return tab.locator("div.cell", has_text=source).locator(".cell_output")

    with_picture, bare = output_of("widget_with_picture"), output_of("widget_without_picture")
    assert with_picture.locator(".dipcourse-widget-note").count() == 1
    assert with_picture.locator("img").count() == 1
    assert with_picture.locator("img").evaluate("img => img.naturalWidth") > 0
    assert bare.locator(".dipcourse-widget-note").count() == 1 and bare.locator("img").count() == 0
    assert "Binder" in bare.inner_text() and "Colab" in bare.inner_text()
    for source in ("tqdm_bar_by_text", "tqdm_bar_by_model"):
        assert output_of(source).count() == 0, f"{source}: the progress bar is shown"
    assert tab.locator(".cell_output img").count() == 2  # the widget's picture and the plain figure
    body = tab.inner_text("body")
    assert "SETUP RAN" not in body and "0/1200" not in body

    notes = tab.locator("details.dipcourse-instructor")
    assert notes.count() == 1 and not notes.evaluate("d => d.open")
    assert not tab.get_by_text("Ask the class").is_visible()
    code_notes = tab.locator("div.cell.tag_instructor details")
    assert code_notes.count() == 1 and not code_notes.evaluate("d => d.open")
    assert not tab.get_by_text("INSTRUCTOR OUTPUT").is_visible()
    tab.screenshot(path=str(shots / "fixture.png"), full_page=True)
    notes.locator("summary").click()
    assert tab.get_by_text("Ask the class").is_visible()
