from alldag.rulelog import run_rule
from alldag.synthetic import generate_external_set

spec = dict(snakemake.params.spec)
synthetic = dict(spec["synthetic"])
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: generate_external_set(
        snakemake.output.folder,
        {label: synthetic["images_per_class"] for label in spec["classes"]},
        synthetic["seed"],
        palette=synthetic["palette"],
        magnification=synthetic["magnification"],
        jpeg_quality=synthetic["jpeg_quality"],
    ),
)
