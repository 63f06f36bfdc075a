from alldag.augment import write_augmentation
from alldag.rulelog import run_rule

p = snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: write_augmentation(
        manifest=snakemake.input.manifest,
        augment=dict(p.augment),
        seed=p.seed,
        image_size=p.image_size,
        spec_out=snakemake.output.spec,
        preview_out=snakemake.output.preview,
    ),
)
