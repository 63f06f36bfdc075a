from alldag.audit import audit_dataset
from alldag.rulelog import run_rule

p, out = snakemake.params, snakemake.output
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: audit_dataset(
        snakemake.input.dataset,
        p.fixed_dir,
        p.image_size,
        p.near_threshold,
        p.mask_min_fraction,
        out.images,
        out.quarantine,
        out.duplicates,
        out.summary,
        threads=snakemake.threads,
    ),
)
