from alldag.evaluate import evaluate_model
from alldag.rulelog import run_rule

inp, out, w = snakemake.input, snakemake.output, snakemake.wildcards
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: evaluate_model(
        inp.model,
        inp.manifest,
        list(snakemake.params.classes),
        snakemake.params.image_size,
        f"{w.task}/{w.backbone}/fold{w.fold}",
        out.metrics,
        out.predictions,
        out.confusion,
        out.roc,
        out.reliability,
    ),
)
