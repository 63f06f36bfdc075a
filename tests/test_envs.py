"""envs/*.yaml: conda environments pin exactly what pyproject.toml pins."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
PIP_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)$")
CONDA_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)=([0-9][A-Za-z0-9.+_]*)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for dep in project["dependencies"]:
        m = PIP_PIN.match(dep.strip())
        assert m, f"pyproject.toml dependency {dep!r} is not an exact name==version pin"
        pins[_norm(m.group(1))] = m.group(2)
    return pins


def _split(env: dict) -> tuple[list[str], list[str]]:
    """(conda dependency strings, pip dependency strings) of an environment file."""
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, dep
            pip.extend(dep["pip"])
        else:
            conda.append(str(dep))
    return conda, pip


def test_env_files_exist():
    assert len(ENV_FILES) >= 1
    assert {p.stem for p in ENV_FILES} >= {"data", "train", "evaluate", "explain", "report"}


def test_pyproject_pins_are_exact():
    pins = _pyproject_pins()
    assert "tensorflow" in pins and "numpy" in pins


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_parses(path):
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict)
    assert isinstance(env.get("dependencies"), list) and env["dependencies"]


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_channels_and_python(path):
    env = yaml.safe_load(path.read_text())
    assert "conda-forge" in env["channels"]
    assert "nodefaults" in env["channels"]
    assert env["channels"][0] == "conda-forge"
    conda, _ = _split(env)
    assert "python=3.11" in conda


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_are_exact(path):
    conda, pip = _split(yaml.safe_load(path.read_text()))
    assert pip, f"{path.name} installs nothing with pip"
    for dep in pip:
        assert PIP_PIN.match(dep.strip()), f"{path.name}: pip dependency {dep!r} is not name==version"
    for dep in conda:
        assert CONDA_PIN.match(dep.strip()), f"{path.name}: conda dependency {dep!r} is not name=version"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pip_pins_match_pyproject(path):
    pins = _pyproject_pins()
    _, pip = _split(yaml.safe_load(path.read_text()))
    seen = set()
    for dep in pip:
        name, version = PIP_PIN.match(dep.strip()).groups()
        key = _norm(name)
        assert key not in seen, f"{path.name}: {name} listed twice"
        seen.add(key)
        assert key in pins, f"{path.name}: {name} is not a pyproject.toml dependency"
        assert version == pins[key], f"{path.name}: {name}=={version} but pyproject.toml pins {pins[key]}"


def test_norm():
    assert _norm("Scikit_Learn") == _norm("scikit-learn") == "scikit-learn"
    assert _norm("PyYAML") == "pyyaml"
