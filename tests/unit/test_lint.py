"""The code passes ruff: its lint rules and its format, as configured in pyproject.toml (what `make lint` runs)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workflow_helpers import REPO


def _ruff() -> str:
    beside = Path(sys.executable).with_name("ruff")
    found = str(beside) if beside.exists() else shutil.which("ruff")
    assert found, "ruff is not installed: it comes with the test extra (pip install -e '.[test]')"
    return found


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_is_clean(command):
    proc = subprocess.run([_ruff(), *command, "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, (
        f"`ruff {' '.join(command)} .` found problems (`ruff check --fix .` and "
        f"`ruff format .` fix most):\n{proc.stdout[-5000:]}{proc.stderr[-2000:]}"
    )
