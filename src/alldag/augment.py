"""Augmentation spec (the study's rotation and brightness, plus optional flips) and its Keras layers."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROTATION_LAYER = "random_rotation"  # reads uint8 images as they are; every other layer wants float32
BRIGHTNESS_LAYER = "random_brightness"
PIXEL_RANGE = (0.0, 255.0)  # what the augmentation layers take and give: raw RGB, as the backbones want it


def augmentation_spec(
    rotation_degrees: float,
    brightness: float,
    horizontal_flip: bool,
    vertical_flip: bool,
    seed: int,
    hue: float = 0.0,
    saturation: float = 0.0,
    contrast: float = 0.0,
) -> dict:
    """The augmentation the trainer applies, as plain data (written to the DAG, logged to MLflow)."""
    return {
        "rotation_degrees": float(rotation_degrees),
        "brightness": float(brightness),
        "horizontal_flip": bool(horizontal_flip),
        "vertical_flip": bool(vertical_flip),
        "hue": float(hue),
        "saturation": float(saturation),
        "contrast": float(contrast),
        "seed": int(seed),
    }


def write_spec(spec: dict, path: str | os.PathLike) -> None:
    Path(path).write_text(json.dumps(spec, indent=2, sort_keys=True))


def read_spec(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())


def _reflect(coord, size):
    """Map sample coordinates into [0, size - 1] by mirroring at the borders (edge pixel repeated).

    Coordinates must lie within one period (2 * size) either side of the image: there the two
    wraps below give exactly tf.math.floormod's values (fmod is exact, and so is c - period by
    Sterbenz' lemma), at a third of its cost.
    """
    import tensorflow as tf

    period = 2.0 * size
    coord = coord + 0.5
    coord = tf.where(coord < 0, coord + period, tf.where(coord >= period, coord - period, coord))
    return tf.where(coord >= size, period - coord, coord) - 0.5


def rotate_bilinear(images, angles):
    """Rotate each image of a batch (B, H, W, C) about its centre by its angle (radians); bilinear,
    borders filled by reflection; float32 out, from float or uint8 images (the same values either way).

    Same result as keras.layers.RandomRotation's transform inside the image, but written as one
    gather that XLA compiles: about 3x faster on CPU, which is where tf.data runs. Sides may differ
    by up to 4x (a rotation about the centre then stays within _reflect's range).
    """
    import tensorflow as tf

    if None not in images.shape[1:3] and max(images.shape[1:3]) > 4 * min(images.shape[1:3]):
        raise ValueError(f"rotate_bilinear: images of {images.shape[1]}x{images.shape[2]} px differ more than 4x")
    shape = tf.shape(images)
    b, h, w = shape[0], shape[1], shape[2]
    hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
    xs, ys = tf.range(wf)[None, None, :], tf.range(hf)[None, :, None]  # broadcast to (B, H, W) below
    cx, cy = (wf - 1) / 2, (hf - 1) / 2
    cos, sin = tf.cos(angles)[:, None, None], tf.sin(angles)[:, None, None]
    sx = tf.clip_by_value(_reflect(cos * (xs - cx) - sin * (ys - cy) + cx, wf), 0.0, wf - 1)
    sy = tf.clip_by_value(_reflect(sin * (xs - cx) + cos * (ys - cy) + cy, hf), 0.0, hf - 1)
    x0, y0 = tf.floor(sx), tf.floor(sy)
    wx, wy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    x1, y1 = tf.minimum(x0 + 1, w - 1), tf.minimum(y0 + 1, h - 1)
    flat = tf.reshape(images, (-1, shape[3]))
    base = (tf.range(b) * h * w)[:, None, None]

    def at(y, x):  # gather first, cast after: uint8 images are read at a quarter of the bytes
        return tf.cast(tf.gather(flat, base + y * w + x), tf.float32)

    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def _rotate_then_brighten(images, angles, rgb_delta):
    """rotate_bilinear, then keras.layers.RandomBrightness's transform (add, clip to PIXEL_RANGE), in one pass."""
    import tensorflow as tf

    return tf.clip_by_value(rotate_bilinear(images, angles) + rgb_delta, *PIXEL_RANGE)


@cache
def _compiled(function):
    """function compiled by XLA, once per process (training builds one augmenter per epoch)."""
    import tensorflow as tf

    return tf.function(function, jit_compile=True)


def _rotation_layer(max_degrees: float, seed: int):
    import math

    import keras
    import tensorflow as tf

    rotate = _compiled(rotate_bilinear)

    class SeededRotation(keras.layers.Layer):
        """Random rotation up to max_degrees either way, seeded; identity at inference."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(seed)

        def get_random_transformation(self, images, training=True):
            limit = math.radians(max_degrees)
            return {"angles": keras.random.uniform((tf.shape(images)[0],), -limit, limit, seed=self.seed_generator)}

        def transform_images(self, images, transformation, training=True):
            return rotate(images, transformation["angles"])

        def call(self, images, training=True):
            if not training:
                return images
            return self.transform_images(images, self.get_random_transformation(images))

    return SeededRotation(name=ROTATION_LAYER)


def build_augmenter(spec: dict):
    """A keras.Sequential applying spec to float RGB batches in [0, 255]; seeded, train-time only.

    Returns None when the spec turns every augmentation off.
    """
    import keras

    seed = spec["seed"]
    layers = []
    flip = {(True, True): "horizontal_and_vertical", (True, False): "horizontal", (False, True): "vertical"}.get(
        (spec["horizontal_flip"], spec["vertical_flip"])
    )
    if flip:
        layers.append(keras.layers.RandomFlip(flip, seed=seed))
    if spec["rotation_degrees"] > 0:
        layers.append(_rotation_layer(spec["rotation_degrees"], seed + 1))
    if spec["brightness"] > 0:
        layers.append(
            keras.layers.RandomBrightness(
                spec["brightness"], value_range=PIXEL_RANGE, seed=seed + 2, name=BRIGHTNESS_LAYER
            )
        )
    # stain jitter: smears differ in hue and saturation from lab to lab and day to day
    if spec.get("hue", 0) > 0:
        layers.append(keras.layers.RandomHue(spec["hue"], value_range=PIXEL_RANGE, seed=seed + 3))
    if spec.get("saturation", 0) > 0:
        s = spec["saturation"] / 2  # RandomSaturation's factor: 0.5 = unchanged
        layers.append(keras.layers.RandomSaturation((0.5 - s, 0.5 + s), value_range=PIXEL_RANGE, seed=seed + 4))
    if spec.get("contrast", 0) > 0:
        layers.append(keras.layers.RandomContrast(spec["contrast"], value_range=PIXEL_RANGE, seed=seed + 5))
    return keras.Sequential(layers, name="augmentation") if layers else None


def draw_augmentation(augmenter, images) -> tuple[dict, ...]:
    """Each layer's random draws for one batch, in the order augmenter(images) would draw them.

    Stateful (the layers' seed generators advance): run batches through it one at a time, in order.
    """
    return tuple(layer.get_random_transformation(images, training=True) for layer in augmenter.layers)


def apply_augmentation(augmenter, images, draws: tuple[dict, ...], *, pad_to: int | None = None):
    """augmenter(images) with the draws of draw_augmentation: float32 out, bit-identical to calling
    the augmenter on the float32 images. Stateless, so batches may run in parallel.

    uint8 images stay uint8 up to the rotation, which casts after it gathers (no float copy first).
    pad_to: the batch size; a smaller (last) batch is rotated padded to it, so XLA compiles one shape.
    """
    import tensorflow as tf

    steps = list(zip(augmenter.layers, draws, strict=True))
    k = 0
    while k < len(steps):
        (layer, draw), k = steps[k], k + 1
        if layer.name != ROTATION_LAYER:
            images = layer.transform_images(tf.cast(images, tf.float32), draw, training=True)
        elif k < len(steps) and steps[k][0].name == BRIGHTNESS_LAYER:
            # one XLA loop over the pixels instead of three passes: about 15 % of the augmentation's time
            images = _padded(_rotate_then_brighten, pad_to, images, draw["angles"], steps[k][1]["rgb_delta"])
            k += 1
        else:
            images = _padded(rotate_bilinear, pad_to, images, draw["angles"])
    return tf.cast(images, tf.float32)


def _padded(function, pad_to: int | None, *batches):
    """_compiled(function)(*batches) on the batches padded with zeros to pad_to images (each image is
    computed alone: the padding changes no value), cut back to the batch's own size."""
    import tensorflow as tf

    if pad_to is None:
        return _compiled(function)(*batches)
    n = tf.shape(batches[0])[0]
    padded = [tf.pad(b, [[0, pad_to - n]] + [[0, 0]] * (len(b.shape) - 1)) for b in batches]
    return _compiled(function)(*padded)[:n]


def augmentation_preview(manifest_rows, spec: dict, image_size: int, out_png, n_images: int = 6) -> None:
    """Figure: n_images training images, each shown raw and after one augmentation draw."""
    import numpy as np

    from alldag.figures import image_grid_figure, save
    from alldag.images import load_images

    rows = manifest_rows.sort_values("image_id").groupby("label").head(max(1, n_images // 2)).head(n_images)
    raw = load_images(rows["path"], image_size)
    augmenter = build_augmenter(spec)
    augmented = np.asarray(augmenter(raw, training=True)) if augmenter is not None else raw
    images = np.concatenate([raw, augmented])
    titles = [f"{lbl}" for lbl in rows["label"]] + [f"{lbl} (augmented)" for lbl in rows["label"]]
    save(image_grid_figure(images, titles, "Training augmentation", ncols=len(rows)), out_png)


@dataclass(frozen=True)
class AugmentSettings:
    """The `augment` config (rotation_degrees, brightness, flips, hue, saturation), the seed of its draws and
    the size the preview shows the training images at (the largest any model trains at). The spec is the
    same for every model of a task: backbone_overrides change `train` settings, not augmentation."""

    augment: dict
    seed: int
    image_size: int

    @classmethod
    def from_params(cls, params) -> AugmentSettings:
        """From the augment rule's params (augment, seed, image_size)."""
        return cls(dict(params.augment), params.seed, params.image_size)


@dataclass(frozen=True)
class AugmentOutputs:
    """The files the augment stage writes (paths)."""

    spec: str  # augmentation.json: what the trainer applies
    preview: str  # augmentation_preview.png


def write_augmentation(*, manifest, settings: AugmentSettings, outputs: AugmentOutputs) -> dict:
    """The `augment` stage: write the spec the trainer applies and a preview of it on the training images of
    the split `manifest`. Returns the spec."""
    from alldag.tables import read_tsv

    spec = augmentation_spec(seed=settings.seed, **settings.augment)
    write_spec(spec, outputs.spec)
    rows = read_tsv(manifest)
    augmentation_preview(rows[rows["split"] == "train"], spec, settings.image_size, outputs.preview)
    return spec
