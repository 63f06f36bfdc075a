"""The `track` stage: log the files a model's jobs (train, evaluate, explain) and a task's comparison wrote
into MLflow, idempotently.

Computing jobs write files only (training also logs epochs live while MLflow answers), so a tracking outage
costs no computed output: the track jobs fail, and once the store answers a plain re-run completes the
record. Every step first looks at what the run already holds (params, metric steps, artefacts by name and
size, the logged model), so re-running a track job after a partial upload leaves one copy of each.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from alldag.tracking import (
    RECORD_TAG,
    client_for,
    create_child_run,
    ensure_experiment,
    log_artifacts_once,
    log_metrics_once,
    read_run_file,
    retry,
)
from alldag.verdicts import VERDICT_COLUMN, verdict_of

log = logging.getLogger(__name__)


def find_or_create_run(client, tracking, record: dict) -> tuple[str, bool]:
    """The run of a job's record: its own run id, else the run tagged with its record id (an earlier track
    attempt made it), else a new child of this invocation's parent run. Returns (run id, created)."""
    if record.get("run_id"):
        return record["run_id"], False
    exp_id = ensure_experiment(tracking.uri, tracking.experiment, tracking.artifact_root)
    found = retry(client.search_runs, [exp_id], f"tags.`{RECORD_TAG}` = '{record['record']}'")
    if found:
        return found[0].info.run_id, False
    return create_child_run(tracking, record)[0], True


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

    TensorFlow is imported only to log it: a track job that finds the model logged (training logs it while
    MLflow answers) stays light."""
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
    from alldag.logged_model import log_keras_model
    from alldag.models import input_size, load_classifier
    from alldag.tables import read_tsv

    classifier = load_classifier(model_path)
    example = load_images(read_tsv(split_manifest)["path"].head(1), input_size(classifier))
    with _reopened(run_id):
        log_keras_model(classifier, example, list(classes))
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


def track_model(
    *,
    tracking,
    run_json,
    split_manifest,
    artefacts: dict,
    tracked_out,
    metrics_json=None,
    history=None,
    explanation_summary=None,
    model=None,
    classes: list[str] | None = None,
    stress_metrics: tuple = (),
    external_sets: dict | None = None,
) -> str:
    """Complete the model's MLflow run from its jobs' files; returns its run id.

    run_json: the record train (or the colour baseline) wrote; artefacts: MLflow folder ('' for the top) ->
    files; history: train's per-epoch TSV (each epoch once, step = epoch - 1); metrics_json: evaluate's
    test metrics; explanation_summary: explain's summary table; model: the .keras file, logged unless the run
    has it; stress_metrics: JSON files of flat {metric: value} (the stain probes', another lab's);
    external_sets: another lab's audited images.tsv by set name, each logged as a dataset input for lineage.
    tracked_out: JSON with the run id (what the comparison's track job reads).
    """
    from alldag.run_metrics import best_epoch_metrics, explanation_metrics, log_missing_epochs, test_metrics

    record = read_run_file(run_json)
    client = client_for(tracking.uri)
    run_id, created = find_or_create_run(client, tracking, record)
    log.info("%s MLflow run %s for %s", "created" if created else "completing", run_id, record["name"])
    log_params_once(client, run_id, record["params"])
    log_datasets_once(client, run_id, split_manifest, record["dataset"], tracking.data_source)
    counts = {}
    if history is not None:
        frame = pd.read_csv(history, sep="\t")
        counts["epochs"] = log_missing_epochs(run_id, frame)  # client_for pointed mlflow at tracking.uri
        counts["best epoch"] = log_metrics_once(client, run_id, best_epoch_metrics(frame))
    if metrics_json is not None:
        counts["test metrics"] = log_metrics_once(
            client, run_id, test_metrics(json.loads(Path(metrics_json).read_text()))
        )
    if stress_metrics:
        flat = {k: v for path in stress_metrics for k, v in json.loads(Path(path).read_text()).items()}
        counts["stress metrics"] = log_metrics_once(client, run_id, flat)
    if external_sets:
        counts["external datasets"] = log_external_datasets_once(
            client, run_id, external_sets, record["tags"]["task"], classes
        )
    if explanation_summary is not None:
        summary = pd.read_csv(explanation_summary, sep="\t")
        counts["explanation metrics"] = log_metrics_once(client, run_id, explanation_metrics(summary))
    counts["artefacts"] = sum(
        log_artifacts_once(client, run_id, paths, folder or None) for folder, paths in artefacts.items()
    )
    if model is not None:
        counts["model"] = int(log_model_once(client, run_id, model, split_manifest, classes))
    if retry(client.get_run, run_id).info.status != "FINISHED":
        retry(client.set_terminated, run_id, "FINISHED")
    log.info("%s: logged now (the rest was there): %s", record["name"], counts)
    Path(tracked_out).parent.mkdir(parents=True, exist_ok=True)
    Path(tracked_out).write_text(
        json.dumps(
            {"run_id": run_id, "tracking_uri": tracking.uri, "name": record["name"], "logged_now": counts}, indent=2
        )
    )
    return run_id


def tracked_runs_from_table(rows) -> dict[str, dict[int, str]]:
    """model -> fold -> tracked.json, from the keyed rows of the track_comparison rule (model, fold, path
    each; alldag.plan.StudyPlan.tracked_runs), whatever their order."""
    runs: dict[str, dict[int, str]] = {}
    for row in rows:
        runs.setdefault(str(row["model"]), {})[int(row["fold"])] = str(row["path"])
    return {model: dict(sorted(folds.items())) for model, folds in runs.items()}


def track_comparison(
    *, task: str, tracking, comparison, paired, figure, provenance, tracked_runs: dict, tracked_out
) -> dict | None:
    """Put a task's comparison on this invocation's parent run (artefacts, metrics, verdict tags, provenance),
    each once, then register the task's best model (the registry step is idempotent too).

    tracked_runs: model -> fold -> the model's tracked.json (from its track job).
    """
    from alldag.names import METRICS
    from alldag.registry import log_provenance, register_best

    summary = pd.read_csv(comparison, sep="\t")
    client = client_for(tracking.uri)
    run_id = tracking.parent_run_id()
    log_artifacts_once(client, run_id, [comparison, paired, figure], f"comparison/{task}")
    metrics = {
        f"{task}.{row['model']}.{m}": float(row[m])
        for row in summary.to_dict("records")
        for m in METRICS + ["diff_vs_colour_baseline", "p_vs_colour_baseline", "p_vs_colour_baseline_holm"]
        if m in row and not pd.isna(row[m])
    }
    log_metrics_once(client, run_id, metrics)
    for row in summary.to_dict("records"):
        word = verdict_of(row.get(VERDICT_COLUMN))
        if word:  # the baseline's own row has none
            retry(client.set_tag, run_id, f"{task}.{row['model']}.{VERDICT_COLUMN}", word)
    log_provenance(tracking.parent_run_file, provenance)
    registered = register_best(task, summary, tracked_runs)
    Path(tracked_out).parent.mkdir(parents=True, exist_ok=True)
    Path(tracked_out).write_text(
        json.dumps(
            {"parent_run_id": run_id, "tracking_uri": tracking.uri, "registered": registered}, indent=2, default=str
        )
    )
    return registered
