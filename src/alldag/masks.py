"""Leukocyte masks that hold on real smears: the cleaned ``Segmented/`` twin, or a calibrated colour model.

A real ``Segmented/`` image is the leukocytes on black, with JPEG speckle and faint red-cell outlines
that a plain threshold keeps, and for many images the segmentation failed: nearly empty (793 of 804 real
Pro-B twins) or half-failed (fragments of one blast). ``mask_from_segmented`` cleans the twin (threshold chosen
from the image, morphological opening, components smaller than the smallest leukocyte removed, holes filled).
Where the twin is missing, nearly empty or half-failed (``twin_state``), ``colour_mask`` finds the leukocytes
with a per-pixel colour model (``ColourModel``: logistic regression on CIELAB) calibrated on the dataset's own
good twins (``calibrate_colour_model``, which also measures it on good twins it did not see). The haematoxylin
channel used before marked the pale grey-blue red cells of the real images and missed the light-magenta Pro-B
blasts. Every mask carries its source: ``segmented``, ``stain`` (the colour model) or ``none`` (no usable mask:
plausibility is not measured). The audit writes every final mask as a PNG (``final_mask_record``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

if TYPE_CHECKING:
    import pandas as pd

SOURCES = ("segmented", "stain", "none")  # stain: the calibrated colour model's mask (colour_mask)
TWIN_STATES = ("good", "half", "empty", "missing")
MIN_FRACTION = 0.02  # default share of the field below which a mask is nearly empty (config audit.mask_min_fraction)
MAX_STAIN_FRACTION = 0.6  # a stain mask larger than this is a failed deconvolution, not leukocytes
SEGMENTED_FLOOR = 24  # the lowest threshold for a Segmented/ pixel's max channel (JPEG noise lies below)
OPENING_RADIUS = 2  # px at 224 px: removes speckle and 1-2 px red-cell outlines
MIN_COMPONENT_FRACTION = 0.0025  # share of the field (125 px at 224 px): the smallest leukocyte (radius 7 px) stays
CYTOPLASM_REACH = 0.6  # how far cytoplasm may lie from a stained nucleus, as a share of its equivalent radius
CYTOPLASM_BLUENESS = 20  # B - R above the field's median (the plasma) that counts as cytoplasm
REFERENCE_SIZE = 224


@dataclass(frozen=True)
class LeukocyteMask:
    """A leukocyte mask (bool (H, W), None when there is no usable one), where it came from, and the share
    of the field the cleaned Segmented/ twin covers (NaN without a twin)."""

    mask: np.ndarray | None
    source: str
    twin_fraction: float = float("nan")


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return yy * yy + xx * xx <= radius * radius


def _otsu(values: np.ndarray) -> float:
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(values)) if np.ptp(values) > 0 else float(values.max())


def clean_binary(binary: np.ndarray) -> np.ndarray:
    """Opening (radius scaled to the image side), components smaller than a red-cell fragment removed, holes filled."""
    side = binary.shape[0]
    radius = max(1, round(OPENING_RADIUS * side / REFERENCE_SIZE))
    opened = ndimage.binary_opening(binary, structure=_disk(radius))
    labels, n = ndimage.label(opened)
    if n == 0:
        return opened
    sizes = np.bincount(labels.ravel())
    keep = sizes >= MIN_COMPONENT_FRACTION * binary.size
    keep[0] = False
    return ndimage.binary_fill_holes(keep[labels])


def mask_from_segmented(segmented: np.ndarray) -> np.ndarray:
    """Cleaned leukocyte mask (bool (H, W)) of a Segmented/ image (uint8 RGB, leukocytes on black).

    The threshold on the max channel is Otsu's over the whole field (black vs not black), never below
    SEGMENTED_FLOOR; then clean_binary.
    """
    value = ndimage.gaussian_filter(segmented.max(axis=-1).astype(np.float32), 1.0)
    threshold = max(_otsu(value), SEGMENTED_FLOOR)
    return clean_binary(value > threshold)


@dataclass(frozen=True)
class ColourModel:
    """A per-pixel leukocyte model: logistic regression on a pixel's CIELAB colour (L/100, a/50, b/50, after a
    slight blur). `fitted_on`: how many images' good twins calibrated it (0 = DEFAULT_COLOUR_MODEL)."""

    coef: tuple[float, float, float]
    intercept: float
    fitted_on: int = 0

    def probability(self, image: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """P(leukocyte) per pixel (float (H, W)) of a uint8 RGB image (features: its pixel_features, if known)."""
        features = pixel_features(image) if features is None else features
        logit = features @ np.asarray(self.coef, np.float32) + self.intercept
        return (1.0 / (1.0 + np.exp(-logit))).reshape(image.shape[:2])


# Used where no dataset twin is good enough to calibrate on: fitted on pixels of the measured colours
# (REAL-SMEARS.md) as the generator paints them, leukocytes of Benign, Early and Pre only (bench/bench_masks.py).
DEFAULT_COLOUR_MODEL = ColourModel((13.8, 57.3, 4.6), -19.7)
CALIBRATION_PIXELS = 1000  # pixels drawn per calibration image (3 features: plenty)
CALIBRATION_IMAGES = 300  # good twins used at most to calibrate
HALF_FAILED_COVER = 0.5  # a twin covering less than this share of the colour mask is half-failed


def pixel_features(image: np.ndarray) -> np.ndarray:
    """(H*W, 3) float32 features of every pixel: CIELAB of the slightly blurred image, scaled to about unit range."""
    from skimage.color import rgb2lab

    sigma = max(0.5, image.shape[0] / REFERENCE_SIZE)
    lab = rgb2lab(ndimage.gaussian_filter(image.astype(np.float32) / 255.0, (sigma, sigma, 0)))
    return (lab.reshape(-1, 3) / np.array([100.0, 50.0, 50.0])).astype(np.float32)


def _pixel_sample(features: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """CALIBRATION_PIXELS seeded rows of an image's pixel features and the mask's labels there."""
    pick = rng.choice(mask.size, min(CALIBRATION_PIXELS, mask.size), replace=False)
    return features[pick], mask.ravel()[pick]


def _fit_samples(samples: list[tuple[np.ndarray, np.ndarray]]) -> ColourModel:
    """A ColourModel fitted on (features, labels) samples; DEFAULT_COLOUR_MODEL without both kinds of pixel."""
    from sklearn.linear_model import LogisticRegression

    if not samples or len(np.unique(np.concatenate([y for _, y in samples]))) < 2:
        return DEFAULT_COLOUR_MODEL
    fit = LogisticRegression(C=10.0, max_iter=500).fit(
        np.concatenate([x for x, _ in samples]), np.concatenate([y for _, y in samples])
    )
    return ColourModel(tuple(float(c) for c in fit.coef_[0]), float(fit.intercept_[0]), len(samples))


def fit_colour_model(images: list[np.ndarray], masks: list[np.ndarray], seed: int = 0) -> ColourModel:
    """Calibrate a ColourModel on images (uint8 RGB) and their good leukocyte masks (bool): CALIBRATION_PIXELS
    seeded pixels of each; DEFAULT_COLOUR_MODEL when there is none, or one class of pixel only."""
    rng = np.random.default_rng(seed)
    return _fit_samples([_pixel_sample(pixel_features(i), m, rng) for i, m in zip(images, masks)])


def colour_mask(
    image: np.ndarray, model: ColourModel = DEFAULT_COLOUR_MODEL, features: np.ndarray | None = None
) -> np.ndarray:
    """Leukocyte mask (bool (H, W)) of an original smear image (uint8 RGB) from a calibrated pixel colour model:
    P(leukocyte) > 0.5, cleaned (clean_binary); features: its pixel_features when already computed. No label and
    no class-specific threshold is used."""
    return clean_binary(model.probability(image, features) > 0.5)


def twin_state(twin: np.ndarray | None, colour: np.ndarray, min_fraction: float) -> str:
    """'good', 'half' (covers under HALF_FAILED_COVER of what the colour model finds: fragments of a failed
    segmentation), 'empty' (under min_fraction of the field) or 'missing', for a cleaned twin mask (or None)."""
    if twin is None:
        return "missing"
    if twin.mean() < min_fraction:
        return "empty"
    found = colour.sum()
    return "half" if found and (twin & colour).sum() < HALF_FAILED_COVER * found else "good"


def leukocyte_mask(
    image: np.ndarray,
    segmented: np.ndarray | None,
    min_fraction: float = MIN_FRACTION,
    model: ColourModel = DEFAULT_COLOUR_MODEL,
) -> LeukocyteMask:
    """The leukocyte mask of one field and its source.

    image: the original (uint8 RGB); segmented: its Segmented/ twin (same size) or None. The cleaned twin
    when it is good (twin_state); else the colour model's mask ('stain') when it finds leukocytes covering at
    most MAX_STAIN_FRACTION of the field; else none ('none', mask None).
    """
    colour = colour_mask(image, model)
    cleaned = mask_from_segmented(segmented) if segmented is not None else None
    twin_fraction = float(cleaned.mean()) if cleaned is not None else float("nan")
    if twin_state(cleaned, colour, min_fraction) == "good":
        return LeukocyteMask(cleaned, "segmented", twin_fraction)
    if colour.any() and colour.mean() <= MAX_STAIN_FRACTION:
        return LeukocyteMask(colour, "stain", twin_fraction)
    return LeukocyteMask(None, "none", twin_fraction)


def read_rgb(path: str | os.PathLike | None) -> np.ndarray | None:
    """An image file as uint8 RGB; None when the path is empty or the file cannot be read."""
    if not path or not Path(path).is_file():
        return None
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def load_leukocyte_mask(
    image_path, mask_path, size: int | None = None, min_fraction: float = MIN_FRACTION
) -> LeukocyteMask:
    """leukocyte_mask of an image file and its Segmented/ twin ('' or a missing file: no twin) with the default
    colour model, at the files' resolution and resized to (size, size) (nearest) when size is given. For
    manifests made before the audit wrote mask files (mask_file)."""
    image = read_rgb(image_path)
    if image is None:
        return LeukocyteMask(None, "none")
    found = leukocyte_mask(image, _resized_twin(image, mask_path), min_fraction)
    if found.mask is None or size is None or found.mask.shape == (size, size):
        return found
    resized = Image.fromarray(found.mask).resize((size, size), Image.NEAREST)
    return LeukocyteMask(np.asarray(resized), found.source, found.twin_fraction)


def twin_fraction(twin_path) -> float:
    """The share of the field the cleaned Segmented/ twin covers; NaN without a readable twin."""
    twin = read_rgb(twin_path)
    return float(mask_from_segmented(twin).mean()) if twin is not None else float("nan")


def _resized_twin(image: np.ndarray, twin_path) -> np.ndarray | None:
    """The Segmented/ twin (uint8 RGB) at the image's size; None without a readable one."""
    twin = read_rgb(twin_path)
    if twin is not None and twin.shape != image.shape:
        twin = np.asarray(Image.fromarray(twin).resize(image.shape[1::-1], Image.NEAREST))
    return twin


def mask_overlap(found: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """IoU, pixel precision and pixel recall of a mask against a reference mask (both bool)."""
    both = float((found & truth).sum())
    return {
        "iou": both / max(float((found | truth).sum()), 1.0),
        "precision": both / max(float(found.sum()), 1.0),
        "recall": both / max(float(truth.sum()), 1.0),
    }


def calibrate_colour_model(images: pd.DataFrame, min_fraction: float, seed: int = 0) -> tuple[ColourModel, dict]:
    """Calibrate the fallback ColourModel on the dataset's own good twins, and measure it on good twins it did
    not see (two halves, each model scored on the other half).

    images: the audit's table (path, mask_path, mask_fraction). Returns (the model fitted on every calibration
    image, {"calibration_images", "held_out_images", and the held-out medians of "iou", "precision", "recall"}).
    Twins that look half-failed against a first fit are left out.
    """
    candidates = images[images["mask_fraction"].astype(float) >= min_fraction]
    candidates = candidates.sample(min(len(candidates), CALIBRATION_IMAGES), random_state=seed)
    rng = np.random.default_rng(seed)
    found = []  # (image, twin mask, pixel features, pixel sample) of every calibration image
    for path, twin_path in zip(candidates["path"], candidates["mask_path"]):
        image = read_rgb(path)
        twin = _resized_twin(image, twin_path) if image is not None else None
        if twin is not None:
            truth, features = mask_from_segmented(twin), pixel_features(image)
            found.append((image, truth, features, _pixel_sample(features, truth, rng)))
    first = _fit_samples([f[3] for f in found])
    found = [f for f in found if twin_state(f[1], colour_mask(f[0], first, f[2]), min_fraction) == "good"]
    model = _fit_samples([f[3] for f in found])
    quality = {"calibration_images": model.fitted_on, "held_out_images": 0}
    halves = (found[::2], found[1::2])
    if all(len(h) >= 2 for h in halves):
        scores = [
            mask_overlap(colour_mask(image, half_model, features), truth)
            for train, test in (halves, halves[::-1])
            for half_model in (_fit_samples([f[3] for f in train]),)
            for image, truth, features, _ in test
        ]
        quality["held_out_images"] = len(scores)
        quality.update({k: float(np.median([s[k] for s in scores])) for k in ("iou", "precision", "recall")})
    return model, quality


def final_mask_record(row: dict, model: ColourModel, min_fraction: float, masks_dir) -> dict:
    """One image's final leukocyte mask (row: path, image_id, mask_path), written as masks_dir/<image_id>.png, and
    its columns: mask_source, twin_state, leukocyte_fraction (share of the field), mask_pieces (connected
    components) and mask_file ('' for none)."""
    record = {"mask_source": "none", "twin_state": "missing", "leukocyte_fraction": float("nan"), "mask_pieces": 0}
    image = read_rgb(row["path"])
    if image is None:
        return {**record, "mask_file": ""}
    twin_path = row.get("mask_path")
    twin = _resized_twin(image, twin_path) if isinstance(twin_path, str) and twin_path else None
    cleaned = mask_from_segmented(twin) if twin is not None else None
    found = leukocyte_mask(image, twin, min_fraction, model)
    record.update(mask_source=found.source, twin_state=twin_state(cleaned, colour_mask(image, model), min_fraction))
    if found.mask is None:
        return {**record, "mask_file": ""}
    path = (Path(masks_dir) / row["image_id"]).with_suffix(".png")
    write_mask_file(found.mask, path)
    pieces = int(ndimage.label(found.mask)[1])
    return {**record, "leukocyte_fraction": float(found.mask.mean()), "mask_pieces": pieces, "mask_file": str(path)}


def mask_quality(images: pd.DataFrame) -> pd.DataFrame:
    """Per class and mask source: images, median share of the field, median pieces (the report's mask table)."""
    return (
        images.groupby(["label", "mask_source"])
        .agg(
            images=("image_id", "size"),
            median_share=("leukocyte_fraction", "median"),
            median_pieces=("mask_pieces", "median"),
        )
        .reset_index()
    )


def flag_empty_masks(images: pd.DataFrame, min_fraction: float) -> pd.DataFrame:
    """Add mask_empty: the cleaned Segmented/ twin covers less than min_fraction (or there is none)."""
    return images.assign(mask_empty=~(images["mask_fraction"].astype(float) >= min_fraction))


def mask_counts(images: pd.DataFrame, min_fraction: float) -> dict:
    """The audit summary's mask counts of a flagged image table (flag_empty_masks): images without a twin,
    with a nearly empty twin, and per mask source."""
    return {
        "masks_missing": int(images["mask_fraction"].isna().sum()),
        "masks_nearly_empty": int((images["mask_empty"] & images["mask_fraction"].notna()).sum()),
        "mask_min_fraction": min_fraction,
        "mask_sources": {s: int((images["mask_source"] == s).sum()) for s in SOURCES},
        "twin_states": {s: int((images["twin_state"] == s).sum()) for s in TWIN_STATES},
    }


def write_mask_file(mask: np.ndarray, path: str | os.PathLike) -> None:
    """Write a binary mask (bool (H, W)) as a single-channel PNG (0 off, 255 on), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(tmp, format="PNG")
    tmp.replace(path)


def read_mask_file(path: str | os.PathLike | None, size: int | None = None) -> np.ndarray | None:
    """The binary mask (bool (H, W)) the audit wrote (write_mask_file), resized to (size, size) (nearest) when
    size is given; None when path is empty or missing (no usable mask)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path) or not Path(path).is_file():
        return None
    with Image.open(path) as img:
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.NEAREST)
        return np.asarray(img.convert("L")) > 127
