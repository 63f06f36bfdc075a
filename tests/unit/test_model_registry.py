"""alldag.registry and the MLflow helpers it relies on, against a real SQLite store with tiny Keras models."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")
mlflow = pytest.importorskip("mlflow")
h5py = pytest.importorskip("h5py")

from alldag.logged_model import EXAMPLE_FILE, log_keras_model, requirements, save_lean, share_file  # noqa: E402
from alldag.registry import CHALLENGER, CHAMPION, register_best, verification_state  # noqa: E402
from alldag.tracking import (  # noqa: E402
    KIND_TAG,
    RUN_PARAMS,
    ensure_experiment,
    log_split_datasets,
    run_params,
)

TASK = "benign_vs_pro"
SIZE = 8


def tiny_model():
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment = ensure_experiment(uri, "study", tmp_path / "artifacts")
    return tmp_path, uri, experiment


def trained_run(store, name: str, balanced_accuracy: float, data_source: str = "synthetic") -> str:
    """A run with a logged tiny model and its test metric; returns the path of its tracked.json."""
    tmp_path, uri, experiment = store
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(
        experiment_id=experiment, run_name=name, tags={"alldag.data_source": data_source, "alldag.synthetic": "true"}
    ) as run:
        mlflow.log_metric("test_balanced_accuracy", balanced_accuracy)
        images = np.random.default_rng(0).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
        log_keras_model(tiny_model(), images, ["Benign", "Pro"])
    path = tmp_path / f"{name.replace('/', '_')}.json"
    path.write_text(json.dumps({"run_id": run.info.run_id, "tracking_uri": uri}))
    return str(path)


def summary(best_verdict: str, best: str = "VGG16") -> pd.DataFrame:
    rows = [
        {
            "model": best,
            "balanced_accuracy": 0.8,
            "balanced_accuracy_ci_low": 0.7,
            "balanced_accuracy_ci_high": 0.9,
            "verdict_vs_colour_baseline": best_verdict,
        },
        {
            "model": "MobileNet",
            "balanced_accuracy": 0.6,
            "balanced_accuracy_ci_low": 0.5,
            "balanced_accuracy_ci_high": 0.7,
            "verdict_vs_colour_baseline": "worse",
        },
        {
            "model": "colour_baseline",
            "balanced_accuracy": 0.75,
            "balanced_accuracy_ci_low": 0.65,
            "balanced_accuracy_ci_high": 0.85,
            "verdict_vs_colour_baseline": "worse",
        },
    ]
    return pd.DataFrame(rows)


def test_best_model_beating_the_baseline_is_champion_with_its_numbers(store):
    runs = {
        "VGG16": {0: trained_run(store, "a", 0.7), 1: trained_run(store, "b", 0.9)},
        "MobileNet": {0: trained_run(store, "c", 0.6), 1: trained_run(store, "d", 0.6)},
    }
    done = register_best(TASK, summary("beats"), runs)
    assert done["alias"] == CHAMPION and done["new"] and done["fold"] == 1  # the better fold
    client = mlflow.MlflowClient(store[1])
    version = client.get_model_version_by_alias(f"alldag-{TASK}", CHAMPION)
    assert version.run_id == json.loads(Path(runs["VGG16"][1]).read_text())["run_id"]
    assert version.tags["balanced_accuracy"] == "0.8000" and version.tags["balanced_accuracy_ci_low"] == "0.7000"
    assert version.tags["verdict_vs_colour_baseline"] == "beats" and version.tags["data_source"] == "synthetic"
    assert "beats the colour baseline's 0.750 [0.650, 0.850]" in version.description


def test_a_rerun_with_the_same_best_model_adds_no_version(store):
    runs = {"VGG16": {0: trained_run(store, "a", 0.7)}, "MobileNet": {0: trained_run(store, "c", 0.6)}}
    first = register_best(TASK, summary("beats"), runs)
    again = register_best(TASK, summary("beats"), runs)
    assert not again["new"] and again["version"] == first["version"]
    retrained = {**runs, "VGG16": {0: trained_run(store, "a2", 0.7)}}
    third = register_best(TASK, summary("beats"), retrained)
    assert third["new"] and int(third["version"]) == int(first["version"]) + 1
    assert len(mlflow.MlflowClient(store[1]).search_model_versions(f"name = 'alldag-{TASK}'")) == 2


@pytest.mark.parametrize("beats", ["worse", "equivalent", "undetermined"])
def test_a_model_not_beating_the_baseline_is_challenger_never_champion(store, beats):
    runs = {"VGG16": {0: trained_run(store, "a", 0.7)}, "MobileNet": {0: trained_run(store, "c", 0.6)}}
    done = register_best(TASK, summary(beats), runs)
    assert done["alias"] == CHALLENGER
    client = mlflow.MlflowClient(store[1])
    model = client.get_registered_model(f"alldag-{TASK}")
    assert {k: str(v) for k, v in model.aliases.items()} == {CHALLENGER: done["version"]}
    version = client.get_model_version(f"alldag-{TASK}", done["version"])
    assert version.description.startswith(f"Not champion (verdict_vs_colour_baseline = {beats}")
    assert "colour baseline's 0.750" in version.description


def test_a_champion_that_turns_out_not_to_beat_the_baseline_loses_the_alias(store):
    runs = {"VGG16": {0: trained_run(store, "a", 0.7)}, "MobileNet": {0: trained_run(store, "c", 0.6)}}
    register_best(TASK, summary("beats"), runs)
    done = register_best(TASK, summary("worse"), runs)
    aliases = mlflow.MlflowClient(store[1]).get_registered_model(f"alldag-{TASK}").aliases
    assert {k: str(v) for k, v in aliases.items()} == {CHALLENGER: done["version"]}


def test_registered_model_loads_by_alias_and_has_exact_requirements(store, tmp_path):
    runs = {"VGG16": {0: trained_run(store, "a", 0.7)}, "MobileNet": {0: trained_run(store, "c", 0.6)}}
    register_best(TASK, summary("beats"), runs)
    model = mlflow.pyfunc.load_model(f"models:/alldag-{TASK}@champion")
    x = np.full((2, SIZE, SIZE, 3), 255.0, np.float32)
    assert model.predict(x).shape == (2, 2)
    folder = mlflow.artifacts.download_artifacts(f"models:/alldag-{TASK}@champion", dst_path=str(tmp_path / "m"))
    assert (tmp_path / "m/requirements.txt").read_text().split() == requirements()
    assert not any("alldag" in line for line in requirements())
    assert (tmp_path / "m" / EXAMPLE_FILE).stat().st_size < 100_000 and folder


def test_model_output_is_one_stored_copy_without_optimizer_state(store, tmp_path):
    _, uri, experiment = store
    mlflow.set_tracking_uri(uri)
    model = tiny_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(np.zeros((2, SIZE, SIZE, 3)), np.array([0, 1]), verbose=0)
    out = tmp_path / "out/model.keras"
    save_lean(model, out)  # what training writes
    with mlflow.start_run(experiment_id=experiment):  # what the track job logs
        info = log_keras_model(keras.saving.load_model(out, compile=False), np.zeros((1, SIZE, SIZE, 3)), ["a", "b"])
    assert share_file(info, out)
    assert out.stat().st_nlink == 2  # the DAG output and the MLflow artifact are one file
    with zipfile.ZipFile(out) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as weights:
        assert "optimizer" not in weights and "layers" in weights
    x = np.full((2, SIZE, SIZE, 3), 200.0, np.float32)
    logged = mlflow.pyfunc.load_model(info.model_uri)  # the linked file loads as the logged model
    np.testing.assert_allclose(logged.predict(x), model.predict(x, verbose=0), rtol=1e-6)


def test_split_datasets_are_logged_with_context_digest_and_checksum(store):
    tmp_path, uri, experiment = store
    manifest = pd.DataFrame(
        {
            "image_id": [f"i{k}" for k in range(6)],
            "label": ["Benign", "Pro"] * 3,
            "y": [0, 1] * 3,
            "split": ["train", "train", "val", "val", "test", "test"],
        }
    )
    path = tmp_path / "split_manifest.tsv"
    manifest.to_csv(path, sep="\t", index=False)
    mlflow.set_tracking_uri(uri)
    digests = []
    for labels in (["Benign", "Pro"] * 3, ["Pro", "Benign"] * 3):  # two runs on different data
        with mlflow.start_run(experiment_id=experiment) as run:
            log_split_datasets(path, manifest.assign(label=labels), f"{TASK}/fold0", "synthetic")
        inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
        contexts = {next(t.value for t in i.tags if t.key == "mlflow.data.context"): i for i in inputs}
        assert set(contexts) == {"train", "val", "test"}
        train = contexts["train"]
        assert train.dataset.name == f"{TASK}/fold0/train"
        tags = {t.key: t.value for t in train.tags}
        assert len(tags["manifest_sha256"]) == 64 and tags["n_images"] == "2" and tags["data_source"] == "synthetic"
        assert train.dataset.digest == tags["image_list_digest"]
        digests.append(train.dataset.digest)
    assert digests[0] != digests[1]


def test_run_params_are_the_one_flat_set():
    values = {key: key for key in RUN_PARAMS}
    assert list(run_params(**values)) == list(RUN_PARAMS)
    with pytest.raises(ValueError, match="exactly"):
        run_params(**{**values, "extra": 1})


def test_experiment_opens_on_training_runs(store):
    _, uri, experiment = store
    assert mlflow.MlflowClient(uri).get_experiment(experiment).tags[KIND_TAG] == "custom_model_development"


@pytest.mark.parametrize(
    ("verification", "state"), [({"skipped": True}, "skipped"), ({"ok": 3}, "true"), ({"ok": 2, "changed": 1}, "false")]
)
def test_verification_state(verification, state):
    assert verification_state({"verification": verification}) == state


def test_system_metrics_are_sampled_into_a_training_record_when_asked(monkeypatch):
    """Training samples them into its run record (the track job logs them, see test_track_stage); off, none."""
    pytest.importorskip("psutil")
    from alldag.system_metrics import sampled

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    samples = {}
    for wanted in (True, False):
        with sampled(wanted) as samples[wanted]:
            time.sleep(1.6)
    assert [s["step"] for s in samples[True]] == list(range(len(samples[True]))) and len(samples[True]) >= 2
    assert "system/cpu_utilization_percentage" in samples[True][0]["metrics"]
    assert samples[False] == []
