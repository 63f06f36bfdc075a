"""Backbones beyond the study's four, by name alone: each builds, preprocesses as its family does, has a
Grad-CAM layer and survives a .keras round trip (full-size Keras models: seconds to tens of seconds each)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from alldag.backbones import get_backbone  # noqa: E402
from alldag.models import PREPROCESS_LAYER, build_classifier, last_conv_layer_name, load_classifier  # noqa: E402

SIZE = 32


@pytest.mark.parametrize("name", ["MobileNetV2", "EfficientNetB0", "ResNet50", "DenseNet121", "ConvNeXtTiny"])
def test_other_keras_applications_work_by_name_alone(name, tmp_path):
    """Config alone adds a backbone: its own preprocessing, a Grad-CAM layer, and a .keras round trip."""
    keras.utils.set_random_seed(0)
    net = build_classifier(name, 2, SIZE, None)
    x = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    family = importlib.import_module(f"keras.applications.{get_backbone(name).module}")
    preprocess = net.get_layer(PREPROCESS_LAYER) if PREPROCESS_LAYER in [layer.name for layer in net.layers] else None
    preprocessed = x if preprocess is None else np.asarray(preprocess(x))
    np.testing.assert_allclose(preprocessed, np.asarray(family.preprocess_input(x.copy())), rtol=1e-6, atol=1e-5)
    assert len(net.get_layer(last_conv_layer_name(net)).output.shape) == 4
    net.save(tmp_path / "m.keras")
    np.testing.assert_allclose(
        load_classifier(tmp_path / "m.keras").predict(x, verbose=0), net.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
