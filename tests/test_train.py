"""Training options: class weights, backbone freezing, and the two-phase fine-tuning path."""

from __future__ import annotations

import numpy as np
import pytest

from alldag.train import TrainSettings, balanced_class_weights


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
        not l.__class__.__name__ == "BatchNormalization" for l in layers[-10:])
    assert not any(l.trainable for l in layers if l.__class__.__name__ == "BatchNormalization")
    assert set_backbone_trainable(model, None) == sum(l.__class__.__name__ != "BatchNormalization" for l in layers)


def test_two_phase_fine_tuning_from_a_weights_file(tmp_path):
    import keras

    from alldag.data import scan_dataset
    from alldag.models import build_classifier
    from alldag.split import make_folds
    from alldag.synthetic import generate_dataset
    from alldag.train import fit

    # a "pretrained" backbone weights file, made offline
    base = keras.applications.MobileNet(include_top=False, weights=None, input_shape=(32, 32, 3))
    base.save_weights(tmp_path / "mobilenet.weights.h5")
    generate_dataset(tmp_path / "ALL", {"Benign": 8, "Pro": 8}, seed=1, size=64)
    data = scan_dataset(tmp_path / "ALL")
    data["y"] = (data["label"] == "Pro").astype(int)
    manifest = make_folds(data, 1, 0.25, 0.25, 0)[0]
    settings = TrainSettings("MobileNet", "t", 0, ("Benign", "Pro"), 32, 3, 8, 1e-3,
                             str(tmp_path / "mobilenet.weights.h5"), 0.1, 0.9, False, 0, head_epochs=1,
                             fine_tune_layers=5, fine_tune_learning_rate=1e-4)
    augmentation = {"rotation_degrees": 0, "brightness": 0, "horizontal_flip": False, "vertical_flip": False,
                    "seed": 0}
    import alldag.train as train_module

    train_module._mlflow_epoch_callback = lambda: keras.callbacks.Callback()  # no tracking store in this test
    model, history = fit(settings, manifest, augmentation)
    assert list(history["epoch"]) == [1, 2, 3]
    assert list(history["phase"]) == ["head", "fine_tune", "fine_tune"]
    assert build_classifier("MobileNet", 2, 32, None).count_params() == model.count_params()


def test_tracking_uri_from_environment_wins_and_relative_sqlite_becomes_absolute(monkeypatch, tmp_path):
    from alldag.train import Tracking

    params = {"uri": "sqlite:///results/mlflow.db", "experiment": "e", "artifact_root": "a",
              "parent_run_file": "p", "tags": {}}
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert Tracking.from_params(params).uri == f"sqlite:///{tmp_path}/results/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert Tracking.from_params(params).uri == "http://127.0.0.1:5999"
