"""Benchmark: the default offline run (`snakemake --cores all` with config.yaml -> synthetic demo).

Targets: the full run finishes in <= 600 s on a 2-core machine; a second invocation right after
runs no job and returns in <= 5 s. Runs in a scratch working directory (nothing in results/ is touched).

Usage: .venv/bin/python bench/bench_workflow.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dag import OFFLINE_ENV, REPO, snakemake_command

FULL_TARGET_S, NOOP_TARGET_S = 600.0, 5.0


def timed_run(workdir: Path) -> tuple[float, str]:
    cmd = snakemake_command(workdir, REPO / "config.yaml")
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=OFFLINE_ENV)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"snakemake failed:\n{proc.stderr[-4000:]}")
    return elapsed, proc.stdout + proc.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=Path, help="working directory to use and keep (default: a temporary one)")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="alldag-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    full, log = timed_run(workdir)
    jobs = [line for line in log.splitlines() if line.strip().startswith("total")]
    noop, log2 = timed_run(workdir)
    print(f"cores: {os.cpu_count()}; workdir: {workdir}")
    print(
        f"full default run: {full:7.1f} s  ({jobs[0].strip() if jobs else '?'} jobs; target <= {FULL_TARGET_S:.0f} s)"
    )
    print(
        f"no-op rerun:      {noop:7.2f} s  (target <= {NOOP_TARGET_S:.0f} s; "
        f"{'nothing run' if 'Nothing to be done' in log2 else 'JOBS RAN'})"
    )
    ok = full <= FULL_TARGET_S and noop <= NOOP_TARGET_S and "Nothing to be done" in log2
    print("targets:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
