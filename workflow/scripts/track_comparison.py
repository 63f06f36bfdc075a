from alldag.rulelog import run_rule
from alldag.track import ComparisonTrackInputs, ComparisonTrackSettings, track_comparison

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: track_comparison(
        settings=ComparisonTrackSettings.from_params(snakemake.params, snakemake.wildcards.task),
        inputs=ComparisonTrackInputs.from_job(snakemake.input, snakemake.params.runs),
        tracked_out=snakemake.output.tracked,
    ),
)
