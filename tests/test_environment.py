"""environment.yml (conda) and pyproject.toml (pip) must list the same packages with the same bounds."""
import pathlib
import re

import pytest
import yaml
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = pathlib.Path(__file__).resolve().parents[1]
# conda-forge spells some packages differently from PyPI.
CONDA_TO_PYPI = {"pytorch": "torch"}
# Entries of environment.yml that are not Python dependencies of the package.
NOT_PYTHON_DEPENDENCIES = {"python", "pip", "liblapacke", "-e ."}


def _normal(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _as_pairs(requirements):
    pairs = {}
    for text in requirements:
        req = Requirement(text)
        name = _normal(CONDA_TO_PYPI.get(req.name, req.name))
        assert name not in pairs, f"{name} listed twice"
        pairs[name] = str(req.specifier)
    return pairs


def pyproject_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    listed = list(project["dependencies"])
    for name, reqs in extras.items():
        listed += [r for r in reqs if not r.startswith("dipcourse[")]
    return _as_pairs(listed)


def environment_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = []
    for dep in env["dependencies"]:
        listed += dep["pip"] if isinstance(dep, dict) else [dep]
    python_deps = []
    for text in listed:
        name = re.split(r"[<>=! ]", text, maxsplit=1)[0]
        if text not in NOT_PYTHON_DEPENDENCIES and name not in NOT_PYTHON_DEPENDENCIES:
            python_deps.append(text)
    return _as_pairs(python_deps)


def test_same_packages_and_bounds():
    pip, conda = pyproject_requirements(), environment_requirements()
    assert sorted(pip) == sorted(conda), (
        f"only in pyproject.toml: {sorted(set(pip) - set(conda))}; "
        f"only in environment.yml: {sorted(set(conda) - set(pip))}")
    assert pip == conda, {name: (pip[name], conda[name]) for name in pip if pip[name] != conda[name]}


def test_environment_installs_the_package_itself():
    assert "-e ." in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"][-1]["pip"]


def test_extra_all_holds_every_optional_backend():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    all_extras = Requirement(extras["all"][0]).extras
    assert all_extras == set(extras) - {"all"}


def test_python_bound_matches():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert f"python{project['requires-python']}" in env["dependencies"]
