from alldag.jobs import named_files
from alldag.report import ReportInputs, ReportOutputs, build_report
from alldag.rulelog import run_rule

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: build_report(
        inputs=ReportInputs.from_table(list(snakemake.params.inputs)),
        config=snakemake.params.config,
        outputs=named_files(ReportOutputs, snakemake.output),
        parent_run_file=snakemake.params.parent_run_file,
    ),
)
