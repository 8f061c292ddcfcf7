"""Drive a real JupyterLab in headless Chromium: start the server, run a notebook, drag a slider.

Used by tests/browser/. The server runs on 127.0.0.1 with a random free port and a random token,
on a private copy of the lessons (so nothing is ever saved over notebooks/), with autosave off and
notebook windowing off (every cell stays in the page, so offscreen widgets can be found).
"""
import json
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}

# Text that must never appear in an output area.
ERROR_MARKERS = ("Traceback (most recent call last)", "Error displaying widget", "Failed to load model")


def _die_with_parent():
    """In the server process: get SIGTERM when the test process dies, even if it is killed."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLab:
    """A JupyterLab server over folder ``root`` (started by :meth:`start`, stopped by :meth:`stop`)."""

    def __init__(self, root, env=None):
        self.root = pathlib.Path(root)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.state = self.root.parent / f"{self.root.name}-jupyter-state"
        self.env = dict(os.environ if env is None else env)
        self.process = None
        self.log = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=120):
        settings = self.state / "settings"
        for plugin, values in LAB_SETTINGS.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        for sub in ("config", "runtime", "workspaces"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        env = dict(self.env, JUPYTER_CONFIG_DIR=str(self.state / "config"),
                   JUPYTER_RUNTIME_DIR=str(self.state / "runtime"))
        self.log = open(self.state / "server.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
             f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={self.state / 'workspaces'}",
             "--LabApp.extension_manager=readonly", "--expose-app-in-browser", "--allow-root"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.server_log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {timeout} s:\n{self.server_log()}")

    def shutdown_kernels(self):
        """Stop every kernel of the server (each test's notebook starts its own)."""
        headers = {"Authorization": f"token {self.token}"}
        with urllib.request.urlopen(urllib.request.Request(f"{self.url}/api/kernels", headers=headers)) as reply:
            kernels = json.load(reply)
        for kernel in kernels:
            request = urllib.request.Request(f"{self.url}/api/kernels/{kernel['id']}", headers=headers, method="DELETE")
            urllib.request.urlopen(request).close()

    def server_log(self):
        self.log.flush()
        return (self.state / "server.log").read_text()[-5000:]

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.log:
            self.log.close()

    def notebook_url(self, relative):
        return f"{self.url}/lab/tree/{relative}?token={self.token}&reset"


def copy_course(repo, target):
    """Copy the lessons (and assets/, which lessons may read as ../assets) into ``target``."""
    target = pathlib.Path(target)
    shutil.copytree(pathlib.Path(repo) / "notebooks", target / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    if (pathlib.Path(repo) / "assets").is_dir():
        shutil.copytree(pathlib.Path(repo) / "assets", target / "assets")
    return target


# ---------------------------------------------------------------------------------------------
# In the page (JupyterLab exposes its app object as window.jupyterapp with --expose-app-in-browser)
# ---------------------------------------------------------------------------------------------

_NOTEBOOK_STATE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext) return null;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code' && c.model.sharedModel.getSource().trim());
  const errors = [];
  cells.forEach((cell, i) => {
    const outputs = cell.model.outputs;
    for (let k = 0; k < outputs.length; k++) {
      const out = outputs.get(k).toJSON();
      if (out.output_type === 'error') errors.push(`cell ${i + 1}: ${out.ename}: ${out.evalue}`);
    }
  });
  return {kernel: kernel ? kernel.status : null, counts: cells.map(c => c.model.executionCount),
          busy: document.querySelectorAll('.jp-InputPrompt').length
                ? Array.from(document.querySelectorAll('.jp-InputPrompt')).some(p => p.textContent.includes('*'))
                : false,
          errors};
}"""


def open_notebook(page, lab, relative, timeout=120):
    """Open notebook ``relative`` (path under the server root) and wait for an idle kernel."""
    page.goto(lab.notebook_url(relative))
    wait_for(page, lambda s: s is not None and s["kernel"] == "idle", timeout, f"kernel of {relative} never idle")


def notebook_state(page):
    return page.evaluate(_NOTEBOOK_STATE)


def wait_for(page, predicate, timeout, message, poll=0.5):
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = notebook_state(page)
        if predicate(state):
            return state
        if state and state["errors"]:
            raise AssertionError(f"{message}; errors in outputs: {state['errors']}")
        time.sleep(poll)
    raise AssertionError(f"{message} (after {timeout} s); last state: {state}")


def run_all_cells(page, timeout):
    """Clear the committed outputs, run every cell, wait until all ran; fail on the first error."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    time.sleep(1.0)
    return wait_for(page, lambda s: s["kernel"] == "idle" and not s["busy"] and None not in s["counts"],
                    timeout, "not every cell ran")


def output_problems(page):
    """Errors in any output: error outputs, tracebacks, widget load failures, widget messages."""
    state = notebook_state(page)
    problems = list(state["errors"])
    for text in page.locator(".jp-OutputArea-output").all_inner_texts():
        problems += [f"output shows {marker!r}: {text[:300]}" for marker in ERROR_MARKERS if marker in text]
    problems += [f"widget message: {t}" for t in page.locator(".dipcourse-message").all_inner_texts() if t.strip()]
    return problems


def slider(page, key):
    """The slider widget whose CSS class is ``dipcourse-slider-<key>`` (widgets.make_slider)."""
    return page.locator(f".dipcourse-slider-{key}").first


def plots_near(page, key):
    """The plot images of the widget holding slider ``key``, else every plot of the notebook."""
    widget = page.locator(".dipcourse-widget", has=page.locator(f".dipcourse-slider-{key}")).last
    plots = widget.locator(".dipcourse-plot")
    return plots if plots.count() else page.locator(".dipcourse-plot")


def snapshot(plots):
    """PNG screenshots of each plot element (what the student sees)."""
    return [plots.nth(i).screenshot() for i in range(plots.count())]


def drag_slider(page, key, fraction=0.3):
    """Drag slider ``key``'s handle with the mouse by ``fraction`` of the track (towards the wider
    side); return the readout text before and after."""
    box = slider(page, key)
    box.scroll_into_view_if_needed()
    handle = box.locator(".noUi-handle").first
    track = box.locator(".noUi-target").first.bounding_box()
    start = handle.bounding_box()
    x, y = start["x"] + start["width"] / 2, start["y"] + start["height"] / 2
    direction = 1 if x < track["x"] + track["width"] / 2 else -1
    readout = box.locator(".widget-readout").first
    before = readout.inner_text() if readout.count() else None
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + direction * fraction * track["width"], y, steps=12)
    page.mouse.up()
    after = readout.inner_text() if readout.count() else None
    return before, after


def wait_for_change(plots, before, timeout):
    """Wait until some plot's rendered pixels differ from ``before``; return the new screenshots."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = snapshot(plots)
        if len(now) != len(before) or any(a != b for a, b in zip(now, before)):
            return now
        time.sleep(1.0)
    raise AssertionError(f"no plot changed within {timeout} s after moving the slider")


def wait_for_trainers(page, timeout):
    """Wait until no live trainer on the page is still training (status not "training ...")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = page.locator(".dipcourse-status").all_inner_texts()
        if not any(s.strip().startswith("training") for s in statuses):
            return statuses
        time.sleep(1.0)
    raise AssertionError(f"training still running after {timeout} s: {statuses}")
