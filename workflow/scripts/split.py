from alldag.rulelog import run_rule
from alldag.split import SplitSettings, write_split

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: write_split(
        subset=snakemake.input.subset,
        manifests=list(snakemake.output.manifests),
        settings=SplitSettings.from_params(snakemake.params),
        task=snakemake.wildcards.task,
    ),
)
