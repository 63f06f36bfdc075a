"""Leukocyte masks that hold on real smears: the cleaned ``Segmented/`` twin, or the nuclear stain.

A real ``Segmented/`` image is the leukocytes on black, with JPEG speckle and faint red-cell outlines
that a plain threshold keeps, and for many (mostly Pro-B) images the segmentation failed and left a
nearly empty field. ``mask_from_segmented`` cleans the twin (threshold chosen from the image,
morphological opening, components smaller than a red-cell fragment removed, holes filled); where the
result is nearly empty or there is no twin, ``stain_mask`` derives the mask from the original image by
colour deconvolution (haematoxylin, the nuclear stain; cytoplasm added by dilation). Every mask carries
its source: ``segmented``, ``stain`` or ``none`` (no usable mask: plausibility is not measured). The audit
records each image's mask columns (``leukocyte_mask_record``) and flags nearly empty twins (``flag_empty_masks``).
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

SOURCES = ("segmented", "stain", "none")
MIN_FRACTION = 0.02  # default share of the field below which a mask is nearly empty (config audit.mask_min_fraction)
MAX_STAIN_FRACTION = 0.6  # a stain mask larger than this is a failed deconvolution, not leukocytes
SEGMENTED_FLOOR = 24  # the lowest threshold for a Segmented/ pixel's max channel (JPEG noise lies below)
OPENING_RADIUS = 2  # px at 224 px: removes speckle and 1-2 px red-cell outlines
MIN_COMPONENT_FRACTION = 0.005  # share of the field (250 px at 224 px): about a third of a red cell
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


def stain_mask(image: np.ndarray) -> np.ndarray:
    """Leukocyte mask (bool (H, W)) of an original smear image (uint8 RGB) from its nuclear stain.

    Haematoxylin by colour deconvolution (scikit-image rgb2hed), thresholded by Otsu and cleaned
    (clean_binary): the nuclei. The cytoplasm is what lies within CYTOPLASM_REACH of a nucleus's
    equivalent radius and is bluer than the field's median (the plasma; red cells are redder still).
    """
    from skimage.color import rgb2hed

    haematoxylin = ndimage.gaussian_filter(rgb2hed(image)[..., 0], 1.0)
    nuclei = clean_binary(haematoxylin > _otsu(haematoxylin))
    blueness = image[..., 2].astype(np.int16) - image[..., 0]
    bluish = ndimage.binary_opening(blueness > np.median(blueness) + CYTOPLASM_BLUENESS)
    labels, n = ndimage.label(nuclei)
    if n == 0:
        return nuclei
    # each pixel's distance to its nearest nucleus, against that nucleus's reach
    distance, (iy, ix) = ndimage.distance_transform_edt(~nuclei, return_indices=True)
    reach = CYTOPLASM_REACH * np.sqrt(np.bincount(labels.ravel()) / np.pi)
    out = nuclei | (bluish & (distance <= reach[labels[iy, ix]]))
    return ndimage.binary_fill_holes(ndimage.binary_opening(out, structure=_disk(1)))


def leukocyte_mask(
    image: np.ndarray, segmented: np.ndarray | None, min_fraction: float = MIN_FRACTION
) -> LeukocyteMask:
    """The leukocyte mask of one field and its source.

    image: the original (uint8 RGB); segmented: its Segmented/ twin (same size) or None. The cleaned
    twin when it covers at least min_fraction of the field ('segmented'); else the stain mask when it
    covers between min_fraction and MAX_STAIN_FRACTION ('stain'); else none ('none', mask None).
    """
    twin_fraction = float("nan")
    if segmented is not None:
        cleaned = mask_from_segmented(segmented)
        twin_fraction = float(cleaned.mean())
        if twin_fraction >= min_fraction:
            return LeukocyteMask(cleaned, "segmented", twin_fraction)
    stained = stain_mask(image)
    if min_fraction <= stained.mean() <= MAX_STAIN_FRACTION:
        return LeukocyteMask(stained, "stain", twin_fraction)
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
    image_path, mask_path, size: int | None = None, min_fraction: float = MIN_FRACTION, source: str | None = None
) -> LeukocyteMask:
    """leukocyte_mask of an image file and its Segmented/ twin ('' or a missing file: no twin), computed
    at the files' resolution and resized to (size, size) (nearest) when size is given.

    source: the source the audit recorded ('segmented', 'stain', 'none'), to rebuild that mask without
    deciding again; None decides with min_fraction.
    """
    image, segmented = read_rgb(image_path), read_rgb(mask_path)
    if image is None or source == "none":
        return LeukocyteMask(None, "none")
    if segmented is not None and segmented.shape != image.shape:
        segmented = np.asarray(Image.fromarray(segmented).resize(image.shape[1::-1], Image.NEAREST))
    if source == "segmented" and segmented is not None:
        found = LeukocyteMask(mask_from_segmented(segmented), "segmented")
    elif source == "stain":
        found = LeukocyteMask(stain_mask(image), "stain")
    else:
        found = leukocyte_mask(image, segmented, min_fraction)
    if found.mask is None or size is None or found.mask.shape == (size, size):
        return found
    resized = Image.fromarray(found.mask).resize((size, size), Image.NEAREST)
    return LeukocyteMask(np.asarray(resized), found.source, found.twin_fraction)


def leukocyte_mask_record(image_path, twin_path, min_fraction: float) -> dict:
    """One image's mask columns: mask_fraction (share of the cleaned Segmented/ twin; NaN without one),
    mask_source (one of SOURCES) and leukocyte_fraction (share of the mask
    used; NaN for none)."""
    image, twin = read_rgb(image_path), read_rgb(twin_path)
    if image is None:
        return {"mask_fraction": float("nan"), "mask_source": "none", "leukocyte_fraction": float("nan")}
    found = leukocyte_mask(image, twin, min_fraction)
    return {
        "mask_fraction": found.twin_fraction,
        "mask_source": found.source,
        "leukocyte_fraction": float(found.mask.mean()) if found.mask is not None else float("nan"),
    }


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
