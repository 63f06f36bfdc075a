"""Training options: class weights, backbone freezing, and the two-phase fine-tuning path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from alldag.train import TrainSettings, balanced_class_weights, mark_kept_epoch, training_phases


def test_balanced_class_weights():
    weights = balanced_class_weights(np.array([0, 0, 0, 1]), 3)
    assert weights == {0: pytest.approx(4 / 9), 1: pytest.approx(4 / 3), 2: 0.0}
    counts = np.array([3, 1])
    assert sum(weights[i] * counts[i] for i in range(2)) == pytest.approx(4 * 2 / 3)  # each class weighs n/k


def test_freezing_keeps_head_and_batchnorm_rules():
    from alldag.models import backbone_layers, build_classifier, set_backbone_trainable

    model = build_classifier("MobileNet", 2, 32, None)
    layers = backbone_layers(model)
    assert set_backbone_trainable(model, 0) == 0
    assert {w.path.split("/")[0] for w in model.trainable_weights} == {"predictions"}
    assert set_backbone_trainable(model, 10) == sum(
        layer.__class__.__name__ != "BatchNormalization" for layer in layers[-10:]
    )
    assert not any(layer.trainable for layer in layers if layer.__class__.__name__ == "BatchNormalization")
    assert set_backbone_trainable(model, None) == sum(
        layer.__class__.__name__ != "BatchNormalization" for layer in layers
    )


def train_settings(**changes) -> TrainSettings:
    """A small MobileNet training run's settings (2 epochs, random init, 32 px), with `changes` applied."""
    base = TrainSettings(
        backbone="MobileNet",
        task="t",
        fold=0,
        classes=("Benign", "Pro"),
        image_size=32,
        epochs=2,
        batch_size=8,
        learning_rate=1e-3,
        weights=None,
        dropout=0.1,
        bn_momentum=0.9,
        recalibrate_bn=False,
        seed=0,
    )
    return dataclasses.replace(base, **changes)


NO_AUGMENTATION = {"rotation_degrees": 0, "brightness": 0, "horizontal_flip": False, "vertical_flip": False, "seed": 0}


def test_two_phase_fine_tuning_from_a_weights_file(tmp_path, small_manifest):
    import keras

    from alldag.models import build_classifier
    from alldag.train import fit

    # a "pretrained" backbone weights file, made offline
    base = keras.applications.MobileNet(include_top=False, weights=None, input_shape=(32, 32, 3))
    base.save_weights(tmp_path / "mobilenet.weights.h5")
    settings = train_settings(
        epochs=3,
        weights=str(tmp_path / "mobilenet.weights.h5"),
        head_epochs=1,
        fine_tune_layers=5,
        fine_tune_learning_rate=1e-4,
    )
    reported = []
    model, history = fit(settings, small_manifest, NO_AUGMENTATION, tmp_path / "ckpt", reported.extend)
    assert list(history["epoch"]) == [1, 2, 3]
    assert list(history["phase"]) == ["head", "fine_tune", "fine_tune"]
    assert [r["epoch"] for r in reported] == [1, 2, 3]
    assert build_classifier("MobileNet", 2, 32, None).count_params() == model.count_params()


def test_precise_bn_after_two_phase_fine_tuning_skips_the_frozen_layers_and_says_so(tmp_path, small_manifest, caplog):
    import keras

    from alldag.train import fit

    base = keras.applications.MobileNet(include_top=False, weights=None, input_shape=(32, 32, 3))
    base.save_weights(tmp_path / "mobilenet.weights.h5")
    settings = train_settings(
        weights=str(tmp_path / "mobilenet.weights.h5"),
        recalibrate_bn=True,
        head_epochs=1,
        fine_tune_layers=5,
        fine_tune_learning_rate=1e-4,
    )
    with caplog.at_level("INFO", logger="alldag.train"):
        fit(settings, small_manifest, NO_AUGMENTATION, tmp_path / "ckpt")
    assert "precise BN: 27 frozen BatchNormalization layers keep their statistics (skipped)" in caplog.text
    assert "recalibrated" not in caplog.text  # BatchNorm was frozen: nothing changed, nothing claimed


def test_a_random_init_architecture_trains_in_one_phase_whatever_train_weights_says():
    settings = train_settings(
        backbone="SmallCNN",
        epochs=25,
        learning_rate=1e-4,
        weights="imagenet",
        bn_momentum=None,
        recalibrate_bn=True,
        head_epochs=5,
        fine_tune_layers=40,
    )
    assert [name for name, *_ in training_phases(settings)] == ["head", "fine_tune"]  # a pretrained backbone
    assert training_phases(settings, pretrained=False) == [("full", 25, 1e-4, None)]


