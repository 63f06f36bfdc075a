import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from alldag.rulelog import run_rule  # noqa: E402

from alldag.train import settings_from_params, train_model  # noqa: E402

out = snakemake.output
settings, tracking = settings_from_params({**dict(snakemake.params), **dict(snakemake.wildcards)})
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: train_model(
        settings, snakemake.input.manifest, snakemake.input.augmentation, tracking, out.model, out.history, out.curves, out.run,
        checkpoint_every_s=60 * snakemake.params.train["checkpoint_minutes"],
        mixed_precision=snakemake.params.train["mixed_precision"],
    ),
)
