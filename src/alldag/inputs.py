"""tf.data input pipelines: parallel decode, resize, cache, (train-time) shuffle and augmentation, prefetch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def decode_image(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Read an image file as float32 RGB in [0, 255], resized to (image_size, image_size)."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.cast(image, tf.float32)
    same_size = tf.reduce_all(tf.shape(image)[:2] == image_size)
    image = tf.cond(
        same_size,
        lambda: image,  # the dataset's own 224 px: no resampling
        lambda: tf.image.resize(image, (image_size, image_size), antialias=True),
    )
    image.set_shape((image_size, image_size, 3))
    return image


def make_dataset(
    rows: pd.DataFrame, image_size: int, batch_size: int, training: bool = False, augmenter=None, seed: int = 0
) -> tf.data.Dataset:
    """Batches of (image, y) from manifest rows with columns `path` and `y`.

    Training data are shuffled each epoch (seeded) and passed through `augmenter`; evaluation data
    keep the manifest order.
    """
    ds = tf.data.Dataset.from_tensor_slices((rows["path"].to_numpy(str), rows["y"].to_numpy(np.int32)))
    ds = ds.map(lambda p, y: (decode_image(p, image_size), y), num_parallel_calls=AUTOTUNE, deterministic=True).cache()
    if training:
        ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if training and augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def load_images(paths, image_size: int) -> np.ndarray:
    """Decode paths into one float32 array (n, size, size, 3) in [0, 255]."""
    return np.stack([decode_image(tf.constant(p), image_size).numpy() for p in paths])
