"""Run the real Snakemake workflow in a scratch working directory (shared by the workflow tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str, config: Path | None = None, env: dict | None = None,
              timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run snakemake on this repository's Snakefile in workdir; returns the finished process."""
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    if config is not None:
        cmd += ["--configfile", str(config)]
    full_env = {**os.environ, "ALLDAG_OFFLINE": "1", **(env or {})}
    return subprocess.run(cmd + list(args), cwd=workdir, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The alldag error lines a failed run printed."""
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("alldag: error:")]
