from alldag.compare import compare_models
from alldag.rulelog import run_rule

out, p = snakemake.output, snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: compare_models(
        snakemake.wildcards.task,
        list(p.models),
        list(snakemake.input.predictions),
        p.folds,
        list(p.classes),
        p.bootstrap,
        p.seed,
        out.comparison,
        out.paired,
        out.figure,
        image_level_paths=list(snakemake.input.image_level),
    ),
)
