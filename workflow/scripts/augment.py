from alldag.augment import write_augmentation
from alldag.rulelog import run_rule

p = snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: write_augmentation(
        snakemake.input.manifest, dict(p.augment), p.seed, p.image_size, snakemake.output.spec, snakemake.output.preview
    ),
)
