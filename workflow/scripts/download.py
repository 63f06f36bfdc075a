from alldag.classes import CLASSES
from alldag.download import SourceDecision, materialise_dataset
from alldag.rulelog import run_rule

p, out = snakemake.params, snakemake.output
synthetic = p.synthetic
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: materialise_dataset(
        SourceDecision(**p.source),
        synthetic_dir=p.synthetic_dir,
        images_per_class={c: synthetic["images_per_class"] for c in CLASSES},
        synthetic_seed=synthetic["seed"],
        planted={k: synthetic[k] for k in ("shortcut", "colour_shortcut", "fields_per_patient")},
        folder=p.folder,
        dataset_tsv=out.dataset,
        provenance_json=out.provenance,
        verification_tsv=out.verification,
        manifest_path=p.manifest,
        verify=p.verify,
        requested=p.requested,
    ),
)
