from alldag.audit import AuditOutputs, AuditSettings, audit_dataset
from alldag.jobs import named_files
from alldag.rulelog import run_rule

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: audit_dataset(
        dataset=snakemake.input.dataset,
        fixed_dir=snakemake.params.fixed_dir,
        settings=AuditSettings.from_params(snakemake.params),
        outputs=named_files(AuditOutputs, snakemake.output),
        threads=snakemake.threads,
    ),
)
