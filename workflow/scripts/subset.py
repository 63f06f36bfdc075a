import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from alldag.rulelog import run_rule  # noqa: E402

from alldag.data import read_tsv, select_subset, write_tsv_atomic  # noqa: E402

p = snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: write_tsv_atomic(
        select_subset(read_tsv(snakemake.input.images), list(p.classes), p.max_per_class, p.seed),
        snakemake.output.subset,
    ),
)
