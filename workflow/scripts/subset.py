from alldag.data import select_subset
from alldag.rulelog import run_rule
from alldag.tables import read_tsv, write_tsv_atomic

p = snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: write_tsv_atomic(
        select_subset(read_tsv(snakemake.input.images), list(p.classes), max_per_class=p.max_per_class, seed=p.seed),
        snakemake.output.subset,
    ),
)
