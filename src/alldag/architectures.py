"""Architectures outside keras.applications, for rules that train a new model (config custom_models).

A builder takes (n_classes, image_size, settings) and returns an uncompiled Keras model that reads
raw RGB in [0, 255] (so evaluation and explanation need no model-specific preprocessing) and ends
in a float32 softmax. Rules name a builder as "module:function" or "path/to/file.py:function".
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from alldag import AlldagError


def small_cnn(n_classes: int, image_size: int, settings=None):
    """A four-block from-scratch CNN (about 100k weights): conv-BN-ReLU pairs, max pooling, GAP, dropout, softmax."""
    import keras

    momentum = getattr(settings, "bn_momentum", None) or 0.9  # short runs: 0.99 lags behind the weights
    dropout = getattr(settings, "dropout", 0.3)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inputs)
    for i, filters in enumerate((16, 32, 64, 128)):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = keras.layers.BatchNormalization(momentum=momentum, name=f"bn{i + 1}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i + 1}")(x)
        if i < 3:
            x = keras.layers.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="predictions", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="SmallCNN")


def load_builder(spec: str):
    """The builder function named by "module:function" or "path/to/file.py:function"."""
    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise AlldagError(f"architecture '{spec}' must look like 'module:function' or 'file.py:function'")
    try:
        if where.endswith(".py"):
            module_spec = importlib.util.spec_from_file_location(Path(where).stem, where)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
        return getattr(module, name)
    except (ImportError, FileNotFoundError, AttributeError) as exc:
        raise AlldagError(
            f"architecture '{spec}' could not be loaded ({exc}): check the module path and function name"
        ) from None
