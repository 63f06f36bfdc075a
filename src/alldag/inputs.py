"""tf.data input pipelines: parallel decode, resize, cache, (train-time) shuffle and augmentation, prefetch."""

from __future__ import annotations

import hashlib
from functools import reduce

import numpy as np
import pandas as pd
import tensorflow as tf

from alldag.images import all_at_size, decode_image, decode_uint8

AUTOTUNE = tf.data.AUTOTUNE


def _cached_images(rows: pd.DataFrame, image_size: int) -> tf.data.Dataset:
    """(image, y) pairs, decoded once on every core and cached: uint8 when every file already has the
    training size (a quarter of the memory; cast later, with the same values), else decode_image's float32."""
    read = decode_uint8 if all_at_size(rows["path"], image_size) else decode_image
    ds = tf.data.Dataset.from_tensor_slices((rows["path"].to_numpy(str), rows["y"].to_numpy(np.int32)))
    return ds.map(lambda p, y: (read(p, image_size), y), num_parallel_calls=AUTOTUNE, deterministic=True).cache()


def epoch_seed(seed: int, *parts) -> int:
    """A seed that depends on (seed, *parts) only, e.g. (seed, epoch): what an epoch draws never
    depends on how many epochs this process ran before, so a resumed job draws what an
    uninterrupted one would."""
    digest = hashlib.sha256("/".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2**31 - 16)  # Keras layers add up to +5 to a seed


def make_dataset(
    rows: pd.DataFrame,
    image_size: int,
    batch_size: int,
    training: bool = False,
    augmenter=None,
    seed: int = 0,
    epochs: range | None = None,
    epoch_augmenter=None,
) -> tf.data.Dataset:
    """Batches of (image, y) from manifest rows with columns `path` and `y`; images float32 RGB in [0, 255].

    Evaluation data keep the manifest order. Training data are shuffled and passed through
    `augmenter`: with `epochs` (a range of 0-based epoch numbers), the batches of all those epochs
    one after the other, each epoch shuffled with epoch_seed(seed, epoch) and augmented by
    epoch_augmenter(that seed); fit it with steps_per_epoch = ceil(len(rows) / batch_size).
    Without `epochs`, one epoch per iteration, reshuffled each time from a seed that advances.
    """
    ds = _cached_images(rows, image_size)
    if training and epochs is not None:
        if not epochs:
            raise ValueError(f"make_dataset: no epochs to make ({epochs})")
        return reduce(
            tf.data.Dataset.concatenate,
            [_one_epoch(ds, len(rows), batch_size, epoch_seed(seed, e), epoch_augmenter) for e in epochs],
        ).prefetch(AUTOTUNE)
    if training:
        ds = ds.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    return _augmented(ds, augmenter if training else None, batch_size).prefetch(AUTOTUNE)


def _one_epoch(cached: tf.data.Dataset, n: int, batch_size: int, seed: int, epoch_augmenter) -> tf.data.Dataset:
    ds = cached.shuffle(n, seed=seed, reshuffle_each_iteration=False).batch(batch_size)
    return _augmented(ds, epoch_augmenter(seed) if epoch_augmenter is not None else None, batch_size)


def _augmented(batches: tf.data.Dataset, augmenter, batch_size: int) -> tf.data.Dataset:
    """Float32 batches, augmented: the random draws one batch after the other (what op determinism
    asks of the layers' seed generators), the heavy part on every core, in order."""
    from alldag.augment import apply_augmentation, draw_augmentation

    if augmenter is None:
        return batches.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=AUTOTUNE, deterministic=True)
    drawn = batches.map(lambda x, y: (x, y, draw_augmentation(augmenter, x)))
    return drawn.map(
        lambda x, y, draws: (apply_augmentation(augmenter, x, draws, pad_to=batch_size), y),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
