import os
import re
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
# envs/*.post-deploy.sh install the alldag package from here into each conda env (--sdm conda).
os.environ.update(ALLDAG_REPO=str(Path(workflow.basedir)))

from alldag import AlldagError
from alldag.backbones import check_backbones
from alldag.names import (
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
from alldag.config import (
    apply_demo,
    booleans_from_cli,
    check_backbone_overrides,
    check_custom_models,
    custom_rule_file,
    external_with_defaults,
    train_settings_for,
    validate_config,
)
from alldag.external import check_external, set_folder, synthetic_folder
from alldag.jobs import MODEL_OUTPUT_KINDS
from alldag.split import PATIENT_BLOCK, block_size_for, grouping_for
from alldag.data import check_tasks
from alldag.download import decide_source, expected_class_counts
from alldag.weights import (
    check_fetchable,
    pretrained_files,
    read_weights_table,
    table_path,
)

SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
DATA = "results/data"
PROVENANCE = f"{DATA}/dataset.json"
PARENT_RUN_FILE = "results/mlflow/parent_run.json"
ARTIFACT_ROOT = "results/mlartifacts"


def fail(message):
    """Stop before any job runs, with one line that says what to fix."""
    print(f"alldag: error: {message}", file=sys.stderr)
    sys.exit(1)


def source_params():
    """The data-source decision, whole (alldag.download.SourceDecision's fields), for the download job."""
    return asdict(SOURCE)


def check_config(cfg, counts):
    """Cross-key checks the schema cannot express: backbones, their overrides, task classes."""
    check_backbone_overrides(cfg, SCHEMA)
    check_custom_models(cfg["custom_models"], workflow.basedir)
    check_backbones(
        {b: train_settings_for(cfg, b)["image_size"] for b in cfg["backbones"]}
    )
    check_tasks(cfg["tasks"], counts)
    cfg["external"] = external_with_defaults(cfg["external"], SCHEMA)
    check_external(cfg["external"])


try:
    booleans_from_cli(config, SCHEMA)
    validate_config(config, SCHEMA)
    check_config(config, None)
    SOURCE = decide_source(data=config["data"], provenance=PROVENANCE)
    if SOURCE.demo:
        config = apply_demo(config, SCHEMA)
        print(f"WARNING: {SOURCE.reason}.", file=sys.stderr)
    check_config(config, expected_class_counts(SOURCE, config["data"]))
except AlldagError as exc:
    fail(exc)

TASKS = list(config["tasks"])
BACKBONES = list(
    config["backbones"]
)  # keras.applications models, trained by rule train
CUSTOM_MODELS = list(config["custom_models"])  # trained by the users' own rules
MODELS = BACKBONES + CUSTOM_MODELS
FOLDS = list(range(config["split"]["folds"]))
COMPARED_MODELS = MODELS + [BASELINE_NAME]
SPLIT_BLOCK_SIZE = block_size_for(
    config["split"]["group_blocks"],
    synthetic=SOURCE.kind == "synthetic",
    fields_per_patient=config["data"]["synthetic"]["fields_per_patient"],
)
WEIGHTS_CACHE = config["weights_cache"]
EXTERNAL = dict(config["external"])  # another lab's image sets, by name


try:
    PRETRAINED = pretrained_files(
        read_weights_table(table_path(workflow.basedir)),
        {b: train_settings_for(config, b) for b in BACKBONES},
    )
except AlldagError as exc:
    fail(exc)
# the fetch_weights jobs, by the file each one writes
WEIGHTS_FILES = {entry.file: entry for entry in PRETRAINED.values()}
SPLIT_GROUPING = grouping_for(
    config["split"]["grouping"],
    synthetic=SOURCE.kind == "synthetic",
    fields_per_patient=config["data"]["synthetic"]["fields_per_patient"],
)
SPLIT_APPEARANCE_THRESHOLD = (  # None: from the data (alldag.split.appearance_threshold)
    None
    if config["split"]["appearance_threshold"] == "auto"
    else config["split"]["appearance_threshold"]
)
BASELINE_GROUPINGS = {  # the colour baseline is also fitted under every grouping (split.grouping's choices)
    "appearance": {
        "grouping": "appearance",
        "block_size": None,
        "appearance_threshold": SPLIT_APPEARANCE_THRESHOLD,
    },
    f"blocks of {SPLIT_BLOCK_SIZE or PATIENT_BLOCK}": {
        "grouping": "blocks",
        "block_size": SPLIT_BLOCK_SIZE or PATIENT_BLOCK,
    },
    "none": {"grouping": "none", "block_size": None},
}
RUN_TAGS = {
    "alldag.study": config["study"],
    "alldag.data_source": SOURCE.kind,
    "alldag.synthetic": str(SOURCE.kind == "synthetic").lower(),
    "alldag.demo": str(SOURCE.demo).lower(),
}


wildcard_constraints:
    task="|".join(TASKS),
    backbone="|".join(MODELS),
    fold=r"\d+",
    # (?!) matches nothing: no backbone starts from ImageNet weights
    weights_file="|".join(map(re.escape, WEIGHTS_FILES)) or "(?!)",
    external="|".join(map(re.escape, EXTERNAL)) or "(?!)",


# Path patterns, defined once: the rules' outputs and the input functions fill them in.
# MODEL_FOLD: one model of one task, trained on one fold.
MODEL_FOLD = "{task}/{backbone}/fold{fold}"
SPLIT_MANIFEST = "results/split/{task}/fold{fold}/split_manifest.tsv"
MODEL_DIR = f"results/models/{MODEL_FOLD}"
EVALUATION_DIR = f"results/evaluation/{MODEL_FOLD}"
EXPLANATION_DIR = f"results/explanations/{MODEL_FOLD}"
TRACKED_DIR = f"results/mlflow/{MODEL_FOLD}"
PROBED_DIR = "results/stress/{task}/fold{fold}"  # the stain probes' images of one fold's test split
STAIN_PROBE_TABLE = "results/stress/{task}/stain_probes.tsv"
EXTERNAL_DIR = "results/external/{external}"
EXTERNAL_MODEL_DIR = f"{EXTERNAL_DIR}/{{task}}/{{backbone}}"
EXTERNAL_TABLE = f"{EXTERNAL_DIR}/{{task}}/external_validation.tsv"


def fill(pattern, **wildcards):
    """`pattern` with these wildcards filled in and the others left to Snakemake."""
    return expand(pattern, allow_missing=True, **wildcards)[0]


BASELINE_EVALUATION_DIR = fill(EVALUATION_DIR, backbone=BASELINE_NAME)
BASELINE_RUN = fill(f"{MODEL_DIR}/{RUN_JSON}", backbone=BASELINE_NAME)


def workflow_script(name):
    """A script of workflow/scripts by absolute path: a rule that inherits one of ours (`use rule
    train as ...`) resolves relative paths from its own file's folder, which may be anywhere.
    """
    return str(Path(workflow.basedir) / "workflow" / "scripts" / name)


def figure(path, caption, category, subcategory, **labels):
    """`path` marked for `snakemake --report`: its caption (a file in workflow/report, by absolute
    path as in workflow_script), its place on the page and the labels that name it there.
    """
    return report(
        path,
        caption=str(Path(workflow.basedir) / "workflow" / "report" / caption),
        category=category,
        subcategory=subcategory,
        labels=labels,
    )


def model_figure(path, caption, category, name, model="{backbone}"):
    """A figure of one (task, model, fold), listed under its model."""
    return figure(
        path,
        caption,
        category,
        model,
        task="{task}",
        backbone=model,
        fold="{fold}",
        figure=name,
    )


def get_final_output():
    """The report page, the results table and summary.json (they depend on every computed output), and
    the MLflow record of every model and comparison (the track jobs; the report does not wait for them).
    """
    return [
        "results/report.html",
        "results/results_table.tsv",
        f"results/{SUMMARY_JSON}",
        *expand(
            f"{TRACKED_DIR}/tracked.json",
            task=TASKS,
            backbone=COMPARED_MODELS,
            fold=FOLDS,
        ),
        *expand("results/mlflow/{task}/comparison_tracked.json", task=TASKS),
        *expand(STAIN_PROBE_TABLE, task=TASKS),
        *expand(EXTERNAL_TABLE, external=EXTERNAL, task=TASKS),
    ]


def tracking_params():
    """MLflow settings for jobs (the URI is resolved against the working directory at run time)."""
    return {
        "uri": config["mlflow"]["tracking_uri"],
        "experiment": config["study"],
        "artifact_root": ARTIFACT_ROOT,
        "parent_run_file": PARENT_RUN_FILE,
        "tags": RUN_TAGS,
        "system_metrics": config["mlflow"]["system_metrics"],
    }


def manifest_path():
    """The checksum manifest: as given if it exists from the working directory, else from the workflow folder."""
    path = Path(config["data"]["manifest"])
    return str(
        path if path.is_absolute() or path.exists() else Path(workflow.basedir) / path
    )


def fold_manifests(wildcards):
    return expand(SPLIT_MANIFEST, task=wildcards.task, fold=FOLDS)


def comparison_prediction_table(wildcards):
    """Test predictions of every compared model and fold of a task, keyed: model -> fold -> path."""
    return {
        model: {
            fold: f"{EVALUATION_DIR}/{PREDICTIONS_TSV}".format(
                task=wildcards.task, backbone=model, fold=fold
            )
            for fold in FOLDS
        }
        for model in COMPARED_MODELS
    }


def comparison_predictions(wildcards):
    """The files of comparison_prediction_table, as the compare rule's input."""
    return [
        path
        for by_fold in comparison_prediction_table(wildcards).values()
        for path in by_fold.values()
    ]


def stain_probe_prediction_table(wildcards):
    """Stain-probe predictions of every compared model and fold of a task, keyed: model -> fold -> path."""
    return {
        model: {
            fold: f"{EVALUATION_DIR}/stain_probes.tsv".format(
                task=wildcards.task, backbone=model, fold=fold
            )
            for fold in FOLDS
        }
        for model in COMPARED_MODELS
    }


def stain_probe_predictions(wildcards):
    """The files of stain_probe_prediction_table, as the stain_probe_summary rule's input."""
    return [
        path
        for by_fold in stain_probe_prediction_table(wildcards).values()
        for path in by_fold.values()
    ]


def external_spec(wildcards):
    """The external set's config entry."""
    return EXTERNAL[wildcards.external]


def external_classes(wildcards):
    """The external set's map: label folder -> class."""
    return EXTERNAL[wildcards.external]["classes"]


def external_scored(wildcards):
    """The files of external_scored_table, as the external_summary rule's input."""
    return list(external_scored_table(wildcards).values())


def external_folder(wildcards):
    """The external set's folder of images: the generator's output for a synthetic set."""
    return set_folder(wildcards.external, EXTERNAL[wildcards.external])


def external_audit_inputs(wildcards):
    """The external_audit job's named inputs: the folder, and the checksum manifest where the set has one."""
    spec = EXTERNAL[wildcards.external]
    return {"folder": external_folder(wildcards)} | (
        {"manifest": spec["manifest"]} if spec.get("manifest") else {}
    )


def external_models(wildcards):
    """The fold models an external_validation job scores, keyed: models (one per fold; none for the colour
    baseline, fitted from the manifests), manifests (one per fold) and the set's audited images.
    """
    where = dict(task=wildcards.task, backbone=wildcards.backbone)
    models = (
        []
        if wildcards.backbone == BASELINE_NAME
        else expand(rules.train.output.model, fold=FOLDS, **where)
    )
    return {
        "models": models,
        "manifests": expand(SPLIT_MANIFEST, task=wildcards.task, fold=FOLDS),
        "images": f"{EXTERNAL_DIR}/images.tsv".format(external=wildcards.external),
    }


def external_scored_table(wildcards):
    """Every compared model's external predictions of a set and task, keyed model -> path."""
    return {
        model: f"{EXTERNAL_MODEL_DIR}/{PREDICTIONS_TSV}".format(
            external=wildcards.external, task=wildcards.task, backbone=model
        )
        for model in COMPARED_MODELS
    }


def external_track_table(wildcards):
    """Every external set's files for one model's fold, keyed: set name -> its MLflow metrics (metrics) and its
    audited images (images, the run's dataset input); the track job reads them by key.
    """
    where = dict(task=wildcards.task, backbone=wildcards.backbone, fold=wildcards.fold)
    return {
        name: {
            "metrics": f"{EXTERNAL_MODEL_DIR}/fold{{fold}}.json".format(
                external=name, **where
            ),
            "images": f"{EXTERNAL_DIR}/images.tsv".format(external=name),
        }
        for name in EXTERNAL
    }


def image_level_baseline_predictions(wildcards):
    """The colour baseline's test predictions under an image-level split, per fold (leakage sensitivity)."""
    return expand(
        f"{BASELINE_EVALUATION_DIR}/predictions_image_level.tsv",
        task=wildcards.task,
        fold=FOLDS,
    )


def grouping_baseline_predictions(wildcards):
    """The colour baseline's test predictions under every split grouping, per fold (grouping sensitivity)."""
    return expand(
        rules.colour_baseline.output.by_grouping, task=wildcards.task, fold=FOLDS
    )


def comparison_tracked_table(wildcards):
    """The track jobs' run files of every compared model and fold of a task, keyed: rows of model, fold
    and path (alldag.track.tracked_runs_from_table reads them by key, never by place).
    """
    return [
        {
            "model": model,
            "fold": fold,
            "path": rules.track.output.tracked.format(
                task=wildcards.task, backbone=model, fold=fold
            ),
        }
        for model in COMPARED_MODELS
        for fold in FOLDS
    ]


def comparison_tracked_runs(wildcards):
    """The paths of comparison_tracked_table (the track_comparison rule's input)."""
    return [row["path"] for row in comparison_tracked_table(wildcards)]


def track_inputs(wildcards):
    """The files a model's track job logs, by name: every model's run record, split and evaluation; a
    trained model's (not the colour baseline's) training and explanation files too."""
    where = dict(task=wildcards.task, backbone=wildcards.backbone, fold=wildcards.fold)
    baseline = wildcards.backbone == BASELINE_NAME
    evaluated = rules.colour_baseline.output if baseline else rules.evaluate.output
    probed = rules.stain_probe_colour_baseline if baseline else rules.stain_probe
    paths = {
        "run": rules.colour_baseline.output.run if baseline else rules.train.output.run,
        "manifest": SPLIT_MANIFEST,
        "stain_probes": probed.output.metrics,
        **{
            name: getattr(evaluated, name)
            for name in ("metrics", "predictions", "confusion", "roc", "reliability")
        },
    }
    paths["external"] = [
        path
        for files in external_track_table(wildcards).values()
        for path in files.values()
    ]
    if not baseline:
        paths.update(
            {
                "model": rules.train.output.model,
                "history": rules.train.output.history,
                "curves": rules.train.output.curves,
                "augmentation": rules.augment.output.spec,
                "gallery": rules.explain.output.gallery,
                "explanations": rules.explain.output.explanations,
                "agreement": rules.explain.output.agreement,
                "explanation_summary": rules.explain.output.summary,
            }
        )
    return {
        name: path if isinstance(path, list) else expand(path, **where)[0]
        for name, path in paths.items()
    }


def track_image_size(wildcards):
    """The model's input size (for its logged signature); 0 for the colour baseline, which logs no model."""
    if wildcards.backbone == BASELINE_NAME:
        return 0
    return backbone_image_size(wildcards)


def task_classes(wildcards):
    return config["tasks"][wildcards.task]


def train_env():
    """The training rules' conda env: with TensorFlow's CUDA libraries when train.require_gpu is set."""
    name = "train-gpu.yaml" if config["train"]["require_gpu"] else "train.yaml"
    return str(Path(workflow.basedir) / "envs" / name)


def pretrained_weights(wildcards):
    """The cached ImageNet weights file the backbone starts from, as the train rule's named input; none for
    train.weights null or a local path, and for custom architectures."""
    entry = PRETRAINED.get(wildcards.backbone)
    return {"weights": f"{WEIGHTS_CACHE}/{entry.file}"} if entry else {}


def pretrained_entry(wildcards):
    """The checksum-table row of that file (training verifies the file against it), or None."""
    entry = PRETRAINED.get(wildcards.backbone)
    return asdict(entry) if entry else None


def weights_entry(wildcards):
    """The checksum-table row of the file a fetch_weights job writes."""
    return asdict(WEIGHTS_FILES[wildcards.weights_file])


def check_weights_before_jobs():
    """Stop before any job, with one line saying which file to put where, when a weights file the run must
    fetch is not cached and its server cannot be reached (offline, or behind a proxy not set).
    """
    needed = [
        WEIGHTS_FILES[job.wildcards.weights_file]
        for job in workflow.dag.needrun_jobs()
        if job.rule.name == "fetch_weights"
    ]
    try:
        check_fetchable(needed, WEIGHTS_CACHE)
    except AlldagError as exc:
        fail(exc)


def backbone_train_settings(wildcards):
    """`train` settings with the backbone's overrides merged in."""
    return train_settings_for(config, wildcards.backbone)


def backbone_image_size(wildcards):
    return backbone_train_settings(wildcards)["image_size"]


MODEL_OUTPUT_PATTERNS = {
    "metrics": f"{EVALUATION_DIR}/{METRICS_JSON}",
    "history": f"{MODEL_DIR}/history.tsv",
    "curves": f"{MODEL_DIR}/training_curves.png",
    "confusion": f"{EVALUATION_DIR}/confusion_matrix.png",
    "roc": f"{EVALUATION_DIR}/roc_curve.png",
    "reliability": f"{EVALUATION_DIR}/reliability.png",
    "explanation": f"{EXPLANATION_DIR}/explanation_gallery.png",
    "explanation_means": f"{EXPLANATION_DIR}/{EXPLANATION_SUMMARY_TSV}",
    "run": f"{MODEL_DIR}/{RUN_JSON}",
    "explanations": f"{EXPLANATION_DIR}/explanations.tsv",
    "agreement": f"{EXPLANATION_DIR}/agreement.tsv",
}


def model_outputs(task, model, fold):
    """Paths of every output kind the report reads of one model (the kinds are alldag.jobs.ModelResult's)."""
    return {
        kind: MODEL_OUTPUT_PATTERNS[kind].format(task=task, backbone=model, fold=fold)
        for kind in MODEL_OUTPUT_KINDS
    }


def check_model_rules():
    """Fail with one line unless every model has exactly one training rule (after the custom rules load)."""
    for name in MODELS:
        model = expand(rules.train.output.model, task=TASKS[0], backbone=name, fold=0)[
            0
        ]
        trainers = [r.name for r in workflow.rules if r.is_producer(model)]
        if not trainers:
            fail(
                f"custom_models.{name}: no rule trains this model; in {config['custom_models'][name]}, set "
                f'wildcard_constraints: backbone="{name}" (as in workflow/rules/custom/small_cnn.smk)'
            )
        if len(trainers) > 1:
            fail(
                f"{name} is trained by rules {' and '.join(trainers)}: give each custom rule file its own "
                f"model name in wildcard_constraints, the one it has in custom_models"
            )


def custom_rule_files():
    """The rule files of config custom_models, as absolute paths (alldag.config.custom_rule_file)."""
    return [
        str(custom_rule_file(path, workflow.basedir).resolve())
        for path in config["custom_models"].values()
    ]


def report_table():
    """Everything the report reads, keyed: rows of task, model, fold, kind and path (task, model or fold
    None where a file is not one task's, model's or fold's). The report rule's input and params come from it.
    """

    def row(kind, path, task=None, model=None, fold=None):
        # str(): a rule's output path carries its rule, which a job's params cannot pickle
        return {
            "task": task,
            "model": model,
            "fold": fold,
            "kind": kind,
            "path": str(path),
        }

    rows = [
        row("provenance", rules.download.output.provenance),
        row("audit", rules.audit.output.summary),
        row("quarantine", rules.audit.output.quarantine),
        row("duplicates", rules.audit.output.duplicates),
        row("images", rules.audit.output.images),
        row("masks", rules.audit.output.masks),
    ]
    for task in TASKS:
        per_task = {
            "leakage": rules.check_leakage.output.report,
            "augmentation": rules.augment.output.spec,
            "preview": rules.augment.output.preview,
            "comparison": rules.compare.output.comparison,
            "paired": rules.compare.output.paired,
            "comparison_figure": rules.compare.output.figure,
            "grouping_sensitivity": rules.compare.output.groupings,
            "stain_probes": STAIN_PROBE_TABLE,
        }
        rows += [
            row(kind, path.format(task=task), task) for kind, path in per_task.items()
        ]
        rows += [
            row("external", EXTERNAL_TABLE.format(external=name, task=task), task, name)
            for name in EXTERNAL
        ]
        for fold in FOLDS:
            rows.append(
                row(
                    "manifest",
                    SPLIT_MANIFEST.format(task=task, fold=fold),
                    task,
                    fold=fold,
                )
            )
            rows += [
                row(kind, path, task, model, fold)
                for model in MODELS
                for kind, path in model_outputs(task, model, fold).items()
            ]
            rows.append(
                row(
                    "metrics",
                    rules.colour_baseline.output.metrics.format(task=task, fold=fold),
                    task,
                    BASELINE_NAME,
                    fold,
                )
            )
    return rows


def report_inputs(wildcards=None):
    """The files of report_table, named by kind (the report rule's input)."""
    named = {}
    for row in report_table():
        named.setdefault(row["kind"], []).append(row["path"])
    return named


REPORT_OUTPUTS = {
    "page": "results/report.html",
    "table": "results/results_table.tsv",
    "fold_means": "results/results_summary.tsv",
    "headline": f"results/{SUMMARY_JSON}",
}


def write_partial_report():
    """With --keep-going, a failed job still gets a report (alldag.report.write_partial_report)."""
    if workflow.execution_settings.keep_going:
        from alldag.report import write_partial_report as write

        write(
            rows=report_table(),
            config=config,
            outputs=REPORT_OUTPUTS,
            parent_run_file=PARENT_RUN_FILE,
        )


def close_parent_run(status):
    """Mark this invocation's parent run (alldag.tracking.close_parent_run)."""
    from alldag.tracking import close_parent_run as close, resolve_tracking_uri

    close(
        resolve_tracking_uri(config["mlflow"]["tracking_uri"], "."),
        PARENT_RUN_FILE,
        status,
    )
