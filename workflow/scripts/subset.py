from alldag.data import read_tsv, select_subset, write_tsv_atomic
from alldag.rulelog import run_rule

p = snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: write_tsv_atomic(
        select_subset(read_tsv(snakemake.input.images), list(p.classes), max_per_class=p.max_per_class, seed=p.seed),
        snakemake.output.subset,
    ),
)