def test_custom_architecture_fit_has_one_phase(tmp_path, small_manifest):
    import keras

    from alldag.train import fit

    def build():
        inputs = keras.Input((32, 32, 3))
        x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
        return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))

    settings = train_settings(backbone="Tiny", epochs=3, weights="imagenet", bn_momentum=None, head_epochs=1)
    _, history = fit(settings, small_manifest, NO_AUGMENTATION, tmp_path / "ckpt", build_model=build)
    assert list(history["phase"]) == ["full"] * 3


def test_best_epoch_is_the_one_whose_weights_were_kept():
    import pandas as pd

    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3, 4, 5],
            "phase": ["head", "head", "fine_tune", "fine_tune", "fine_tune"],
            "val_loss": [0.3, 0.5, 0.6, 0.4, 0.45],
        }
    )
    # the global minimum (epoch 1) is in the head phase; the fine-tuning callback restored epoch 4
    assert mark_kept_epoch(history, early_stopping=True)["kept"].tolist() == [False, False, False, True, False]
    assert mark_kept_epoch(history, early_stopping=False)["kept"].tolist() == [False] * 4 + [True]
    ties = pd.DataFrame({"epoch": [1, 2, 3], "phase": "full", "val_loss": [0.5, 0.4, 0.4]})
    assert mark_kept_epoch(ties, early_stopping=True)["kept"].tolist() == [False, True, False]  # Keras: strict <


class Killed(Exception):
    """Stands in for a kill right after a checkpoint was written."""


