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


STAIN_VIEWS = (
    slice(0, 6),
    slice(6, 15),
)  # two views of stain_statistics: (background, darkest quarter), (background, two colours)


def stain_statistics(image: np.ndarray, pixels_used: int = 4000) -> np.ndarray:
    """12 statistics of a field's stain that its content moves little, in two views (STAIN_VIEWS): the median
    RGB of its brightest 30 % of pixels (the background) with that of its darkest 25 % (fields where one kind of
    stained cell dominates); and the background with the two colours of its darker 40 % (red cells and
    leukocytes: the centres of a 2-means split of a fixed subsample, ordered by blue minus red; fields where both
    kinds are many and their proportion varies)."""
    pixels = image.reshape(-1, 3).astype(np.float32)
    grey = pixels.mean(axis=1)
    dark, bright = np.percentile(grey, [40, 70])
    stained = pixels[grey <= dark][:: max(1, int(np.sum(grey <= dark)) // pixels_used)]
    centres = np.stack([np.percentile(stained, 25, axis=0), np.percentile(stained, 75, axis=0)])
    for _ in range(10):  # Lloyd's iterations from two spread starts: deterministic and cheap
        nearest = np.argmin(((stained[:, None, :] - centres[None]) ** 2).sum(axis=-1), axis=1)
        centres = np.stack([stained[nearest == k].mean(axis=0) if (nearest == k).any() else centres[k] for k in (0, 1)])
    centres = centres[np.argsort(centres[:, 2] - centres[:, 0])]
    background = np.median(pixels[grey >= bright], axis=0)
    darkest = np.median(pixels[grey <= np.percentile(grey, 25)], axis=0)
    return np.concatenate([background, darkest, background, centres.ravel()])


def stain_statistics_of_file(path) -> np.ndarray:
    """stain_statistics of one image file."""
    with Image.open(path) as img:
        return stain_statistics(np.asarray(img.convert("RGB")))
