"""envs/*.yaml and the locks: generated from pyproject.toml, complete for the rules that use them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
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


def _guard_run(code: str) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter that imports from this worktree's src/ and the guard module."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(GUARD_DIR)]),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)


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
        assert re.sub(r"\[[^\]]+\]", "", line) in lock[name][0], f"{path.name}: {line} is not what the lock pins ({lock[name][0]}): run `make lock`"
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
    assert set(rules) >= {"download", "audit", "subset", "split", "check_leakage", "augment", "train",
                          "train_small_cnn", "evaluate", "colour_baseline", "compare", "explain", "report"}
    for rule, (_, envs) in rules.items():
        assert envs and all(e.is_file() for e in envs), f"rule {rule}: conda env {envs} missing"
    assert [e.name for e in rules["train"][1]] == ["train.yaml", "train-gpu.yaml"]


@pytest.mark.parametrize("env", sorted({e for _, envs in alldag_envguard.rule_envs().values() for e in envs}),
                         ids=lambda p: p.name)
def test_rules_import_only_what_their_env_provides(env):
    """Every rule's script imports, and the lazy imports of the alldag modules it calls, resolve with only
    the env's closure importable (the DAG tests guard each job's real imports the same way)."""
    proc = _guard_run(f"import sys, alldag_envguard as g; from pathlib import Path\n"
                      f"problems = g.check_env(Path({str(env)!r}))\nprint(*problems, sep='\\n'); sys.exit(bool(problems))")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]


def test_guard_names_the_rule_the_module_and_the_env_file(tmp_path):
    """The report env as it was (jinja2, pandas, numpy, scikit-learn) misses three packages the report imports."""
    env = tmp_path / "report-incomplete.yaml"
    env.write_text(yaml.safe_dump({"dependencies": [{"pip": [
        "jinja2==3.1.6", "pandas==3.1.1", "numpy==2.4.6", "scikit-learn==1.9.1"]}]}))
    proc = _guard_run(textwrap.dedent(f"""
        import alldag_envguard as g
        from pathlib import Path
        env = Path({str(env)!r})
        g.rule_envs = lambda: {{"report": ("report.py", [env])}}
        print(*g.check_env(env), sep="\\n")"""))
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr[-3000:]
    for module, dist in (("yaml", "pyyaml"), ("PIL", "pillow"), ("matplotlib", "matplotlib")):
        assert f"rule report (report.py) imports {module} ({dist}), which envs/report-incomplete.yaml does not " \
               "provide: add it to [tool.alldag.envs] in pyproject.toml and run `make envs`" in lines, lines
    assert len(lines) == 3, lines


def test_closure_follows_declared_dependencies_and_extras():
    closure = alldag_envguard.closure(REPO / "envs" / "report.yaml")
    assert {"jinja2", "markupsafe", "pandas", "python-dateutil", "six", "matplotlib", "pillow"} <= closure
    assert "tensorflow" not in closure and "mlflow" not in closure


def test_gpu_env_is_the_training_env_with_cuda_tensorflow():
    specs = env_tool.env_specs()
    assert [line.replace("tensorflow==", "tensorflow[and-cuda]==") for line in specs["train"]] == specs["train-gpu"]
    cpu, gpu = _pip(REPO / "envs" / "train.yaml"), _pip(REPO / "envs" / "train-gpu.yaml")
    cuda = [line for line in gpu if line.startswith("nvidia-")]
    assert len(cuda) >= 10 and [line for line in gpu if line not in cuda] == \
        [line.replace("tensorflow==", "tensorflow[and-cuda]==") for line in cpu]


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
        assert locked.get(name) == {m.group(3)}, f"{lock} has {name} {locked.get(name)}, pyproject.toml pins " \
                                                  f"{m.group(3)}: run `make lock`"
    assert ("nvidia-cudnn-cu12" in locked) == ("gpu" in extras)
