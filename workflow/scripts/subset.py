from alldag.data import SubsetSettings, write_subset
from alldag.rulelog import run_rule

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: write_subset(
        images=snakemake.input.images,
        settings=SubsetSettings.from_params(snakemake.params),
        out=snakemake.output.subset,
    ),
)
