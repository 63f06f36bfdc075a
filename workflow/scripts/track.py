from alldag.rulelog import run_rule
from alldag.track import TrackInputs, TrackSettings, track_model

run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: track_model(
        settings=TrackSettings.from_params(snakemake.params),
        inputs=TrackInputs.from_job(snakemake.input, snakemake.params.external),
        tracked_out=snakemake.output.tracked,
    ),
)