@pytest.mark.parametrize("weights", [None, "file"])
def test_a_killed_fit_resumes_after_its_last_checkpoint_and_reports_each_epoch_once(tmp_path, small_manifest, weights):
    import keras

    from alldag.train import fit

    if weights:  # two phases: the kill lands on the phase boundary (after head epoch 2)
        base = keras.applications.MobileNet(include_top=False, weights=None, input_shape=(32, 32, 3))
        weights = str(tmp_path / "mobilenet.weights.h5")
        base.save_weights(weights)
    settings = train_settings(epochs=4, weights=weights, early_stopping_patience=3, head_epochs=2, fine_tune_layers=5)
    build = None if weights else _tiny_cnn  # one phase: any model will do; two phases need a backbone
    if build:
        settings = dataclasses.replace(settings, backbone="tiny")
    reported = []

    def report_then_die(rows):
        reported.extend(rows)
        if rows[-1]["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        fit(settings, small_manifest, NO_AUGMENTATION, tmp_path / "ckpt", report_then_die, build_model=build)
    state = __import__("json").loads((tmp_path / "ckpt" / "state.json").read_text())
    assert state["epoch"] == 2 and len(list((tmp_path / "ckpt").glob("epoch*.weights.h5"))) == 1
    model, history = fit(
        settings, small_manifest, NO_AUGMENTATION, tmp_path / "ckpt", reported.extend, build_model=build
    )
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert [r["epoch"] for r in reported] == [1, 2, 3, 4]  # nothing reported twice
    if weights:
        assert list(history["phase"]) == ["head", "head", "fine_tune", "fine_tune"]


def _tiny_cnn():
    """Conv, BatchNorm, dropout: every kind of state a resume must restore or draw again alike."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))


def test_a_resumed_fit_is_bit_identical_to_an_uninterrupted_one(tmp_path, small_manifest):
    """Shuffle, augmentation and dropout are drawn from (seed, epoch): a kill after epoch 2 changes nothing."""
    import pandas as pd

    from alldag.augment import augmentation_spec
    from alldag.evaluate import predict_split
    from alldag.train import fit

    augmentation = augmentation_spec(20, 0.2, True, True, seed=3)
    settings = train_settings(
        backbone="tiny", epochs=4, batch_size=4, learning_rate=1e-2, dropout=0.5, bn_momentum=None, seed=7
    )
    whole_model, whole = fit(settings, small_manifest, augmentation, tmp_path / "whole", build_model=_tiny_cnn)

    def report_then_die(rows):
        if rows[-1]["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        fit(settings, small_manifest, augmentation, tmp_path / "resumed", report_then_die, build_model=_tiny_cnn)
    resumed_model, resumed = fit(settings, small_manifest, augmentation, tmp_path / "resumed", build_model=_tiny_cnn)
    pd.testing.assert_frame_equal(resumed, whole, check_exact=True)
    for got, expected in zip(resumed_model.get_weights(), whole_model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, expected)
    test = small_manifest[small_manifest["split"] == "test"]
    np.testing.assert_array_equal(predict_split(resumed_model, test, 4), predict_split(whole_model, test, 4))
    other_seed, _ = fit(
        dataclasses.replace(settings, seed=8), small_manifest, augmentation, tmp_path / "other", build_model=_tiny_cnn
    )
    assert not np.array_equal(other_seed.get_weights()[0], whole_model.get_weights()[0])  # the seed does matter


def test_a_checkpoint_made_with_other_settings_is_ignored(tmp_path, small_manifest):
    from alldag.train import fit

    settings = train_settings(backbone="tiny")
    fit(settings, small_manifest, NO_AUGMENTATION, tmp_path / "ckpt", build_model=_tiny_cnn)
    assert (tmp_path / "ckpt" / "state.json").is_file()
    reported = []
    fit(settings, small_manifest, NO_AUGMENTATION, tmp_path / "ckpt", reported.extend, build_model=_tiny_cnn)
    assert reported == []  # the same settings: the finished checkpoint is taken, nothing is trained again
    other = train_settings(backbone="tiny", epochs=3)
    _, history = fit(other, small_manifest, NO_AUGMENTATION, tmp_path / "ckpt", reported.extend, build_model=_tiny_cnn)
    assert list(history["epoch"]) == [r["epoch"] for r in reported] == [1, 2, 3]  # afresh, every epoch trained


def test_missing_epochs_are_logged_once(tmp_path):
    import mlflow
    import pandas as pd

    from alldag.run_metrics import log_missing_epochs

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/m.db")
    run_id = mlflow.MlflowClient().create_run(mlflow.MlflowClient().create_experiment("e")).info.run_id
    history = pd.DataFrame({"epoch": [1, 2, 3], "phase": "full", "loss": [0.9, 0.5, 0.4], "val_loss": [1.0, 0.8, 0.7]})
    assert log_missing_epochs(run_id, history.head(1)) == 1  # an earlier attempt logged the first epoch
    assert log_missing_epochs(run_id, history) == 2
    assert log_missing_epochs(run_id, history) == 0
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(run_id, "loss")]
    assert sorted(steps) == [0, 1, 2]


def test_parallel_jobs_write_one_sqlite_store_without_failing(tmp_path):
    """Four processes create child runs and log 30 epochs each into one SQLite file at once."""
    import multiprocessing

    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        run_ids = pool.starmap(_log_a_child_run, [(uri, str(tmp_path), i) for i in range(4)])
    client = mlflow.MlflowClient(uri)
    for run_id in run_ids:
        assert len(client.get_metric_history(run_id, "loss")) == 30
        assert client.get_run(run_id).info.status == "FINISHED"
    assert len({client.get_run(r).data.tags["mlflow.parentRunId"] for r in run_ids}) == 1


def _log_a_child_run(uri: str, workdir: str, i: int) -> str:
    import pandas as pd

    from alldag.run_metrics import log_missing_epochs
    from alldag.tracking import Tracking, client_for, create_child_run, retry

    tracking = Tracking(uri, "study", f"{workdir}/art", f"{workdir}/parent.json", {})
    parent = tracking.parent_run_id() if i == 0 else None
    while parent is None:  # the first process creates the parent run, the others wait for its file
        try:
            parent = __import__("json").loads(Path(tracking.parent_run_file).read_text())["run_id"]
        except (OSError, ValueError):
            __import__("time").sleep(0.05)
    run_id, _ = create_child_run(tracking, {"name": f"model{i}", "record": str(i), "tags": {}})
    epochs = pd.DataFrame({"epoch": range(1, 31), "loss": [1 / e for e in range(1, 31)]})
    assert log_missing_epochs(run_id, epochs) == 30
    retry(client_for(uri).set_terminated, run_id, "FINISHED")
    return run_id


def test_tracking_uri_from_environment_wins_and_relative_sqlite_becomes_absolute(monkeypatch, tmp_path):
    from alldag.tracking import Tracking

    params = {
        "uri": "sqlite:///results/mlflow.db",
        "experiment": "e",
        "artifact_root": "a",
        "parent_run_file": "p",
        "tags": {},
    }
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert Tracking.from_params(params).uri == f"sqlite:///{tmp_path}/results/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert Tracking.from_params(params).uri == "http://127.0.0.1:5999"


def test_rotation_matches_tensorflows_projective_transform_and_is_seeded():
    import math

    import tensorflow as tf

    from alldag.augment import augmentation_spec, build_augmenter, rotate_bilinear

    images = tf.random.stateless_uniform((3, 40, 30, 3), seed=(1, 2), minval=0, maxval=255)
    angles = tf.constant([0.0, 0.3, -1.2])
    out = rotate_bilinear(images, angles).numpy()
    np.testing.assert_allclose(out[0], images[0].numpy(), atol=1e-4)  # angle 0: identity
    for i in (1, 2):  # the same rotation as TensorFlow's own op, borders reflected alike
        a, cx, cy = float(angles[i]), 14.5, 19.5
        matrix = [
            math.cos(a),
            -math.sin(a),
            cx - (math.cos(a) * cx - math.sin(a) * cy),
            math.sin(a),
            math.cos(a),
            cy - (math.sin(a) * cx + math.cos(a) * cy),
            0.0,
            0.0,
        ]
        expected = tf.raw_ops.ImageProjectiveTransformV3(
            images=images[i : i + 1],
            transforms=tf.constant([matrix]),
            output_shape=[40, 30],
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="REFLECT",
        ).numpy()[0]
        np.testing.assert_allclose(out[i], expected, atol=0.05)
    spec = augmentation_spec(20, 0.2, True, False, seed=4, hue=0.05, saturation=0.3, contrast=0.2)
    first, second = (np.asarray(build_augmenter(spec)(images, training=True)) for _ in range(2))
    np.testing.assert_array_equal(first, second)  # one seed, one augmentation
    assert not np.allclose(first, images.numpy()) and first.min() >= 0 and first.max() <= 255


def test_training_logs_a_progress_line_per_epoch(tmp_path, small_manifest, caplog):
    from alldag.train import fit

    settings = train_settings(backbone="tiny")
    with caplog.at_level("INFO", logger="alldag.progress"):
        fit(settings, small_manifest, NO_AUGMENTATION, tmp_path / "ckpt", build_model=_tiny_cnn)
    lines = [r.getMessage() for r in caplog.records if r.name == "alldag.progress"]
    assert lines[0] == "train t/tiny/fold0 (full): 2 epochs to do"
    # a 30-s heartbeat may come in between on a loaded machine: the epoch line must be there, in order
    assert any(
        line.startswith("train t/tiny/fold0 (full): 1/2 epochs (50%), ") and "ETA" in line for line in lines[1:-1]
    ), lines
    assert lines[-1].startswith("train t/tiny/fold0 (full): 2/2 epochs (100%), ") and "done in" in lines[-1]


def test_a_training_job_writes_files_only_even_with_the_tracking_server_down(tmp_path, small_manifest):
    """train_model makes no MLflow run and talks to no store (here, a server nobody answers): its run file holds
    the record the track job makes the run from, with the job's start and end and the recalibrated scores."""
    import json

    from alldag.tracking import Tracking
    from alldag.train import TrainOutputs, train_model

    manifest, spec = tmp_path / "split_manifest.tsv", tmp_path / "augmentation.json"
    small_manifest.to_csv(manifest, sep="\t", index=False)
    spec.write_text(json.dumps(NO_AUGMENTATION))
    outputs = TrainOutputs(*(str(tmp_path / f"m/{n}") for n in ("model.keras", "history.tsv", "c.png", "run.json")))
    tracking = Tracking("http://127.0.0.1:9", "study", str(tmp_path / "art"), str(tmp_path / "parent.json"), {})
    settings = train_settings(backbone="tiny", recalibrate_bn=True)
    train_model(
        settings=settings,
        manifest=manifest,
        augmentation=spec,
        tracking=tracking,
        outputs=outputs,
        build_model=_tiny_cnn,
    )
    run = json.loads(Path(outputs.run).read_text())
    assert run["run_id"] is None and run["tracking_uri"] == "http://127.0.0.1:9"
    assert run["name"] == "t/tiny/fold0" and run["params"]["backbone"] == "tiny"
    assert run["started"] <= run["ended"] and run["system_metrics"] == []  # mlflow.system_metrics is off
    assert set(run["metrics"]) == {"val_loss_recalibrated", "val_accuracy_recalibrated"}
    assert not (tmp_path / "parent.json").exists() and not (tmp_path / "m/checkpoint").exists()
    assert all(Path(p).is_file() for p in (outputs.model, outputs.history, outputs.curves))
