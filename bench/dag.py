"""What the DAG benchmarks share: the snakemake command for a scratch working directory, run offline."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
OFFLINE_ENV = {**os.environ, "ALLDAG_OFFLINE": "1"}  # the synthetic demo, whatever the network says


def snakemake_command(workdir: Path, configfile: Path, cores: str | int = "all") -> list[str]:
    """The workflow of this repository run in workdir with configfile on `cores` cores."""
    return [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        str(cores),
    ]
