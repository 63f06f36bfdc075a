from alldag.rulelog import run_rule
from alldag.split import write_split

p = snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: write_split(
        snakemake.input.subset,
        list(snakemake.output.manifests),
        p.folds,
        p.val_fraction,
        p.test_fraction,
        p.seed,
        p.group_blocks,
        task=snakemake.wildcards.task,
    ),
)
