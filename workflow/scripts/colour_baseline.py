from alldag.baseline import BaselineOutputs, BaselineSettings, run_colour_baseline
from alldag.evaluate import EvaluationOutputs
from alldag.jobs import named_files
from alldag.rulelog import run_rule
from alldag.tracking import Tracking

out = snakemake.output
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: run_colour_baseline(
        manifest=snakemake.input.manifest,
        settings=BaselineSettings.from_params(snakemake.params, snakemake.wildcards),
        tracking=Tracking.from_params(dict(snakemake.params.tracking)),
        outputs=BaselineOutputs(
            evaluation=named_files(EvaluationOutputs, out),
            run=out.run,
            image_level=out.image_level,
            by_grouping=out.by_grouping,
        ),
        threads=snakemake.threads,
    ),
)
