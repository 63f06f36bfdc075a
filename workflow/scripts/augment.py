from alldag.augment import AugmentOutputs, AugmentSettings, write_augmentation
from alldag.jobs import named_files
from alldag.rulelog import run_rule

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: write_augmentation(
        manifest=snakemake.input.manifest,
        settings=AugmentSettings.from_params(snakemake.params),
        outputs=named_files(AugmentOutputs, snakemake.output),
    ),
)
