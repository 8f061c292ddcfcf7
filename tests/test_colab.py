"""The Colab badge, the setup cell (run against a fake ``google.colab``) and the ``stamp`` tool."""
import subprocess
import sys
import types

import nbformat
import pytest
import torch

from dipcourse import colab
from dipcourse.authoring import stamp


@pytest.fixture
def fake_colab(monkeypatch):
    """Install a fake ``google.colab`` package; return its ``output`` module, which records calls."""
    google = types.ModuleType("google")
    google.__path__ = []
    colab_pkg = types.ModuleType("google.colab")
    colab_pkg.__path__ = []
    output = types.ModuleType("google.colab.output")
    output.calls = []
    output.enable_custom_widget_manager = lambda: output.calls.append("enable_custom_widget_manager")
    google.colab = colab_pkg
    colab_pkg.output = output
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab_pkg)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    return output


class Recorder:
    def __init__(self, fail=()):
        self.commands, self.fail = [], fail

    def __call__(self, cmd):
        self.commands.append(cmd)
        return 1 if any(word in cmd for word in self.fail) else 0


def test_setup_does_nothing_outside_colab():
    run = Recorder()
    assert colab.colab_setup(run=run) == []
    assert run.commands == []


def test_setup_in_colab_installs_backends_and_enables_widgets(fake_colab, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Tesla T4")
    run = Recorder()
    ran = colab.colab_setup(run=run)
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    assert ran == run.commands == [
        ["apt-get", "install", "-y", "-qq", "liblapacke-dev"],
        pip + ["prox-tv"],
        pip + ["bm3d"],
    ]
    assert fake_colab.calls == ["enable_custom_widget_manager"]
    out = capsys.readouterr().out
    assert "Using the GPU: Tesla T4" in out and "Restart session" not in out


def test_setup_without_lapacke_skips_prox_tv_and_says_why(fake_colab, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = Recorder(fail=("liblapacke-dev",))
    colab.colab_setup(run=run)
    assert ["prox-tv"] not in [cmd[-1:] for cmd in run.commands]
    out = capsys.readouterr().out
    assert "torch backend" in out and "Change runtime type" in out
    assert fake_colab.calls == ["enable_custom_widget_manager"]


def test_setup_asks_for_restart_when_old_ipywidgets_was_loaded(fake_colab, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ipywidgets", types.SimpleNamespace(__version__="7.7.1"))
    colab.colab_setup(run=Recorder())
    assert "Restart session" in capsys.readouterr().out


def test_setup_cell_bootstraps_package_then_calls_colab_setup(fake_colab, monkeypatch):
    """Execute the cell's source as Colab would: it pip-installs from REPO_URL, then runs colab_setup."""
    bootstrap, setup_calls = [], []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: bootstrap.append(cmd))
    monkeypatch.setattr(colab, "colab_setup", lambda: setup_calls.append(True))
    exec(colab.SETUP_CELL_SOURCE, {})
    assert bootstrap == [[sys.executable, "-m", "pip", "install", "-q", f"git+{colab.REPO_URL}"]]
    assert setup_calls == [True]


def test_setup_cell_is_silent_locally(monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("setup cell ran a command locally"))
    exec(colab.SETUP_CELL_SOURCE, {})


def test_badge_links_to_the_notebook_on_github():
    badge = colab.colab_badge("notebooks/01_classical_cs.ipynb")
    assert badge == ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                     "(https://colab.research.google.com/github/dipcourse/dipcourse/blob/main/notebooks/01_classical_cs.ipynb)")
    with pytest.raises(ValueError, match="GitHub"):
        colab.colab_url("x.ipynb", repo_url="https://gitlab.com/a/b")


def _lesson():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Lesson 9: a title\n\nIntro."),
                nbformat.v4.new_code_cell("x = 1")]
    return nb


def test_stamp_inserts_badge_keeps_title_and_adds_setup_cell():
    nb = _lesson()
    assert stamp.stamp(nb, "notebooks/09_x.ipynb")
    first, setup, body = nb.cells
    assert first.source.splitlines()[0] == colab.colab_badge("notebooks/09_x.ipynb")
    assert first.source.endswith("# Lesson 9: a title\n\nIntro.")
    assert setup.cell_type == "code" and setup.source == colab.SETUP_CELL_SOURCE
    assert body.source == "x = 1"
    nbformat.validate(nb)


def test_stamp_twice_changes_nothing_and_keeps_outputs():
    nb = _lesson()
    stamp.stamp(nb, "notebooks/09_x.ipynb")
    nb.cells[1].execution_count = 1
    assert not stamp.stamp(nb, "notebooks/09_x.ipynb")
    assert nb.cells[1].execution_count == 1 and len(nb.cells) == 3


def test_stamp_refreshes_an_outdated_setup_cell_and_badge():
    nb = _lesson()
    stamp.stamp(nb, "notebooks/old_name.ipynb")
    nb.cells[1].source = "# an old setup cell"
    assert stamp.stamp(nb, "notebooks/09_x.ipynb")
    assert [c.source for c in nb.cells].count(colab.SETUP_CELL_SOURCE) == 1 and len(nb.cells) == 3
    assert "old_name" not in nb.cells[0].source and nb.cells[0].source.count("colab-badge.svg") == 1


def test_stamp_without_title_cell_inserts_a_badge_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    stamp.stamp(nb, "notebooks/09_x.ipynb")
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code"]


def test_stamp_cli_writes_the_file(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    path = tmp_path / "notebooks" / "09_x.ipynb"
    path.parent.mkdir()
    nbformat.write(_lesson(), path)
    assert stamp.main([str(path)]) == 0
    nb = nbformat.read(path, as_version=4)
    assert "blob/main/notebooks/09_x.ipynb" in nb.cells[0].source
    assert nb.cells[1].source == colab.SETUP_CELL_SOURCE
