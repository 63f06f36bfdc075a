"""The `track` stage: log the files a model's jobs (train, evaluate, explain) and a task's comparison wrote
into MLflow, idempotently.

A model's track job is the one writer of its MLflow child run: it creates the run (or finds the one an earlier,
interrupted attempt made, by the record id in train's run file) and logs params, datasets, each epoch, the
evaluation, the explanations, the artefacts and the model. Computing jobs write files only, so a tracking
outage costs no computed output: the track jobs fail, and once the store answers a plain re-run completes the
record. Every step first looks at what the run already holds (params, metric steps, artefacts by name and
size, the logged model), so re-running a track job after a partial upload leaves one copy of each.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

import pandas as pd

from alldag.tracking import (
    RECORD_TAG,
    Tracking,
    client_for,
    create_child_run,
    ensure_experiment,
    log_artifacts_once,
    log_metrics_once,
    log_steps_once,
    read_run_file,
    reparent_run,
    retry,
)
from alldag.verdicts import VERDICT_COLUMN, verdict_of

log = logging.getLogger(__name__)


def find_or_create_run(client, tracking, record: dict) -> tuple[str, bool]:
    """The run of a job's record: the run tagged with its record id (an earlier track attempt made it), moved
    under this invocation's parent run (reparent_run), else a new child of that parent. Returns (run id, created)."""
    exp_id = ensure_experiment(tracking.uri, tracking.experiment, tracking.artifact_root)
    found = retry(client.search_runs, [exp_id], f"tags.`{RECORD_TAG}` = '{record['record']}'")
    if not found:
        return create_child_run(tracking, record)[0], True
    run_id, parent = found[0].info.run_id, tracking.parent_run_id()
    if (earlier := reparent_run(run_id, parent)) is not None:
        log.info("moved run %s from parent run %s to this invocation's parent run %s", run_id, earlier, parent)
    return run_id, False


def log_params_once(client, run_id: str, params: dict) -> int:
    """Log the params the run lacks (MLflow refuses to change one; an equal value is a no-op anyway)."""
    from mlflow.entities import Param

    have = retry(client.get_run, run_id).data.params
    missing = [Param(k, v) for k, v in params.items() if k not in have]
    for i in range(0, len(missing), 100):  # MLflow's batch limit is 100 params
        retry(client.log_batch, run_id, params=missing[i : i + 100])
    return len(missing)


def log_datasets_once(client, run_id: str, split_manifest, dataset: str, data_source: str) -> None:
    """The split manifest's train/val/test datasets, unless the run has inputs already."""
    from alldag.tables import read_tsv
    from alldag.tracking import log_split_datasets

    if retry(client.get_run, run_id).inputs.dataset_inputs:
        return
    with _reopened(run_id):
        log_split_datasets(split_manifest, read_tsv(split_manifest), dataset, data_source)


def log_external_datasets_once(client, run_id: str, external_sets: dict, task: str, classes: list[str]) -> int:
    """Each external set's images of the task's classes (external_sets: set name -> its audited images.tsv) as a
    dataset input '<task>/external/<name>' in context EXTERNAL_CONTEXT, unless the run has that dataset with
    that image list already (re-audited images are logged anew) or the set has none of the task's classes.
    Returns how many were logged now."""
    from alldag.external import task_images
    from alldag.tables import read_tsv
    from alldag.tracking import EXTERNAL_CONTEXT, image_list_digest, log_image_dataset

    inputs = retry(client.get_run, run_id).inputs.dataset_inputs
    have = {(i.dataset.name, i.dataset.digest) for i in inputs}
    logged = 0
    for name, images in external_sets.items():
        rows, dataset = task_images(read_tsv(images), list(classes)), f"{task}/external/{name}"
        if rows.empty or (dataset, image_list_digest(rows)) in have:
            continue
        context, tags = EXTERNAL_CONTEXT.format(name=name), {"external_set": name}
        with _reopened(run_id):
            log_image_dataset(images, rows, name=dataset, context=context, tags=tags)
        logged += 1
    return logged


def log_model_once(client, run_id: str, model_path, split_manifest, classes: list[str]) -> bool:
    """Log the trained model from its .keras file unless the run has a ready logged model; True if logged now.
    Where the artifact store is local, the logged model's file becomes a hard link to model_path: one copy.

    TensorFlow is imported only to log it: a track job that finds the model logged (a forced re-run) stays
    light."""
    import mlflow

    experiment = retry(client.get_run, run_id).info.experiment_id  # without it, MLflow searches only the default
    models = retry(
        mlflow.search_logged_models,
        experiment_ids=[experiment],
        filter_string=f"source_run_id = '{run_id}'",
        output_format="list",
    )
    if any(str(m.status).endswith("READY") for m in models):
        return False
    from alldag.images import load_images
    from alldag.logged_model import log_keras_model, share_file
    from alldag.models import input_size, load_classifier
    from alldag.tables import read_tsv

    classifier = load_classifier(model_path)
    example = load_images(read_tsv(split_manifest)["path"].head(1), input_size(classifier))
    with _reopened(run_id):
        info = log_keras_model(classifier, example, list(classes))
    log.info(
        "model %s: %s",
        model_path,
        "one stored copy, linked into its MLflow artifact"
        if share_file(info, model_path)
        else "logged as a separate copy (the MLflow artifact store is not local)",
    )
    return True


