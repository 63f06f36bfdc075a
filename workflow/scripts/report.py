import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from alldag.rulelog import run_rule  # noqa: E402

from alldag.report import report_job  # noqa: E402

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: report_job(
        {k: getattr(snakemake.input, k) for k in snakemake.input.keys()},
        dict(snakemake.params),
        {k: getattr(snakemake.output, k) for k in snakemake.output.keys()},
    ),
)
