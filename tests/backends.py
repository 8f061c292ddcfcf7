"""Optional pieces of the course (prox-tv, bm3d, Playwright, Chromium): detect them, and skip a test
that needs a missing one with a message saying how to install it -- or fail it under ``CI=true``,
where ``.ci/run`` installs everything.
"""
import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# How to get each optional piece, shown when it is missing.
OPTIONAL = {
    "prox_tv": "prox-tv did not build: install LAPACKE headers (Debian/Ubuntu: sudo apt install "
               "liblapacke-dev), then .venv/bin/pip install -e '.[tv]'. Without it TV uses the torch backend.",
    "bm3d": "bm3d is missing: .venv/bin/pip install -e '.[bm3d]'. Without it the BM3D prior is unavailable.",
    "playwright": "Playwright's Python package is missing: .venv/bin/pip install -e '.[test]'. Browser tests are skipped.",
    "chromium": "Chromium is missing (/usr/bin/chromium): sudo apt install chromium (Ubuntu: the snap "
                "'chromium', or set DIPCOURSE_CHROMIUM=/path/to/chrome). Browser tests are skipped.",
}


def optional_available(name):
    """Whether optional piece ``name`` ("prox_tv", "bm3d" or "chromium") is installed."""
    if name == "chromium":
        return chromium_path() is not None
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def chromium_path():
    """Path of the Chromium executable for Playwright, or ``None``."""
    candidates = [os.environ.get("DIPCOURSE_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser"), shutil.which("google-chrome")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def require_optional(name):
    """Skip the calling test when optional piece ``name`` is missing; fail instead under ``CI=true``."""
    if optional_available(name):
        return
    if IN_CI:
        pytest.fail(f"CI=true requires every optional backend. {OPTIONAL[name]}", pytrace=False)
    pytest.skip(OPTIONAL[name])
