from alldag.rulelog import run_rule
from alldag.weights import WeightsFile, fetch_weights

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: fetch_weights(entry=WeightsFile(**snakemake.params.entry), dest=snakemake.output.weights),
)
