from alldag.rulelog import run_rule
from alldag.split import check_leakage

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: check_leakage(manifest_paths=list(snakemake.input.manifests), report_tsv=snakemake.output.report),
)
