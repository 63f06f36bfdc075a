"""Every rule's imports resolve with only its env's packages: each env checked in a fresh interpreter under the
import guard (tests/envguard), which imports TensorFlow for most envs (tens of seconds each)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from workflow_helpers import REPO

GUARD_DIR = REPO / "tests" / "envguard"
sys.path.insert(0, str(GUARD_DIR))
import alldag_envguard  # noqa: E402


def _guard_run(code: str) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter that imports from this worktree's src/ and the guard module."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(GUARD_DIR)]),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize(
    "env", sorted({e for _, envs in alldag_envguard.rule_envs().values() for e in envs}), ids=lambda p: p.name
)
def test_rules_import_only_what_their_env_provides(env):
    """Every rule's script imports, and the lazy imports of the alldag modules it calls, resolve with only
    the env's closure importable (the DAG tests guard each job's real imports the same way)."""
    proc = _guard_run(
        f"import sys, alldag_envguard as g; from pathlib import Path\n"
        f"problems = g.check_env(Path({str(env)!r}))\nprint(*problems, sep='\\n'); sys.exit(bool(problems))"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]


def test_guard_names_the_rule_the_module_and_the_env_file(tmp_path):
    """The report env as it was (jinja2, pandas, numpy, scikit-learn) misses three packages the report imports."""
    env = tmp_path / "report-incomplete.yaml"
    env.write_text(
        yaml.safe_dump(
            {"dependencies": [{"pip": ["jinja2==3.1.6", "pandas==3.1.1", "numpy==2.4.6", "scikit-learn==1.9.1"]}]}
        )
    )
    proc = _guard_run(
        textwrap.dedent(f"""
        import alldag_envguard as g
        from pathlib import Path
        env = Path({str(env)!r})
        g.rule_envs = lambda: {{"report": ("report.py", [env])}}
        print(*g.check_env(env), sep="\\n")""")
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr[-3000:]
    for module, dist in (("yaml", "pyyaml"), ("PIL", "pillow"), ("matplotlib", "matplotlib")):
        assert (
            f"rule report (report.py) imports {module} ({dist}), which envs/report-incomplete.yaml does not "
            "provide: add it to [tool.alldag.envs] in pyproject.toml and run `make envs`" in lines
        ), lines
    assert len(lines) == 3, lines
