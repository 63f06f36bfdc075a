"""alldag.track: the track stage is the one writer of a model's MLflow run: it makes the run from the files the
computing jobs wrote, logs them once however often it runs, and completes (and moves under the current
invocation's parent run) a run that an interrupted track attempt left half logged."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from PIL import Image

from alldag.track import TrackInputs, TrackSettings, track_model, tracked_runs_from_table
from alldag.tracking import Tracking, log_steps_once

EPOCHS = 4


@pytest.fixture
def job_files(tmp_path):
    """What a model's computing jobs wrote: run record (no run yet), split manifest, history, metrics."""
    manifest = tmp_path / "split_manifest.tsv"
    pd.DataFrame(
        {
            "image_id": [f"i{k}" for k in range(6)],
            "label": ["A", "B"] * 3,
            "y": [0, 1] * 3,
            "split": ["train", "train", "val", "val", "test", "test"],
            "path": [f"/x/{k}.png" for k in range(6)],
        }
    ).to_csv(manifest, sep="\t", index=False)
    history = tmp_path / "history.tsv"
    pd.DataFrame(
        {
            "epoch": range(1, EPOCHS + 1),
            "phase": "full",
            "learning_rate": 1e-3,
            "loss": [1.0, 0.8, 0.6, 0.5],
            "accuracy": [0.5, 0.6, 0.7, 0.8],
            "val_loss": [1.1, 0.9, 0.7, 0.6],
            "val_accuracy": [0.5, 0.5, 0.6, 0.7],
            "kept": [False, False, False, True],
        }
    ).to_csv(history, sep="\t", index=False)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(
        json.dumps(
            {
                "accuracy": 0.75,
                "ece": 0.1,
                "classes": ["A", "B"],
                "per_class": {c: {"precision": 0.7, "recall": 0.8, "f1": 0.75, "support": 2} for c in "AB"},
            }
        )
    )
    run = tmp_path / "mlflow_run.json"
    run.write_text(
        json.dumps(
            {
                "run_id": None,
                "record": "rec-1",
                "name": "t/m/fold0",
                "dataset": "t/fold0",
                "tags": {"task": "t", "backbone": "m", "fold": "0"},
                "params": {"seed": "3"},
            }
        )
    )
    tracking = Tracking(
        uri=f"sqlite:///{tmp_path}/mlflow.db",
        experiment="study",
        artifact_root=str(tmp_path / "art"),
        parent_run_file=str(tmp_path / "parent.json"),
        tags={},
    )
    return tracking, dict(
        run=run, manifest=manifest, history=history, metrics=metrics, tracked_out=tmp_path / "tracked.json"
    )


def _track(tracking, files, **inputs) -> str:
    """The track job on the fixture's files (run, manifest, history, metrics; logged: history.tsv and
    evaluation/metrics.json) and any other inputs."""
    named = {k: str(v) for k, v in files.items() if k != "tracked_out"}
    return track_model(
        settings=TrackSettings(tracking, ("A", "B")),
        inputs=TrackInputs(**named, **inputs),
        tracked_out=files["tracked_out"],
    )


