from alldag.download import SourceDecision, materialise_dataset
from alldag.rulelog import run_rule

p = snakemake.params
syn = p.synthetic
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: materialise_dataset(
        SourceDecision(p.source, p.root, p.reason, p.demo),
        p.synthetic_dir,
        {c: syn["images_per_class"] for c in ("Benign", "Early", "Pre", "Pro")},
        syn["seed"],
        {
            "shortcut": syn["shortcut"],
            "colour_shortcut": syn["colour_shortcut"],
            "fields_per_patient": syn["fields_per_patient"],
        },
        p.folder,
        snakemake.output.dataset,
        snakemake.output.provenance,
        snakemake.output.verification,
        manifest_path=p.manifest,
        verify=p.verify,
        requested=p.requested,
    ),
)
