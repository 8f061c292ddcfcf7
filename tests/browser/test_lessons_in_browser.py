"""Lessons work where students use them: JupyterLab in a real browser, sliders dragged with the mouse.

For lessons 01, 03 and 06 (quick profile): open the lesson, clear the committed outputs, run all
cells, drag the lesson's slider, and check that the plotted image changes and that no output shows
an error or traceback. A screenshot per lesson goes to ``test-output/browser/``. A small fixture
notebook (built here, with the course's widget classes) checks the harness itself.

Skipped with a message when Chromium is missing; a failure under ``CI=true`` (see tests/conftest.py).
"""
import nbformat
import pytest

import lab_driver as drive

pytestmark = pytest.mark.browser

# lesson -> the slider to drag (CSS class dipcourse-slider-<key>, see dipcourse.widgets)
LESSON_SLIDERS = {
    "01_classical_cs": "lam",
    "03_admm_variants": "rho",
    "06_fitting_along_directions": "p",
    "07_other_remedies": "sigma",
}
RUN_TIMEOUT = 900      # seconds for all cells of a quick-profile lesson on a busy 2-core machine
CHANGE_TIMEOUT = 300   # seconds for the plot to change after the drag (a LiveTrainer starts training)

FIXTURE_CELLS = [
    "import numpy as np\n"
    "from dipcourse.widgets import InstantExplorer, LiveTrainer, make_slider, show_image",
    "rng = np.random.default_rng(0)\n"
    "image = rng.random((1, 32, 32))\n"
    "def compute(lam):\n"
    "    return np.clip(image - lam, 0, 1)\n"
    "def draw(result, fig):\n"
    "    show_image(fig.add_subplot(), result, 'thresholded')\n"
    "explorer = InstantExplorer(compute, draw, {'lam': make_slider('lam', 0.1, 0.0, 1.0)}, name='fixture')\n"
    "explorer",
    "import time\n"
    "from dipcourse.runs import Iterate\n"
    "def train(callback, p):\n"
    "    for i in range(20):\n"
    "        time.sleep(0.05)\n"
    "        if callback(Iterate(i, None, {'loss': 1.0 / (i + p)})):\n"
    "            break\n"
    "    return {'p': p}\n"
    "def draw_run(run, fig):\n"
    "    ax = fig.add_subplot()\n"
    "    ax.bar([0], [run['p']])\n"
    "    ax.set_ylim(0, 10)\n"
    "trainer = LiveTrainer(train, {'p': make_slider('p', 2, 1, 10, integer=True)}, draw=draw_run, total=20,\n"
    "                      name='fixture-trainer', refresh_s=0.1)\n"
    "trainer",
]


def check_slider_moves_plot(page, key, lesson, screenshots):
    """Drag slider ``key``, wait for its plot to change and any training to end; save a screenshot."""
    plots = drive.plots_near(page, key)
    assert plots.count() > 0, f"{lesson}: no plot (class dipcourse-plot) near slider {key!r}"
    before = drive.snapshot(plots)
    value_before, value_after = drive.drag_slider(page, key)
    assert value_before != value_after, f"{lesson}: dragging {key} did not move it ({value_before})"
    drive.wait_for_change(plots, before, CHANGE_TIMEOUT)
    drive.wait_for_trainers(page, CHANGE_TIMEOUT)
    widget = page.locator(".dipcourse-widget", has=drive.slider(page, key)).first
    widget.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / f"{lesson}.png"))
    widget.screenshot(path=str(screenshots / f"{lesson}-widget.png"))
    problems = drive.output_problems(page)
    assert not problems, f"{lesson}: {problems}"
    return value_before, value_after


def test_harness_on_fixture_notebook(lab, page, screenshots):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(source) for source in FIXTURE_CELLS]
    nbformat.write(nb, lab.root / "fixture_widgets.ipynb")
    drive.open_notebook(page, lab, "fixture_widgets.ipynb")
    drive.run_all_cells(page, timeout=180)
    assert drive.output_problems(page) == []
    check_slider_moves_plot(page, "lam", "fixture-lam", screenshots)
    check_slider_moves_plot(page, "p", "fixture-p", screenshots)
    status = page.locator(".dipcourse-fixture-trainer .dipcourse-status").inner_text()
    assert status.startswith("done"), status


@pytest.mark.parametrize("lesson", sorted(LESSON_SLIDERS))
def test_lesson_slider_redraws_plot(lesson, lab, page, screenshots):
    relative = f"notebooks/{lesson}.ipynb"
    assert (lab.root / relative).exists(), f"{relative} is missing"
    drive.open_notebook(page, lab, relative)
    drive.run_all_cells(page, timeout=RUN_TIMEOUT)
    assert drive.output_problems(page) == [], "errors right after running all cells"
    check_slider_moves_plot(page, LESSON_SLIDERS[lesson], lesson, screenshots)


def test_harness_reports_a_failing_cell(lab, page):
    """The harness must see an error in the page (else the lesson tests could not fail)."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('boom in cell 2')"),
                nbformat.v4.new_code_cell("never = True")]
    nbformat.write(nb, lab.root / "fixture_error.ipynb")
    drive.open_notebook(page, lab, "fixture_error.ipynb")
    with pytest.raises(AssertionError, match="boom in cell 2"):
        drive.run_all_cells(page, timeout=120)
    assert any("Traceback" in p or "boom" in p for p in drive.output_problems(page))
