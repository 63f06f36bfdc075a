from alldag.rulelog import run_rule
from alldag.track import track_comparison
from alldag.tracking import Tracking

inp, p = snakemake.input, snakemake.params
runs = list(inp.runs)  # in expand(model, fold) order
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
        tracked_runs={m: {f: runs[i * p.folds + f] for f in range(p.folds)} for i, m in enumerate(p.models)},
        tracked_out=snakemake.output.tracked,
    ),
)
