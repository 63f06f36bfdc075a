from alldag.jobs import named_files
from alldag.rulelog import run_rule
from alldag.stain import ProbeImageOutputs, ProbeImageSettings, write_probed_images

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: write_probed_images(
        manifest=snakemake.input.manifest,
        settings=ProbeImageSettings(seed=snakemake.params.seed),
        outputs=named_files(ProbeImageOutputs, snakemake.output),
    ),
)
