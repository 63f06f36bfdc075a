"""15 global colour statistics of a smear image: what the colour baseline classifies on and what the appearance
grouping clusters on (light: numpy and Pillow only)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from alldag.progress import parallel_map

PERCENTILES = (5, 50, 95)
FEATURE_NAMES = [f"{ch}_{stat}" for ch in "RGB" for stat in ("mean", "std", *(f"p{p}" for p in PERCENTILES))]


def colour_features(image: np.ndarray) -> np.ndarray:
    """15 global colour statistics of an RGB image: per channel mean, std and 5/50/95th percentiles."""
    pixels = image.reshape(-1, 3).astype(np.float64)
    stats = [pixels.mean(axis=0), pixels.std(axis=0), *np.percentile(pixels, PERCENTILES, axis=0)]
    return np.stack(stats, axis=1).ravel()  # channel-major: R stats, G stats, B stats


def colour_features_of_file(path) -> np.ndarray:
    """colour_features of one image file."""
    with Image.open(path) as img:
        return colour_features(np.asarray(img.convert("RGB")))


def features_of(paths, threads: int = 1, label: str = "colour features") -> np.ndarray:
    """Colour features (n, 15) of image files, read on `threads` threads (progress logged as `label`)."""
    return np.stack(parallel_map(colour_features_of_file, paths, threads=threads, label=label, unit="image"))
