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

from backends import IN_CI, OPTIONAL, chromium_path, optional_available, require_optional

TESTS = pathlib.Path(__file__).resolve().parent


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