class _reopened:
    """The run as mlflow's active run, without changing its status on exit."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def __enter__(self):
        import mlflow

        return retry(mlflow.start_run, run_id=self.run_id)

    def __exit__(self, *exc):
        import mlflow

        mlflow.end_run(status=retry(mlflow.MlflowClient().get_run, self.run_id).info.status)


@dataclass(frozen=True)
class TrackSettings:
    """Where a model's track job logs and the task's classes (in label-index order), from its rule's params."""

    tracking: Tracking
    classes: tuple[str, ...]

    @classmethod
    def from_params(cls, params) -> TrackSettings:
        """From the track rule's params (tracking, classes)."""
        return cls(Tracking.from_params(dict(params["tracking"])), tuple(params["classes"]))


@dataclass(frozen=True)
class TrackInputs:
    """The files a model's track job logs, by name: train's (or the colour baseline's) run record and the
    fold's split manifest, then whatever its jobs wrote (None: that job is not the model's, e.g. training
    and explanations for the colour baseline)."""

    run: str  # mlflow_run.json: the run's record (alldag.tracking.child_run_record)
    manifest: str  # split_manifest.tsv
    metrics: str | None = None  # evaluate's metrics.json
    predictions: str | None = None
    confusion: str | None = None
    roc: str | None = None
    reliability: str | None = None
    stain_probes: str | None = None  # the stain probes' flat {metric: value} JSON
    model: str | None = None  # model.keras, logged with its signature unless the run has it
    history: str | None = None  # history.tsv: each epoch once, step = epoch - 1
    curves: str | None = None
    augmentation: str | None = None
    gallery: str | None = None
    explanations: str | None = None
    agreement: str | None = None
    explanation_summary: str | None = None
    external: dict = field(default_factory=dict)  # set name -> {"metrics": its scores' JSON, "images": images.tsv}

    @classmethod
    def from_job(cls, named, external: dict) -> TrackInputs:
        """From the track rule's named inputs (those it has) and its external params (alldag.plan's table)."""
        have = set(named.keys())
        return cls(
            **{f.name: str(named[f.name]) for f in fields(cls) if f.name in have and f.name != "external"},
            external={name: dict(files) for name, files in dict(external).items()},
        )

    def artefacts(self) -> dict[str, list[str]]:
        """MLflow folder ('' for the top) -> the files logged there."""
        folders = {
            "figures": (self.confusion, self.roc, self.reliability, self.curves, self.gallery),
            "evaluation": (self.predictions, self.metrics),
            "": (self.history, self.augmentation, self.manifest if self.model else None),
            "explanation": (self.explanations, self.agreement, self.explanation_summary),
        }
        return {folder: [p for p in paths if p is not None] for folder, paths in folders.items()}


def track_model(*, settings: TrackSettings, inputs: TrackInputs, tracked_out) -> str:
    """Make or complete the model's MLflow run from its jobs' files (see TrackInputs); returns its run id.

    tracked_out: JSON with the run id (what the comparison's track job and the registry read).
    """
    record, tracking = read_run_file(inputs.run), settings.tracking
    client = client_for(tracking.uri)
    run_id, created = find_or_create_run(client, tracking, record)
    log.info("%s MLflow run %s for %s", "created" if created else "completing", run_id, record["name"])
    log_params_once(client, run_id, record["params"])
    log_datasets_once(client, run_id, inputs.manifest, record["dataset"], tracking.data_source)
    counts = _log_run_metrics(client, run_id, record, inputs)
    if inputs.external:
        images = {name: files["images"] for name, files in inputs.external.items()}
        counts["external datasets"] = log_external_datasets_once(
            client, run_id, images, record["tags"]["task"], list(settings.classes)
        )
    counts["artefacts"] = sum(
        log_artifacts_once(client, run_id, paths, folder or None) for folder, paths in inputs.artefacts().items()
    )
    if inputs.model is not None:
        counts["model"] = int(log_model_once(client, run_id, inputs.model, inputs.manifest, list(settings.classes)))
    if retry(client.get_run, run_id).info.status != "FINISHED":
        retry(client.set_terminated, run_id, "FINISHED", end_time=record.get("ended"))
    log.info("%s: logged now (the rest was there): %s", record["name"], counts)
    Path(tracked_out).parent.mkdir(parents=True, exist_ok=True)
    Path(tracked_out).write_text(
        json.dumps(
            {"run_id": run_id, "tracking_uri": tracking.uri, "name": record["name"], "logged_now": counts}, indent=2
        )
    )
    return run_id


