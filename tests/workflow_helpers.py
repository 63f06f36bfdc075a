"""Run the real Snakemake workflow in a scratch working directory (shared by the workflow tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def workflow_env(env: dict | None = None) -> dict:
    """The environment of a workflow run: offline, every job importing only what its rule's conda env
    provides (tests/envguard), plus env. An MLFLOW_TRACKING_URI that an in-process test left behind
    (mlflow.set_tracking_uri exports it) is dropped unless env sets it."""
    inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    path = os.pathsep.join(p for p in (str(REPO / "tests" / "envguard"), inherited.get("PYTHONPATH")) if p)
    return {**inherited, "ALLDAG_OFFLINE": "1", "ALLDAG_ENV_GUARD": "1", "PYTHONPATH": path, **(env or {})}


def _command(workdir: Path, args, config: Path | None, env: dict | None) -> tuple[list[str], dict]:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    if config is not None:
        cmd += ["--configfile", str(config)]
    return cmd + list(args), workflow_env(env)


def snakemake(
    workdir: Path, *args: str, config: Path | None = None, env: dict | None = None, timeout: int = 1800
) -> subprocess.CompletedProcess:
    """Run snakemake on this repository's Snakefile in workdir; returns the finished process."""
    cmd, full_env = _command(workdir, args, config, env)
    return subprocess.run(cmd, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout)


class Background:
    """A snakemake run started in the background (output in files, so it never blocks on a full pipe)."""

    def __init__(self, workdir: Path, *args: str, config: Path | None = None, env: dict | None = None):
        cmd, full_env = _command(workdir, args, config, env)
        self.out, self.err = workdir / "snakemake.stdout", workdir / "snakemake.stderr"
        self.start = time.monotonic()
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(cmd, cwd=workdir, env=full_env, stdout=out, stderr=err, text=True)

    def wait(self, timeout: int = 1800) -> tuple[subprocess.CompletedProcess, float]:
        """The finished process (as snakemake() returns it) and the seconds since the start."""
        self.proc.wait(timeout=timeout)
        seconds = time.monotonic() - self.start
        return subprocess.CompletedProcess(
            self.proc.args, self.proc.returncode, self.out.read_text(), self.err.read_text()
        ), seconds

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The alldag error lines a failed run printed."""
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("alldag: error:")]
