"""envs/*.yaml and the locks: generated from pyproject.toml, in step with the lock."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GUARD_DIR = REPO / "tests" / "envguard"
sys.path.insert(0, str(GUARD_DIR))
sys.path.insert(0, str(REPO / "tools"))
import alldag_envguard  # noqa: E402
import envs as env_tool  # noqa: E402

ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
PIP_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]+\])?==([A-Za-z0-9][A-Za-z0-9.+!_-]*)$")


def _pip(path: Path) -> list[str]:
    return alldag_envguard.env_pip_lines(path)


def test_env_files_are_what_make_envs_writes_from_pyproject():
    assert env_tool.stale_files() == [], "envs/ is out of date with pyproject.toml: run `make envs`"
    assert {p.stem for p in ENV_FILES} >= {"data", "train", "train-gpu", "evaluate", "explain", "report"}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_are_pyproject_pins_and_their_dependencies_the_lock(path):
    pins = env_tool.pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"])
    lock = env_tool.read_lock(REPO / ("requirements-gpu.lock" if path.stem == "train-gpu" else "requirements.lock"))
    env = yaml.safe_load(path.read_text())
    assert env["channels"] == ["conda-forge", "nodefaults"]
    assert env["dependencies"][:2] == [env_tool.CONDA_PYTHON, env_tool.CONDA_PIP]
    listed = set()
    for line in _pip(path):
        m = PIP_PIN.match(line.split(" ; ")[0])
        assert m, f"{path.name}: pip dependency {line!r} is not name==version"
        name = env_tool.norm(m.group(1))
        listed.add(name)
        assert re.sub(r"\[[^\]]+\]", "", line) in lock[name][0], (
            f"{path.name}: {line} is not what the lock pins ({lock[name][0]}): run `make lock`"
        )
        if name in pins:
            assert pins[name] == m.group(3), f"{path.name}: {line} differs from pyproject.toml"
    assert {"numpy", "pandas"} <= listed and "pytest" not in listed
    assert (path.parent / f"{path.stem}.post-deploy.sh").is_file()


def test_env_dependencies_follow_the_lock_graph():
    """Each env pins its packages' dependencies (as the lock has them), and nothing only other envs need."""
    report = _pip(REPO / "envs" / "report.yaml")
    assert "markupsafe==3.0.4" in report and "python-dateutil==2.9.0.post0" in report  # jinja2's, pandas'
    assert not any(line.startswith(("tensorflow", "keras", "mlflow", "kagglehub", "pytest")) for line in report)
    gpu = _pip(REPO / "envs" / "train-gpu.yaml")
    assert any(line.startswith("nvidia-cudnn-cu12==") for line in gpu)
    assert not any(line.startswith("nvidia-") for line in _pip(REPO / "envs" / "train.yaml"))


def test_every_rule_with_a_script_has_an_env():
    rules = alldag_envguard.rule_envs()
    assert set(rules) >= {
        "download",
        "audit",
        "subset",
        "split",
        "check_leakage",
        "augment",
        "train",
        "train_small_cnn",
        "evaluate",
        "colour_baseline",
        "compare",
        "explain",
        "report",
        "stain_probe_images",
        "stain_probe_colour_baseline",
        "stain_probe_summary",
        "external_synthetic",
        "external_audit",
        "external_validation",
        "external_summary",
    }
    for rule, (_, envs) in rules.items():
        assert envs and all(e.is_file() for e in envs), f"rule {rule}: conda env {envs} missing"
    assert [e.name for e in rules["train"][1]] == ["train.yaml", "train-gpu.yaml"]


def test_closure_follows_declared_dependencies_and_extras():
    closure = alldag_envguard.closure(REPO / "envs" / "report.yaml")
    assert {"jinja2", "markupsafe", "pandas", "python-dateutil", "six", "matplotlib", "pillow"} <= closure
    assert "tensorflow" not in closure and "mlflow" not in closure


def test_gpu_env_is_the_training_env_with_cuda_tensorflow():
    specs = env_tool.env_specs()
    assert [line.replace("tensorflow==", "tensorflow[and-cuda]==") for line in specs["train"]] == specs["train-gpu"]
    cpu, gpu = _pip(REPO / "envs" / "train.yaml"), _pip(REPO / "envs" / "train-gpu.yaml")
    cuda = [line for line in gpu if line.startswith("nvidia-")]
    assert len(cuda) >= 10 and [line for line in gpu if line not in cuda] == [
        line.replace("tensorflow==", "tensorflow[and-cuda]==") for line in cpu
    ]


def test_booleans_from_the_command_line_become_booleans():
    from alldag.config import booleans_from_cli

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    config = {"train": {"require_gpu": "true", "mixed_precision": "on"}}
    assert booleans_from_cli(config, schema) == {"train": {"require_gpu": True, "mixed_precision": "on"}}


def _lock_versions(path: Path) -> dict[str, set[str]]:
    """{name: versions} of a uv/pip-tools lock; asserts every requirement carries hashes."""
    text = path.read_text()
    versions: dict[str, set[str]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2]):
        m = re.match(r"([A-Za-z0-9._-]+)==([^ ;\\]+)", block)
        if m:
            assert "--hash=sha256:" in block, f"{path.name}: {m.group(0)} has no hash"
            versions.setdefault(env_tool.norm(m.group(1)), set()).add(m.group(2))
    return versions


@pytest.mark.parametrize("lock, gpu", [("requirements.lock", False), ("requirements-gpu.lock", True)])
def test_lock_holds_every_pyproject_pin(lock, gpu):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = env_tool.lock_extras() + ["gpu"] * gpu
    assert "test" in extras and "lock" not in extras
    wanted = project["dependencies"] + [d for e in extras for d in project["optional-dependencies"][e]]
    locked = _lock_versions(REPO / lock)
    for dep in wanted:
        m = PIP_PIN.match(dep)
        name = env_tool.norm(m.group(1))
        assert locked.get(name) == {m.group(3)}, (
            f"{lock} has {name} {locked.get(name)}, pyproject.toml pins {m.group(3)}: run `make lock`"
        )
    assert ("nvidia-cudnn-cu12" in locked) == ("gpu" in extras)
