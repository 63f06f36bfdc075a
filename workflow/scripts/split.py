import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from alldag.rulelog import run_rule  # noqa: E402

from alldag.split import write_split  # noqa: E402

p = snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: write_split(
        snakemake.input.subset,
        list(snakemake.output.manifests),
        p.folds,
        p.val_fraction,
        p.test_fraction,
        p.seed,
        p.group_blocks,
        task=snakemake.wildcards.task,
    ),
)
