"""Fixtures for the browser tests: one JupyterLab server and one headless Chromium per session."""
import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from lab_driver import CHROMIUM_ARGS, JupyterLab, copy_course  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "browser"


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory):
    """A private copy of the course that the server serves (nothing is saved over notebooks/)."""
    return copy_course(ROOT, tmp_path_factory.mktemp("lab"))


@pytest.fixture(scope="session")
def lab(lab_root, optional):
    """JupyterLab on 127.0.0.1, random port and token; its kernels use the quick profile."""
    require_browser(optional)
    server = JupyterLab(lab_root, env=dict(os.environ, DIPCOURSE_PROFILE="quick"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser(optional):
    require_browser(optional)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=optional.chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, lab):
    """A fresh browser tab; afterwards its kernels are shut down."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()
    lab.shutdown_kernels()


@pytest.fixture(scope="session")
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def require_browser(optional):
    """Skip (locally) or fail (CI=true) when Chromium or Playwright's Python package is missing."""
    optional.require("chromium")
    optional.require("playwright")