def _log_run_metrics(client, run_id: str, record: dict, inputs: TrackInputs) -> dict[str, int]:
    """Log the metrics the run lacks: each epoch, the best epoch, what training measured after it (the record's
    metrics and system metrics), the test, stress and explanation metrics. Returns how many, by kind."""
    from alldag.run_metrics import best_epoch_metrics, explanation_metrics, log_missing_epochs, test_metrics

    counts = {}
    if inputs.history is not None:
        frame = pd.read_csv(inputs.history, sep="\t")
        counts["epochs"] = log_missing_epochs(run_id, frame)  # client_for pointed mlflow at tracking.uri
        counts["best epoch"] = log_metrics_once(client, run_id, best_epoch_metrics(frame))
    if record.get("metrics"):
        counts["training metrics"] = log_metrics_once(client, run_id, record["metrics"])
    if record.get("system_metrics"):
        counts["system metrics"] = len(log_steps_once(client, run_id, record["system_metrics"]))
    if inputs.metrics is not None:
        counts["test metrics"] = log_metrics_once(
            client, run_id, test_metrics(json.loads(Path(inputs.metrics).read_text()))
        )
    stress = [p for p in (inputs.stain_probes, *(f["metrics"] for f in inputs.external.values())) if p]
    if stress:
        flat = {k: v for path in stress for k, v in json.loads(Path(path).read_text()).items()}
        counts["stress metrics"] = log_metrics_once(client, run_id, flat)
    if inputs.explanation_summary is not None:
        summary = pd.read_csv(inputs.explanation_summary, sep="\t")
        counts["explanation metrics"] = log_metrics_once(client, run_id, explanation_metrics(summary))
    return counts


def tracked_runs_from_table(rows) -> dict[str, dict[int, str]]:
    """model -> fold -> tracked.json, from the keyed rows of the track_comparison rule (model, fold, path
    each; alldag.plan.StudyPlan.tracked_runs), whatever their order."""
    runs: dict[str, dict[int, str]] = {}
    for row in rows:
        runs.setdefault(str(row["model"]), {})[int(row["fold"])] = str(row["path"])
    return {model: dict(sorted(folds.items())) for model, folds in runs.items()}


@dataclass(frozen=True)
class ComparisonTrackSettings:
    """Which task's comparison a track_comparison job logs, and where: from its wildcards and params."""

    task: str
    tracking: Tracking

    @classmethod
    def from_params(cls, params, task: str) -> ComparisonTrackSettings:
        """From the track_comparison rule's params (tracking) and its {task} wildcard."""
        return cls(task, Tracking.from_params(dict(params["tracking"])))


@dataclass(frozen=True)
class ComparisonTrackInputs:
    """The files a track_comparison job logs, by name, and every model's run keyed model -> fold -> its
    tracked.json (never by position in a list)."""

    comparison: str
    paired: str
    figure: str
    provenance: str
    runs: dict[str, dict[int, str]]

    @classmethod
    def from_job(cls, named, runs_table) -> ComparisonTrackInputs:
        """From the rule's named inputs and its keyed runs table (rows of model, fold and path)."""
        files = {f.name: str(named[f.name]) for f in fields(cls) if f.name != "runs"}
        return cls(**files, runs=tracked_runs_from_table(runs_table))


def track_comparison(*, settings: ComparisonTrackSettings, inputs: ComparisonTrackInputs, tracked_out) -> dict | None:
    """Put a task's comparison on this invocation's parent run (artefacts, metrics, verdict tags, provenance),
    each once, then register the task's best model (the registry step is idempotent too)."""
    from alldag.metrics import METRICS
    from alldag.registry import log_provenance, register_best

    task, tracking = settings.task, settings.tracking
    summary = pd.read_csv(inputs.comparison, sep="\t")
    client = client_for(tracking.uri)
    run_id = tracking.parent_run_id()
    log_artifacts_once(client, run_id, [inputs.comparison, inputs.paired, inputs.figure], f"comparison/{task}")
    metrics = {
        f"{task}.{row['model']}.{m}": float(row[m])
        for row in summary.to_dict("records")
        for m in [*METRICS, "diff_vs_colour_baseline", "p_vs_colour_baseline", "p_vs_colour_baseline_holm"]
        if m in row and not pd.isna(row[m])
    }
    log_metrics_once(client, run_id, metrics)
    for row in summary.to_dict("records"):
        word = verdict_of(row.get(VERDICT_COLUMN))
        if word:  # the baseline's own row has none
            retry(client.set_tag, run_id, f"{task}.{row['model']}.{VERDICT_COLUMN}", word)
    log_provenance(tracking.parent_run_file, inputs.provenance)
    registered = register_best(task, summary, inputs.runs)
    Path(tracked_out).parent.mkdir(parents=True, exist_ok=True)
    Path(tracked_out).write_text(
        json.dumps(
            {"parent_run_id": run_id, "tracking_uri": tracking.uri, "registered": registered}, indent=2, default=str
        )
    )
    return registered
