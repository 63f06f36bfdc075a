import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from alldag.rulelog import run_rule  # noqa: E402

from alldag.augment import write_augmentation  # noqa: E402

p = snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: write_augmentation(
        snakemake.input.manifest, dict(p.augment), p.seed, p.image_size, snakemake.output.spec, snakemake.output.preview
    ),
)