def _logged(tracking):
    client = mlflow.MlflowClient(tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name("study").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 1, [r.data.tags for r in runs]
    run_id = children[0].info.run_id
    steps = sorted(m.step for m in client.get_metric_history(run_id, "val_loss"))
    tests = len(client.get_metric_history(run_id, "test_accuracy"))
    artefacts = sorted(a.path for folder in (None, "evaluation") for a in client.list_artifacts(run_id, folder))
    return run_id, steps, tests, artefacts, children[0].info.status, len(children[0].inputs.dataset_inputs)


def test_track_makes_the_run_once_and_a_rerun_adds_nothing(job_files):
    tracking, files = job_files
    run_id = _track(tracking, files)
    first = _logged(tracking)
    assert first == (
        run_id,
        list(range(EPOCHS)),
        1,
        ["evaluation", "evaluation/metrics.json", "history.tsv"],
        "FINISHED",
        3,
    )
    _track(tracking, files)  # e.g. --forcerun track
    assert _logged(tracking) == first
    assert json.loads(files["tracked_out"].read_text())["logged_now"] == {
        "epochs": 0,
        "best epoch": 0,
        "test metrics": 0,
        "artefacts": 0,
    }


def test_track_completes_the_run_an_interrupted_attempt_left_and_moves_it_to_the_current_parent(job_files):
    """A track job killed (or cut off by an outage) after making the run: the next attempt, in a later invocation,
    finds the run by its record id, moves it under that invocation's parent run (the earlier parents kept in
    alldag.previous_parent_run_ids, oldest first) and logs what it lacks; no second run."""
    from alldag.tracking import PARENT_TAG, PREVIOUS_PARENTS_TAG, create_child_run, ensure_experiment

    tracking, files = job_files
    client = mlflow.MlflowClient(tracking.uri)
    experiment = ensure_experiment(tracking.uri, "study", tracking.artifact_root)
    first, second = (client.create_run(experiment).info.run_id for _ in range(2))  # two invocations' parents
    Path(tracking.parent_run_file).write_text(json.dumps({"run_id": first}))
    run_id, parent = create_child_run(tracking, json.loads(files["run"].read_text()))
    assert parent == first
    died = [{"step": epoch, "metrics": {"loss": 1.0, "val_loss": 1.0}} for epoch in (0, 1)]
    log_steps_once(client, run_id, died)  # the attempt died after two epochs
    Path(tracking.parent_run_file).write_text(json.dumps({"run_id": second}))
    for _ in range(2):  # the second time: the same invocation again
        assert _track(tracking, files) == run_id
    assert _logged(tracking)[:3] == (run_id, list(range(EPOCHS)), 1)
    tags = client.get_run(run_id).data.tags
    assert tags[PARENT_TAG] == second and tags[PREVIOUS_PARENTS_TAG] == first


def test_another_labs_metrics_and_images_reach_the_run_once(tmp_path, job_files):
    tracking, files = job_files
    metrics = tmp_path / "fold0.json"  # what external_validation writes for the fold's run
    metrics.write_text(json.dumps({"external_lab_b_balanced_accuracy": 0.625}))
    images, other = tmp_path / "images.tsv", tmp_path / "other.tsv"  # external audits' tables
    # a class outside the task is not the run's input; a set with none of the task's classes is no input at all
    pd.DataFrame({"image_id": ["A/1.jpg", "B/2.jpg", "C/3.jpg"], "label": ["A", "B", "C"]}).to_csv(
        images, sep="\t", index=False
    )
    pd.DataFrame({"image_id": ["C/4.jpg"], "label": ["C"]}).to_csv(other, sep="\t", index=False)
    no_scores = tmp_path / "none.json"
    no_scores.write_text("{}")
    external = {"lab_b": {"metrics": metrics, "images": images}, "lab_c": {"metrics": no_scores, "images": other}}

    def external_inputs(run_id):
        run = mlflow.MlflowClient(tracking.uri).get_run(run_id)
        tags = [{t.key: t.value for t in i.tags} for i in run.inputs.dataset_inputs]
        found = [(i.dataset.name, t) for i, t in zip(run.inputs.dataset_inputs, tags) if "external_set" in t]
        history = mlflow.MlflowClient(tracking.uri).get_metric_history(run_id, "external_lab_b_balanced_accuracy")
        return [m.value for m in history], found

    run_id = _track(tracking, files, external=external)
    history, inputs = external_inputs(run_id)
    assert history == [0.625]
    assert [(name, t["mlflow.data.context"], t["external_set"], t["n_images"]) for name, t in inputs] == [
        ("t/external/lab_b", "external:lab_b", "lab_b", "2")
    ]
    _track(tracking, files, external=external)  # a rerun adds nothing
    assert external_inputs(run_id) == ([0.625], inputs)
    assert json.loads(files["tracked_out"].read_text())["logged_now"]["external datasets"] == 0
    pd.DataFrame({"image_id": ["A/1.jpg", "B/9.jpg"], "label": ["A", "B"]}).to_csv(images, sep="\t", index=False)
    _track(tracking, files, external=external)  # other images under the set's name: logged anew
    assert len(external_inputs(run_id)[1]) == 2


def test_the_model_is_logged_once(tmp_path, job_files):
    import keras

    from alldag.track import log_model_once

    tracking, files = job_files
    path = tmp_path / "model.keras"
    keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")]
    ).save(path)
    run_id = _track(tracking, files)
    client = mlflow.MlflowClient(tracking.uri)
    images = pd.read_csv(files["manifest"], sep="\t")
    for k in range(len(images)):  # the example image the logged model keeps
        Image.new("RGB", (8, 8), (k * 40, 0, 0)).save(tmp_path / f"{k}.png")
    images.assign(path=[str(tmp_path / f"{k}.png") for k in range(len(images))]).to_csv(
        files["manifest"], sep="\t", index=False
    )
    assert log_model_once(client, run_id, path, files["manifest"], ["A", "B"])
    assert not log_model_once(client, run_id, path, files["manifest"], ["A", "B"])
    assert len(client.get_run(run_id).outputs.model_outputs) == 1
    assert path.stat().st_nlink == 2  # the logged model's file is the DAG's (a local artifact store)
    # A track job finding the model logged imports neither TensorFlow (4 CPU-seconds per job) nor scikit-learn
    # or matplotlib (1.4 s): what it logs is named by alldag.run_metrics.
    check = (
        "import sys; import alldag.run_metrics; from alldag.track import log_model_once; "
        "from alldag.tracking import client_for; "
        f"assert not log_model_once(client_for({tracking.uri!r}), {run_id!r}, None, None, ['A', 'B']); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr[-2000:]


def test_a_training_jobs_record_becomes_its_one_child_run_made_by_the_track_rule(job_files):
    import dataclasses

    from alldag.tracking import PARENT_TAG, RECORD_TAG, RUN_PARAMS, write_run_file
    from alldag.train import TrainSettings, run_record

    tracking, files = job_files
    tracking = dataclasses.replace(tracking, tags={"alldag.data_source": "synthetic"})
    weights_file = Path(files["history"]).parent / "m_notop.h5"  # the cached ImageNet file training started from
    weights_file.write_bytes(b"pretrained")
    manifest = pd.read_csv(files["manifest"], sep="\t")
    settings = TrainSettings(
        backbone="m",
        task="t",
        fold=0,
        classes=("A", "B"),
        image_size=8,
        epochs=EPOCHS,
        batch_size=2,
        learning_rate=1e-3,
        weights="imagenet",
        dropout=0.0,
        bn_momentum=None,
        recalibrate_bn=False,
        seed=3,
        weights_file=str(weights_file),
    )
    hardware = {"gpus": 0, "devices": "CPU", "precision": "float32"}
    record = run_record(settings, tracking, manifest, {"flip": True}, hardware)
    sample = {"step": 0, "timestamp": 1_700_000_005_000, "metrics": {"system/cpu_utilization_percentage": 50.0}}
    # what train_model adds: its start and end (epoch ms), the recalibrated scores, system metrics if sampled
    record |= {
        "started": 1_700_000_000_000,
        "ended": 1_700_000_060_000,
        "metrics": {"val_loss_recalibrated": 0.5},
        "system_metrics": [sample],
    }
    write_run_file(files["run"], tracking, record)
    assert json.loads(files["run"].read_text())["run_id"] is None  # training makes no run
    run_id = _track(tracking, files)
    run = mlflow.MlflowClient(tracking.uri).get_run(run_id)
    assert run.data.tags[PARENT_TAG] == json.loads(Path(tracking.parent_run_file).read_text())["run_id"]
    assert run.data.tags[RECORD_TAG] == record["record"] and run.info.run_name == "t/m/fold0"
    assert "mlflow.source.name" in run.data.tags and len(run.inputs.dataset_inputs) == 3
    assert set(RUN_PARAMS) <= set(run.data.params)
    assert [run.data.params[k] for k in ("backbone", "fold", "data_source", "augment.flip")] == [
        "m",
        "0",
        "synthetic",
        "True",
    ]
    # the weights file's lineage: name and sha256, as params and as tags
    lineage = {"weights_file": "m_notop.h5", "weights_sha256": hashlib.sha256(b"pretrained").hexdigest()}
    assert {k: run.data.params[k] for k in lineage} == lineage and run.data.params["weights"] == "imagenet"
    assert {k: run.data.tags[f"alldag.{k}"] for k in lineage} == lineage
    # the run spans the training job, as when training logged it live
    assert (run.info.start_time, run.info.end_time, run.info.status) == (record["started"], record["ended"], "FINISHED")
    assert run.data.metrics["val_loss_recalibrated"] == 0.5
    cpu = mlflow.MlflowClient(tracking.uri).get_metric_history(run_id, "system/cpu_utilization_percentage")
    assert [(m.value, m.timestamp, m.step) for m in cpu] == [(50.0, sample["timestamp"], 0)]
    assert _track(tracking, files) == run_id  # again: the same run, nothing added
    assert _logged(tracking)[:3] == (run_id, list(range(EPOCHS)), 1)
    assert json.loads(files["tracked_out"].read_text())["logged_now"]["system metrics"] == 0


def test_explanation_metrics_log_the_means_and_the_maps_without_positive_attribution(tmp_path):
    """The MLflow metrics of explanation_summary.tsv as the track job reads it: every overall mean, and per
    method how many maps had no positive attribution (method pairs have no such count)."""
    from alldag.attribution_metrics import summarise_explanations
    from alldag.run_metrics import explanation_metrics

    per_image = pd.DataFrame(
        {
            "image_id": ["a", "b", "a", "b"],
            "label": "x",
            "method": ["lime", "lime", "gradcam", "gradcam"],
            "mask_ratio": [float("nan"), 2.0, 3.0, 5.0],
            "deletion_auc_blur_vs_random": [0.0, -0.1, -0.2, -0.4],
            "no_positive_attribution": [True, False, False, False],
        }
    )
    agreement = pd.DataFrame({"image_id": ["a", "b"], "label": "x", "pair": "gradcam_vs_lime", "top_iou": [0.2, 0.4]})
    path = tmp_path / "explanation_summary.tsv"
    summarise_explanations(per_image, agreement).to_csv(path, sep="\t", index=False)
    metrics = explanation_metrics(pd.read_csv(path, sep="\t"))
    assert (
        metrics["explain_lime_no_positive_attribution"] == 1 and metrics["explain_gradcam_no_positive_attribution"] == 0
    )
    assert metrics["explain_gradcam_deletion_auc_blur_vs_random"] == pytest.approx(-0.3)
    assert metrics["explain_lime_mask_ratio"] == 2.0 and metrics["explain_gradcam_vs_lime_top_iou"] == pytest.approx(
        0.3
    )
    assert "explain_gradcam_vs_lime_no_positive_attribution" not in metrics


def test_track_comparison_finds_each_run_by_its_key_not_by_its_place():
    """Rows in model-major or fold-major (or any) order give the same model -> fold -> tracked.json."""
    models = ("A", "colour_baseline")
    rows = [{"model": m, "fold": f, "path": f"{m}/{f}/tracked.json"} for m in models for f in (0, 1, 2)]
    expected = {m: {f: f"{m}/{f}/tracked.json" for f in (0, 1, 2)} for m in models}
    fold_major = sorted(rows, key=lambda r: (-r["fold"], r["model"]))
    assert tracked_runs_from_table(rows) == tracked_runs_from_table(fold_major) == expected
    assert list(tracked_runs_from_table(fold_major)["A"]) == [0, 1, 2]  # the registry's ties go to the lowest fold
