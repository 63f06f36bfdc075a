"""Where the pipeline writes: every output path pattern, spelled once (patterns only, no logic).

The rules build their outputs from these patterns and the input functions (alldag.plan) fill them in, so a
path has one spelling. Wildcards are Snakemake's: {task}, {backbone} (a model), {fold}, {external}.
"""

from .names import (
    BASELINE_NAME,
    COMPARISON_TSV,
    DUPLICATES_TSV,
    EXPLANATION_SUMMARY_TSV,
    METRICS_JSON,
    PREDICTIONS_TSV,
    QUARANTINE_TSV,
    RUN_JSON,
    SUMMARY_JSON,
)

DATA = "results/data"
PROVENANCE = f"{DATA}/dataset.json"
AUDIT = {
    "images": f"{DATA}/images.tsv",
    "quarantine": f"{DATA}/{QUARANTINE_TSV}",
    "duplicates": f"{DATA}/{DUPLICATES_TSV}",
    "summary": f"{DATA}/audit.json",
    "masks": f"{DATA}/masks",
}
PARENT_RUN_FILE = "results/mlflow/parent_run.json"
ARTIFACT_ROOT = "results/mlartifacts"

MODEL_FOLD = "{task}/{backbone}/fold{fold}"  # one model of one task, trained on one fold
SPLIT_MANIFEST = "results/split/{task}/fold{fold}/split_manifest.tsv"
LEAKAGE_CHECK = "results/split/{task}/leakage_check.tsv"
AUGMENT_DIR = "results/augment/{task}"
MODEL_DIR = f"results/models/{MODEL_FOLD}"
EVALUATION_DIR = f"results/evaluation/{MODEL_FOLD}"
EXPLANATION_DIR = f"results/explanations/{MODEL_FOLD}"
TRACKED_DIR = f"results/mlflow/{MODEL_FOLD}"
TRACKED_JSON = f"{TRACKED_DIR}/tracked.json"
COMPARISON_DIR = "results/comparison/{task}"
COMPARISON_TRACKED_JSON = "results/mlflow/{task}/comparison_tracked.json"
PROBED_DIR = "results/stress/{task}/fold{fold}"  # the stain probes' images of one fold's test split
PROBED_TABLE = f"{PROBED_DIR}/probed.tsv"  # one row per test image and probe
STAIN_PROBE_METRICS = f"{EVALUATION_DIR}/stain_probes.json"
STAIN_PROBE_PREDICTIONS = f"{EVALUATION_DIR}/stain_probes.tsv"
STAIN_PROBE_TABLE = "results/stress/{task}/stain_probes.tsv"
EXTERNAL_DIR = "results/external/{external}"
EXTERNAL_IMAGES = f"{EXTERNAL_DIR}/images.tsv"  # the external audit's table of usable images
EXTERNAL_MODEL_DIR = f"{EXTERNAL_DIR}/{{task}}/{{backbone}}"
EXTERNAL_FOLD_METRICS = f"{EXTERNAL_MODEL_DIR}/fold{{fold}}.json"
EXTERNAL_TABLE = f"{EXTERNAL_DIR}/{{task}}/external_validation.tsv"

# what the report reads of one model and fold, by kind (alldag.jobs.ModelResult's path fields)
MODEL_OUTPUTS = {
    "metrics": f"{EVALUATION_DIR}/{METRICS_JSON}",
    "history": f"{MODEL_DIR}/history.tsv",
    "curves": f"{MODEL_DIR}/training_curves.png",
    "confusion": f"{EVALUATION_DIR}/confusion_matrix.png",
    "roc": f"{EVALUATION_DIR}/roc_curve.png",
    "reliability": f"{EVALUATION_DIR}/reliability.png",
    "explanation": f"{EXPLANATION_DIR}/explanation_gallery.png",
    "explanation_summary": f"{EXPLANATION_DIR}/{EXPLANATION_SUMMARY_TSV}",
    "run": f"{MODEL_DIR}/{RUN_JSON}",
    "explanations": f"{EXPLANATION_DIR}/explanations.tsv",
    "agreement": f"{EXPLANATION_DIR}/agreement.tsv",
}
PREDICTIONS = f"{EVALUATION_DIR}/{PREDICTIONS_TSV}"
COMPARISON = f"{COMPARISON_DIR}/{COMPARISON_TSV}"

REPORT_OUTPUTS = {
    "page": "results/report.html",
    "table": "results/results_table.tsv",
    "fold_means": "results/results_summary.tsv",
    "headline": f"results/{SUMMARY_JSON}",
}


def fill(pattern: str, **wildcards) -> str:
    """`pattern` with these wildcards filled in and every other {wildcard} left for Snakemake."""

    class _Keep(dict):
        def __missing__(self, key):
            return "{" + key + "}"

    return pattern.format_map(_Keep({k: str(v) for k, v in wildcards.items()}))


BASELINE_EVALUATION_DIR = fill(EVALUATION_DIR, backbone=BASELINE_NAME)
BASELINE_RUN = fill(f"{MODEL_DIR}/{RUN_JSON}", backbone=BASELINE_NAME)
