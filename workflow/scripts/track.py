from alldag.rulelog import run_rule
from alldag.track import track_model
from alldag.tracking import Tracking

inp, p = snakemake.input, snakemake.params
# The colour baseline has no training or explanation files (a Namedlist: `in` would test its values).
trained = "model" in inp.keys()  # noqa: SIM118
artefacts = {
    "figures": [inp.confusion, inp.roc, inp.reliability] + ([inp.curves, inp.gallery] if trained else []),
    "evaluation": [inp.predictions, inp.metrics],
    "": [inp.history, inp.augmentation, inp.manifest] if trained else [],
    "explanation": [inp.explanations, inp.agreement, inp.explanation_summary] if trained else [],
}
run_rule(
    snakemake.log[0],
    snakemake.threads,
    lambda: track_model(
        tracking=Tracking.from_params(dict(p.tracking)),
        run_json=inp.run,
        split_manifest=inp.manifest,
        artefacts=artefacts,
        tracked_out=snakemake.output.tracked,
        metrics_json=inp.metrics,
        history=inp.history if trained else None,
        explanation_summary=inp.explanation_summary if trained else None,
        model=inp.model if trained else None,
        classes=list(p.classes),
        stress_metrics=[inp.stain_probes, *(files["metrics"] for files in p.external.values())],
        external_sets={name: files["images"] for name, files in p.external.items()},
    ),
)
