from alldag.external import ExternalAuditOutputs, ExternalAuditSettings, audit_external
from alldag.jobs import named_files
from alldag.rulelog import run_rule

inp, p = snakemake.input, snakemake.params
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: audit_external(
        folder=inp.folder,
        fixed_dir=p.fixed_dir,
        settings=ExternalAuditSettings(
            name=snakemake.wildcards.external,
            classes=dict(p.classes),
            image_size=p.image_size,
            near_threshold=p.near_threshold,
            manifest=inp.manifest if "manifest" in inp.keys() else None,  # noqa: SIM118 (a Namedlist)
        ),
        outputs=named_files(ExternalAuditOutputs, snakemake.output),
    ),
)
