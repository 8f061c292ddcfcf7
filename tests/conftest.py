"""Session set-up shared by all tests: offline kernels, optional backends, CI strictness.

Offline guarantee (issue 6, item 4). Every Jupyter kernel started during the test session (nbval's,
the browser tests' JupyterLab, the course runner's) runs ``tests/netblock.py`` first: it is
installed as an IPython startup file in a private ``IPYTHONDIR``. Any connection or name lookup
other than loopback raises ``NetworkBlockedError`` in the kernel (the lesson's cell fails) and is
logged; at the end the session fails if the log is not empty, even when a library swallowed the
error. So ``pytest --nbval-lax notebooks`` in the quick profile *is* the offline test: the lessons
run once, with the network blocked.

Optional backends (prox-tv, bm3d, Chromium for the browser tests). Locally a missing one is skipped
with a message saying how to install it; with ``CI=true`` it is a failure (``.ci/run`` installs them).
"""
import os
import pathlib
import shutil
import tempfile

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
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


def pytest_report_header(config):
    missing = [name for name in OPTIONAL if not optional_available(name)]
    lines = [f"dipcourse: profile {os.environ.get('DIPCOURSE_PROFILE', 'teaching (default)')}, "
             f"CI={'true' if IN_CI else 'false'}, kernels run offline (tests/netblock.py)"]
    lines += [f"dipcourse: optional piece missing -> {OPTIONAL[name]}" for name in missing]
    return lines


def pytest_configure(config):
    """Install the network block for every kernel this session starts."""
    ipython_dir = pathlib.Path(tempfile.mkdtemp(prefix="dipcourse-ipython-"))
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    shutil.copy(TESTS / "netblock.py", startup / "00-dipcourse-netblock.py")
    log = ipython_dir / "network-attempts.log"
    log.touch()
    config._dipcourse_netblock = (ipython_dir, log, os.environ.get("IPYTHONDIR"))
    os.environ["IPYTHONDIR"] = str(ipython_dir)
    os.environ["DIPCOURSE_NETBLOCK_LOG"] = str(log)


def pytest_sessionfinish(session, exitstatus):
    """Fail the session if any kernel tried to reach the network."""
    ipython_dir, log, _ = session.config._dipcourse_netblock
    attempts = log.read_text().splitlines() if log.exists() else []
    if attempts:
        session.config._dipcourse_network_attempts = attempts
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    attempts = getattr(config, "_dipcourse_network_attempts", [])
    if attempts:
        terminalreporter.section("network access attempted (lessons must run offline)", red=True)
        for line in attempts:
            terminalreporter.write_line(line)


def pytest_unconfigure(config):
    ipython_dir, _, previous = getattr(config, "_dipcourse_netblock", (None, None, None))
    if ipython_dir is None:
        return
    if previous is None:
        os.environ.pop("IPYTHONDIR", None)
    else:
        os.environ["IPYTHONDIR"] = previous
    os.environ.pop("DIPCOURSE_NETBLOCK_LOG", None)
    shutil.rmtree(ipython_dir, ignore_errors=True)


@pytest.fixture
def netblock_log(pytestconfig):
    """Path of this session's network-attempt log."""
    return pytestconfig._dipcourse_netblock[1]


@pytest.fixture(scope="session")
def optional():
    """The optional-piece helpers for tests in sub-folders: ``optional.require("chromium")``,
    ``optional.chromium_path()``, ``optional.available("bm3d")``."""
    import types

    return types.SimpleNamespace(require=require_optional, available=optional_available, chromium_path=chromium_path)
