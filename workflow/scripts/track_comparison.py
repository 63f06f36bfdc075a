from alldag.rulelog import run_rule
from alldag.track import track_comparison, tracked_runs_from_table
from alldag.tracking import Tracking

inp, p = snakemake.input, snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: track_comparison(
        task=snakemake.wildcards.task,
        tracking=Tracking.from_params(dict(p.tracking)),
        comparison=inp.comparison,
        paired=inp.paired,
        figure=inp.figure,
        provenance=inp.provenance,
        tracked_runs=tracked_runs_from_table(p.runs),
        tracked_out=snakemake.output.tracked,
    ),
)
