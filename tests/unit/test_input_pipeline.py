"""alldag.inputs and the augmentation's fast path: the same pixels, bit for bit, as the plain Keras path.

small_manifest: 16 images of 64 px; batches of 6 leave a last batch of 4."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

STUDY = {"rotation_degrees": 20, "brightness": 0.2, "horizontal_flip": False, "vertical_flip": False}
SIZE, RESIZED = 64, 48  # the files' own size (uint8 cache), and a resized one (float32 cache)
BATCH = 6
EVERY_LAYER = {**STUDY, "horizontal_flip": True, "vertical_flip": True, "hue": 0.05, "saturation": 0.3, "contrast": 0.2}


def _rotate_as_before(images, angles):
    """rotate_bilinear as it was before the uint8 input and the cheaper reflection (commit 49542d0)."""
    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    ys, xs = tf.meshgrid(tf.range(hf), tf.range(wf), indexing="ij")
    cx, cy = (wf - 1) / 2, (hf - 1) / 2
    cos, sin = tf.cos(angles)[:, None, None], tf.sin(angles)[:, None, None]

    def reflect(coord, size):
        coord = tf.math.floormod(coord + 0.5, 2.0 * size)
        return tf.where(coord >= size, 2.0 * size - coord, coord) - 0.5

    sx = tf.clip_by_value(reflect(cos * (xs - cx) - sin * (ys - cy) + cx, wf), 0.0, wf - 1)
    sy = tf.clip_by_value(reflect(sin * (xs - cx) + cos * (ys - cy) + cy, hf), 0.0, hf - 1)
    x0, y0 = tf.floor(sx), tf.floor(sy)
    wx, wy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1, y1 = tf.minimum(x0 + 1, w - 1), tf.minimum(y0 + 1, h - 1)
    flat = tf.reshape(images, (-1, shape[3]))
    base = (tf.range(b) * h * w)[:, None, None]

    def at(y, x):
        return tf.gather(flat, base + y * w + x)

    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


@pytest.mark.parametrize("shape", [(4, 40, 30, 3), (3, 33, 33, 3), (2, 20, 75, 3)])
def test_rotation_gives_exactly_the_floormod_formulation_from_uint8_or_float(shape):
    from alldag.augment import rotate_bilinear

    pixels = tf.random.stateless_uniform(shape, seed=(3, shape[1]), minval=0, maxval=256, dtype=tf.int32)
    # a quarter turn of 20x75 px samples beyond one period: both wraps of the reflection are exercised
    angles = tf.constant([math.pi / 2, -0.35, math.pi, 1.2][: shape[0]])
    expected = tf.function(_rotate_as_before, jit_compile=True)(tf.cast(pixels, tf.float32), angles).numpy()
    rotate = tf.function(rotate_bilinear, jit_compile=True)
    np.testing.assert_array_equal(rotate(tf.cast(pixels, tf.float32), angles).numpy(), expected)
    np.testing.assert_array_equal(rotate(tf.cast(pixels, tf.uint8), angles).numpy(), expected)


def test_rotation_refuses_images_too_narrow_for_its_reflection():
    from alldag.augment import rotate_bilinear

    with pytest.raises(ValueError, match="differ more than 4x"):
        rotate_bilinear(tf.zeros((1, 10, 50, 3)), tf.zeros((1,)))


def _decoded(manifest, image_size: int):
    """decode_image over the manifest, cached: the float32 images the pipeline has always started from."""
    from alldag.images import decode_image

    pairs = tf.data.Dataset.from_tensor_slices((manifest["path"].to_numpy(str), manifest["y"].to_numpy(np.int32)))
    return pairs.map(lambda p, y: (decode_image(p, image_size), y)).cache()


def _keras_path(manifest, image_size: int, seed: int, epochs: range, spec: dict):
    """The pipeline's meaning spelled plainly: float32 decode, shuffle, batch, each batch through the
    Keras augmenter one after the other (the layers' own call, as op determinism runs it)."""
    from alldag.augment import augmentation_spec, build_augmenter
    from alldag.inputs import epoch_seed

    batches = []
    for epoch in epochs:
        s = epoch_seed(seed, epoch)
        augmenter = build_augmenter(augmentation_spec(**spec, seed=s))
        ds = _decoded(manifest, image_size).shuffle(len(manifest), seed=s, reshuffle_each_iteration=False)
        batches += [(augmenter(x, training=True).numpy(), y.numpy()) for x, y in ds.batch(BATCH)]
    return batches


@pytest.mark.parametrize("image_size", [SIZE, RESIZED])
@pytest.mark.parametrize("spec", [STUDY, EVERY_LAYER], ids=["study", "every_layer"])
def test_training_batches_are_bit_identical_to_the_keras_layers_path(small_manifest, image_size, spec):
    from alldag.augment import augmentation_spec, build_augmenter
    from alldag.inputs import make_dataset

    ds = make_dataset(
        small_manifest,
        image_size,
        BATCH,
        training=True,
        seed=7,
        epochs=range(1, 3),
        epoch_augmenter=lambda s: build_augmenter(augmentation_spec(**spec, seed=s)),
    )
    got = [(x.numpy(), y.numpy()) for x, y in ds]
    expected = _keras_path(small_manifest, image_size, seed=7, epochs=range(1, 3), spec=spec)
    assert [x.shape[0] for x, _ in got] == [6, 6, 4] * 2
    for (x, y), (want_x, want_y) in zip(got, expected, strict=True):
        assert x.dtype == np.float32
        np.testing.assert_array_equal(y, want_y)
        np.testing.assert_array_equal(x, want_x)


def test_reshuffling_batches_without_epochs_are_the_keras_layers_path_too(small_manifest):
    """make_dataset(training=True, augmenter=...) as the benches use it: each pass reshuffles, the draws go on."""
    from alldag.augment import augmentation_spec, build_augmenter
    from alldag.inputs import make_dataset

    spec = augmentation_spec(**STUDY, seed=0)
    ds = make_dataset(small_manifest, SIZE, BATCH, training=True, augmenter=build_augmenter(spec), seed=0)
    augmenter = build_augmenter(spec)
    plain = _decoded(small_manifest, SIZE).shuffle(len(small_manifest), seed=0, reshuffle_each_iteration=True)
    plain = plain.batch(BATCH).map(lambda x, y: (augmenter(x, training=True), y))
    for _ in range(2):
        for (x, y), (want_x, want_y) in zip(ds, plain, strict=True):
            np.testing.assert_array_equal(y.numpy(), want_y.numpy())
            np.testing.assert_array_equal(x.numpy(), want_x.numpy())


def test_evaluation_batches_are_the_decoded_images_in_manifest_order(small_manifest):
    from alldag.inputs import make_dataset

    for image_size in (SIZE, RESIZED):
        got = [(x.numpy(), y.numpy()) for x, y in make_dataset(small_manifest, image_size, BATCH)]
        expected = [(x.numpy(), y.numpy()) for x, y in _decoded(small_manifest, image_size).batch(BATCH)]
        for (x, y), (want_x, want_y) in zip(got, expected, strict=True):
            assert x.dtype == np.float32
            np.testing.assert_array_equal(y, want_y)
            np.testing.assert_array_equal(x, want_x)
