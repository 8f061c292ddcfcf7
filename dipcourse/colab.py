"""Google Colab support: the "Open in Colab" badge and the setup cell at the top of every lesson.

Every lesson starts with two cells that ``python -m dipcourse.authoring.stamp notebooks/NN_x.ipynb``
inserts or refreshes:

1. a Markdown cell with the Colab badge and the lesson's title;
2. the setup code cell (:data:`SETUP_CELL_SOURCE`). Run locally it does nothing. In Colab it
   pip-installs the package from :data:`REPO_URL` and then calls :func:`colab_setup`, which installs
   the optional backends, turns on Colab's widget manager and reports the GPU.

The logic lives in :func:`colab_setup`, an ordinary function: tests call it with a fake
``google.colab`` module and a recording ``run`` and check the commands it would run.
"""
import sys

#: The course's repository (placeholder until the course is published; change it here only).
REPO_URL = "https://github.com/dipcourse/dipcourse"
BRANCH = "main"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_TAG = "colab-badge"
SETUP_TAG = "colab-setup"

SETUP_CELL_SOURCE = f'''\
# Setup: does nothing when run locally. In Colab it installs dipcourse from the course repository,
# its optional backends (prox-tv, bm3d), turns on Colab's widget manager and reports the GPU.
try:
    import google.colab  # noqa: F401  (exists only in Colab)
except ImportError:
    pass
else:
    import subprocess, sys
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+{REPO_URL}"], check=True)
    from dipcourse.colab import colab_setup
    colab_setup()'''


def colab_url(notebook_path, repo_url=REPO_URL, branch=BRANCH):
    """Colab's address for ``notebook_path`` (relative to the repository root, e.g. ``notebooks/01_x.ipynb``)."""
    if not repo_url.startswith("https://github.com/"):
        raise ValueError(f"Colab opens notebooks from GitHub only; REPO_URL is {repo_url!r}")
    repo = repo_url.removeprefix("https://github.com/").rstrip("/")
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{str(notebook_path).lstrip('/')}"


def colab_badge(notebook_path, repo_url=REPO_URL, branch=BRANCH):
    """Markdown of the "Open in Colab" badge for ``notebook_path``."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook_path, repo_url, branch)})"


def _run_quietly(cmd):
    """Run ``cmd`` (a list), show its output, return its exit status."""
    import subprocess

    return subprocess.run(cmd, check=False).returncode


def colab_setup(run=_run_quietly):
    """Prepare a Colab runtime for the course; do nothing outside Colab.

    In Colab (detected by importing ``google.colab``) it runs, in order:

    - ``apt-get install liblapacke-dev`` then ``pip install prox-tv`` (the C TV prox needs LAPACKE
      to build); if either fails, lessons use the built-in torch TV backend and a message says so;
    - ``pip install bm3d``; if it fails, the BM3D prior is unavailable and a message says so;
    - ``google.colab.output.enable_custom_widget_manager()`` so ipywidgets sliders render (and asks
      for a session restart if Colab had already imported an ipywidgets older than 8);
    - reports the device lessons will use (``dipcourse.config.default_device()``: the GPU if the
      runtime has one) and how to get one otherwise.

    The package itself is installed by the setup cell before this function is imported.

    Args:
        run: callable taking a command (list of str) and returning its exit status; tests pass a
            recorder here.

    Returns:
        The list of commands it ran (empty outside Colab).
    """
    try:
        from google.colab import output
    except ImportError:
        return []

    ran = []

    def step(cmd):
        ran.append(cmd)
        return run(cmd) == 0

    pip = [sys.executable, "-m", "pip", "install", "-q"]
    have_lapacke = step(["apt-get", "install", "-y", "-qq", "liblapacke-dev"])
    if not (have_lapacke and step(pip + ["prox-tv"])):
        print("prox-tv could not be installed: the TV prox uses the built-in torch backend (same results, slower on CPU).")
    if not step(pip + ["bm3d"]):
        print("bm3d could not be installed: the BM3D prior is unavailable.")
    output.enable_custom_widget_manager()
    loaded = sys.modules.get("ipywidgets")
    if loaded is not None and int(loaded.__version__.split(".")[0]) < 8:
        # Colab imported its own ipywidgets 7 before the install upgraded it to 8.
        print("ipywidgets was upgraded: restart the session (Runtime > Restart session), then run this cell again.")

    import torch

    if torch.cuda.is_available():
        print(f"Using the GPU: {torch.cuda.get_device_name(0)}")
    else:
        print("No GPU in this runtime; lessons run on the CPU. For a GPU: Runtime > Change runtime type > GPU.")
    return ran
