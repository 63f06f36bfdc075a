from alldag.baseline import run_colour_baseline
from alldag.rulelog import run_rule
from alldag.tracking import Tracking

out, w, p = snakemake.output, snakemake.wildcards, snakemake.params
figures = {f"{k}_out": out[k] for k in ("metrics", "predictions", "confusion", "roc", "reliability")}
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: run_colour_baseline(
        snakemake.input.manifest,
        list(p.classes),
        p.seed,
        f"{w.task}/colour_baseline/fold{w.fold}",
        Tracking.from_params(dict(p.tracking)),
        figures,
        out.run,
        threads=snakemake.threads,
        image_level_out=out.image_level,
        split=dict(p.split),
    ),
)
