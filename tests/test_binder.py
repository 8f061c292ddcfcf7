"""binder/ (what repo2docker builds mybinder.org's and JupyterHubs' images from) agrees with the rest.

Same Python dependencies and bounds as pyproject.toml and environment.yml, the same torch pin and
CPU index as the Makefile and CI, the apt packages CI installs for prox-tv, the package installed
with its optional backends, and nothing that would make repo2docker read another configuration.
``.ci/binder_check`` performs the install these files describe; this test keeps them consistent.
"""
import os
import pathlib
import re

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from test_environment import environment_requirements

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = pathlib.Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
# repo2docker configuration files this repository uses (any other would change how it builds).
BINDER_FILES = {"apt.txt", "requirements.txt", "postBuild", "runtime.txt"}
# In binder/requirements.txt only: the hub's link handler (README, "Binder and JupyterHub").
HUB_ONLY = {"nbgitpuller"}
# Installed by CI for the tests only: no student needs a browser inside the hub.
TEST_ONLY_APT = {"chromium"}
# Extras that are tools for developers, not parts of the course.
TOOL_EXTRAS = {"test", "site", "all"}


def binder_requirements():
    """binder/requirements.txt as ({name: specifier}, [extra index URLs])."""
    pairs, indexes = {}, []
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.partition("#")[0].strip()
        if line.startswith("--extra-index-url"):
            indexes.append(line.split()[1])
        elif line:
            req = Requirement(line)
            pairs[re.sub(r"[-_.]+", "-", req.name).lower()] = str(req.specifier)
    return pairs, indexes


def makefile_default(name):
    match = re.search(rf"^{name} \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, f"Makefile sets no default for {name}"
    return match.group(1)


def test_repo2docker_reads_binder_only():
    """With binder/ present repo2docker ignores the root's files (environment.yml, pyproject.toml);
    binder/ must hold no environment.yml (it would switch to conda) and .binder/ must not exist."""
    assert sorted(p.name for p in BINDER.iterdir()) == sorted(BINDER_FILES)
    assert not (ROOT / ".binder").exists(), "repo2docker refuses a repository with both binder/ and .binder/"


def test_requirements_match_pyproject_and_environment():
    pins, _ = binder_requirements()
    listed = {name: spec for name, spec in pins.items() if name not in HUB_ONLY and name != "torch"}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dependencies = {re.sub(r"[-_.]+", "-", Requirement(r).name).lower(): str(Requirement(r).specifier)
                    for r in project["dependencies"]}
    dependencies.pop("torch")
    assert listed == dependencies, ("binder/requirements.txt and pyproject.toml's dependencies differ "
                                    "(a package only the hub needs goes in HUB_ONLY)")
    conda = environment_requirements()
    assert {name: conda.get(name) for name in listed} == listed, "binder/requirements.txt and environment.yml differ"


def test_torch_is_the_pinned_cpu_wheel():
    pins, indexes = binder_requirements()
    make_torch = Requirement(makefile_default("TORCH"))
    assert pins["torch"] == str(make_torch.specifier) and pins["torch"].startswith("==")
    pinned = Version(pins["torch"].removeprefix("=="))
    ci = next(Requirement(line) for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines()
              if line.startswith("torch"))
    assert Version(next(iter(ci.specifier)).version).public == str(pinned), "CI pins another torch"
    project_torch = next(Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())
                         ["project"]["dependencies"] if r.startswith("torch"))
    assert pinned in project_torch.specifier
    assert indexes == [makefile_default("TORCH_INDEX")] == ["https://download.pytorch.org/whl/cpu"]


def test_apt_packages_are_what_ci_installs_for_prox_tv():
    apt = {line.partition("#")[0].strip() for line in (BINDER / "apt.txt").read_text().splitlines()} - {""}
    install = re.search(r"apt-get install .*?--no-install-recommends (.+)$", (ROOT / ".ci" / "run").read_text(), re.M)
    assert install, ".ci/run installs no apt packages"
    assert apt == set(install.group(1).split()) - TEST_ONLY_APT


def test_post_build_installs_the_package_with_its_backends():
    script = (BINDER / "postBuild").read_text()
    assert script.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in script, "without set -e repo2docker carries on after a failed command"
    install = re.search(r'pip install --no-cache-dir "\.\[([a-z0-9,]+)\]"', script)
    assert install, "postBuild does not pip install the package (not editable) with extras"
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert set(install.group(1).split(",")) == extras - TOOL_EXTRAS
    assert os.access(BINDER / "postBuild", os.X_OK)


def test_jupyterlab_opens_on_a_lesson():
    urls = set(re.findall(r'"(/lab/tree/[^"]+)"', (BINDER / "postBuild").read_text()))
    assert len(urls) == 1 and (ROOT / urls.pop().removeprefix("/lab/tree/")).is_file()


def test_runtime_python_is_supported():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert match, f"binder/runtime.txt must read python-X.Y, not {runtime!r}"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert Version(match.group(1)) in Requirement(f"python{requires}").specifier


def test_ci_runs_the_binder_check_after_make_test():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    make_test = next(i for i, line in enumerate(lines) if line.startswith("make test"))
    check = [i for i, line in enumerate(lines) if line.startswith("bash .ci/binder_check")]
    assert len(check) == 1 and check[0] > make_test
    assert (ROOT / ".ci" / "binder_check").is_file()
