from alldag.explain import explain_model
from alldag.rulelog import run_rule

inp, out, w, p = snakemake.input, snakemake.output, snakemake.wildcards, snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: explain_model(
        inp.model,
        inp.manifest,
        list(p.classes),
        p.image_size,
        f"{w.task}/{w.backbone}/fold{w.fold}",
        dict(p.explain),
        p.seed,
        out.heatmaps,
        out.gallery,
        out.explanations,
        out.agreement,
        out.summary,
    ),
)
