import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from alldag.rulelog import run_rule  # noqa: E402

from alldag.split import check_leakage  # noqa: E402

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: check_leakage(list(snakemake.input.manifests), snakemake.output.report),
)
