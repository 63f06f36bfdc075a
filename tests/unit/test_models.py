"""alldag.models on a tiny MobileNet (32x32, random weights), plus Grad-CAM on it."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from alldag.backbones import REGISTRY, preprocess_fn  # noqa: E402
from alldag.explain import gradient_cam_fn  # noqa: E402
from alldag.models import (  # noqa: E402
    PREPROCESS_LAYER,
    build_classifier,
    last_conv_layer_name,
    load_classifier,
    preprocess_layer,
    recalibrate_batchnorm,
)

SIZE = 32
N_CLASSES = 3


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return build_classifier("MobileNet", N_CLASSES, SIZE, None)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)


def _bn_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_output_shape_and_softmax(model, images):
    assert model.output.shape == (None, N_CLASSES)
    assert model.input.shape == (None, SIZE, SIZE, 3)
    proba = np.asarray(model(images, training=False))
    assert proba.shape == (4, N_CLASSES)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (proba >= 0).all()


def test_model_is_flat_with_preprocess_first(model):
    assert model.layers[1].name == PREPROCESS_LAYER and not model.layers[1].trainable
    assert model.get_layer("predictions").activation is keras.activations.softmax
    assert len(_bn_layers(model)) == 27  # MobileNet: stem + 13 depthwise blocks x 2, not nested


@pytest.mark.parametrize("family", sorted({b.module for b in REGISTRY.values()}))
def test_preprocess_layer_is_the_backbones_own(family):
    name = next(n for n, b in REGISTRY.items() if b.module == family)
    x = np.random.default_rng(1).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    layer = preprocess_layer(name)
    out = x if layer is None else np.asarray(layer(x))
    np.testing.assert_allclose(out, np.asarray(preprocess_fn(name)(x.copy())), rtol=1e-6, atol=1e-5)


def test_saved_model_needs_only_keras_classes(model):
    """No custom layer: the .keras file loads wherever Keras does, without alldag."""
    modules = {type(layer).__module__.split(".")[0] for layer in model.layers}
    assert modules == {"keras"}, modules


def test_last_conv_layer_is_spatial(model):
    name = last_conv_layer_name(model)
    layer = model.get_layer(name)
    assert len(layer.output.shape) == 4
    assert "pool" not in type(layer).__name__.lower()
    # it is the last 4-D layer before global pooling
    names = [layer.name for layer in model.layers]
    assert names.index(name) == names.index("avg_pool") - 1


def test_save_and_load_round_trip(model, images, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_classifier(path)
    assert not loaded.get_layer(PREPROCESS_LAYER).trainable
    np.testing.assert_allclose(
        np.asarray(loaded(images, training=False)), np.asarray(model(images, training=False)), rtol=1e-5, atol=1e-6
    )


def test_recalibrate_batchnorm(images):
    keras.utils.set_random_seed(1)
    model = build_classifier("MobileNet", 2, SIZE, None, bn_momentum=0.9)
    bns = _bn_layers(model)
    assert all(layer.momentum == 0.9 for layer in bns)
    first = bns[0]
    before = [np.array(layer.moving_mean) for layer in bns]
    # the first BN layer's input (conv1 output) has no BN upstream, so its batch mean is exact
    probe = keras.Model(model.input, model.get_layer(first.name).input)
    batches = [(images[:2], np.zeros(2)), (images[2:], np.zeros(2))]
    expected = np.mean([np.asarray(probe(x, training=True)).mean(axis=(0, 1, 2)) for x, _ in batches], axis=0)

    assert recalibrate_batchnorm(model, batches) == (27, 0)
    after = [np.array(layer.moving_mean) for layer in bns]
    assert all(not np.allclose(a, b) for a, b in zip(before, after))
    np.testing.assert_allclose(after[0], expected, rtol=1e-4, atol=1e-4)
    assert all(layer.momentum == 0.9 for layer in bns)  # momenta restored


def test_recalibrate_without_batchnorm_returns_zero():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert recalibrate_batchnorm(model, [(np.zeros((1, 4)), None)]) == (0, 0)


def test_recalibrate_skips_frozen_batchnorm_and_changes_nothing(images):
    from alldag.models import set_backbone_trainable

    keras.utils.set_random_seed(1)
    model = build_classifier("MobileNet", 2, SIZE, None, bn_momentum=0.9)
    set_backbone_trainable(model, 5)  # fine-tuning: BatchNorm frozen
    before = [np.array(layer.moving_mean) for layer in _bn_layers(model)]
    assert recalibrate_batchnorm(model, [(images, np.zeros(len(images)))]) == (0, 27)
    assert all(np.array_equal(b, layer.moving_mean) for b, layer in zip(before, _bn_layers(model)))


def test_gradient_cams_on_a_backbone(model, images):
    cams = gradient_cam_fn(model, last_conv_layer_name(model))
    for class_index in (np.zeros(4, int), np.array([0, 1, 2, 1])):
        maps = cams(images, class_index)
        for heat in maps.values():
            assert heat.shape == (4, SIZE, SIZE) and np.isfinite(heat).all()
            assert heat.min() >= 0.0 and heat.max() <= 1.0 + 1e-6


def test_gradcam_larger_grid():
    keras.utils.set_random_seed(2)
    model = build_classifier("MobileNet", 2, 96, None)
    image = np.random.default_rng(1).uniform(0, 255, (1, 96, 96, 3)).astype(np.float32)
    cams = gradient_cam_fn(model, last_conv_layer_name(model))
    heats = [cams(image, [i])["gradcam"][0] for i in (0, 1)]
    # binary softmax: the two classes' centred logits are opposite, so at least one map has positive
    # evidence on the 3x3 feature grid; it is normalised to peak 1 and is not constant
    best = max(heats, key=lambda h: h.max())
    assert best.max() == pytest.approx(1.0)
    assert best.std() > 0.05


def test_offline_imagenet_weights_fail_with_one_line_naming_the_file(monkeypatch):
    from alldag import AlldagError

    url = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/mobilenet_1_0_224_tf_no_top.h5"

    def offline(*args, **kwargs):
        raise Exception(f"URL fetch failure on {url}: None -- [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
    with pytest.raises(AlldagError) as err:
        build_classifier("MobileNet", 2, 224, "imagenet")
    message = str(err.value)
    assert "\n" not in message and url in message and "~/.keras/models/" in message and "weights: null" in message


def test_a_backbone_weights_file_lands_in_the_flat_model_beside_its_preprocessing(tmp_path):
    keras.utils.set_random_seed(3)
    base = keras.applications.MobileNet(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    base.save_weights(tmp_path / "mobilenet.weights.h5")
    net = build_classifier("MobileNet", 2, SIZE, str(tmp_path / "mobilenet.weights.h5"))
    loaded = [layer for layer in base.layers if layer.weights]
    assert len(loaded) > 20
    for layer in loaded:
        for mine, theirs in zip(net.get_layer(layer.name).get_weights(), layer.get_weights(), strict=True):
            np.testing.assert_array_equal(mine, theirs)
    kernel, bias = net.get_layer(PREPROCESS_LAYER).get_weights()
    np.testing.assert_allclose(kernel, np.eye(3) / 127.5, rtol=1e-6)
    np.testing.assert_allclose(bias, -1.0)


def _conv_kernels(model) -> list[np.ndarray]:
    return [np.array(layer.kernel) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def test_he_normal_kernels_are_redrawn_per_layer_from_the_seed():
    keras.utils.set_random_seed(0)
    glorot = _conv_kernels(build_classifier("VGG16", 2, SIZE, None))
    keras.utils.set_random_seed(0)
    he = _conv_kernels(build_classifier("VGG16", 2, SIZE, None, kernel_initializer="he_normal", seed=5))
    keras.utils.set_random_seed(99)  # the global seed does not matter: each layer has its own
    again = _conv_kernels(build_classifier("VGG16", 2, SIZE, None, kernel_initializer="he_normal", seed=5))
    assert len(he) == 13 and all(np.array_equal(a, b) for a, b in zip(he, again, strict=True))
    assert not np.array_equal(he[1], he[2][..., : he[1].shape[-1]])  # not one draw repeated
    for g, h in zip(glorot, he, strict=True):
        fan_in = np.prod(h.shape[:-1])
        assert h.std() == pytest.approx(np.sqrt(2 / fan_in), rel=0.15)  # He: variance 2 / fan_in
        assert g.std() < h.std()  # glorot_uniform: 2 / (fan_in + fan_out), smaller for these layers


def test_lsuv_scales_every_convolution_to_unit_output_sd_on_the_images(images):
    from alldag.models import unit_variance_kernels

    keras.utils.set_random_seed(0)
    model = build_classifier("VGG16", 2, SIZE, None, kernel_initializer="lsuv", seed=5)
    batch = images  # raw RGB in [0, 255]
    found = unit_variance_kernels(model, batch)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(found) == len(convs) == 13 and found[0] > 5  # caffe-preprocessed pixels: SD ~ 60 before
    for layer in convs:
        relu, layer.activation = layer.activation, keras.activations.linear
        out = keras.Model(model.input, layer.output)(batch, training=False)
        layer.activation = relu
        assert float(keras.ops.std(out)) == pytest.approx(1.0, abs=0.06)
    assert np.isfinite(np.asarray(model(batch, training=False))).all()
