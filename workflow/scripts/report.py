from alldag.report import report_job
from alldag.rulelog import run_rule

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: report_job(
        {k: getattr(snakemake.input, k) for k in snakemake.input.keys()},  # noqa: SIM118 (a Namedlist iterates values)
        dict(snakemake.params),
        {k: getattr(snakemake.output, k) for k in snakemake.output.keys()},  # noqa: SIM118
    ),
)
