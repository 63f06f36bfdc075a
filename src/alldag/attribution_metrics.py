"""Explanation metrics as pure numpy functions: agreement, faithfulness, plausibility, shortcut probes.

Every attribution map is a non-negative (H, W) array (larger = more evidence for the explained
class); masks are bool (H, W). Nothing here calls a model: faithfulness is split into building
the perturbed images (`perturbation_series`) and scoring the probabilities the caller got for
them (`curve_auc`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr, t as student_t


def top_region(heat: np.ndarray, percent: float) -> np.ndarray:
    """The map's top `percent` % of pixels (bool); ties at the threshold are kept, zeros never are."""
    k = max(1, int(round(percent / 100 * heat.size)))
    threshold = np.partition(heat.ravel(), -k)[-k]
    return heat >= threshold if threshold > 0 else heat > 0


def top_iou(a: np.ndarray, b: np.ndarray, percent: float) -> float:
    """Intersection over union of two maps' top-`percent` % regions; NaN if both regions are empty."""
    ra, rb = top_region(a, percent), top_region(b, percent)
    union = (ra | rb).sum()
    return float((ra & rb).sum() / union) if union else float("nan")


def superpixel_means(heat: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Mean of the map within each segment (segments: int labels 0..n-1, as LIME's quickshift gives)."""
    labels = segments.ravel()
    return np.bincount(labels, weights=heat.ravel()) / np.maximum(np.bincount(labels), 1)


def superpixel_spearman(a: np.ndarray, b: np.ndarray, segments: np.ndarray) -> float:
    """Spearman rank correlation of two maps' per-superpixel means; NaN if either is constant."""
    ma, mb = superpixel_means(a, segments), superpixel_means(b, segments)
    if np.ptp(ma) == 0 or np.ptp(mb) == 0:
        return float("nan")
    return float(spearmanr(ma, mb).statistic)


def mass_share(heat: np.ndarray, region: np.ndarray) -> float:
    """Share of the map's total mass inside `region` (bool); NaN for an all-zero map."""
    total = heat.sum()
    return float(heat[region].sum() / total) if total > 0 else float("nan")


def pointing_hit(heat: np.ndarray, mask: np.ndarray) -> float:
    """Pointing game: share of the map's peak pixels inside the mask.

    1.0 or 0.0 for a single peak; for tied peaks the expected hit of picking one at random (so a
    uniform map scores the mask's area fraction). NaN for an all-zero map.
    """
    if heat.max() <= 0:
        return float("nan")
    return float(mask[heat == heat.max()].mean())


def corner_region(size: int, fraction: float) -> np.ndarray:
    """Bool (size, size) mask of the bottom-right square of side round(fraction * size): the scale-bar corner."""
    region = np.zeros((size, size), bool)
    side = int(round(fraction * size))
    if side:
        region[-side:, -side:] = True
    return region


def attribution_order(heat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flat pixel indices from most to least attributed; ties (flat LIME segments) in random order."""
    return np.lexsort((rng.random(heat.size), -heat.ravel()))


def perturbation_series(image: np.ndarray, baseline: np.ndarray, order: np.ndarray, steps: int,
                        insert: bool) -> np.ndarray:
    """(steps + 1, H, W, C) images for a deletion or insertion curve.

    Image i has the first round(i / steps * H * W) pixels of `order` taken from `baseline`
    (deletion: start from the image) or from `image` (insertion: start from the baseline).
    """
    h, w = image.shape[:2]
    cut = np.round(np.linspace(0, h * w, steps + 1)).astype(int)
    rank = np.empty(h * w, int)
    rank[order] = np.arange(h * w)
    changed = (rank[None, :] < cut[:, None]).reshape(steps + 1, h, w, 1)
    source, target = (baseline, image) if insert else (image, baseline)
    return np.where(changed, target[None], source[None]).astype(image.dtype)


def curve_auc(probabilities: np.ndarray) -> float:
    """Area under a curve of probabilities sampled at evenly spaced fractions of [0, 1] (trapezoid)."""
    p = np.asarray(probabilities, np.float64)
    return float(np.trapezoid(p, np.linspace(0, 1, len(p))))


def mean_ci(values, confidence: float = 0.95) -> dict:
    """n, mean, SD and the t-interval of the mean of `values` (NaNs dropped; interval NaN for n < 2)."""
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": float("nan"), "sd": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    mean = float(v.mean())
    sd = float(v.std(ddof=1)) if n > 1 else float("nan")
    half = float(student_t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "sd": sd, "ci_low": mean - half, "ci_high": mean + half}


def map_metrics(heat: np.ndarray, mask: np.ndarray | None, corner: np.ndarray) -> dict:
    """Plausibility and shortcut probes of one map.

    mask_mass (share of mass on the leukocyte), pointing (pointing_hit), background_mass (share
    outside the leukocyte), corner_mass (share in the scale-bar corner). Mask metrics are NaN
    without a mask (or with an empty one).
    """
    out = {"mask_mass": float("nan"), "pointing": float("nan"), "background_mass": float("nan"),
           "corner_mass": mass_share(heat, corner)}
    if mask is not None and mask.any():
        out.update(mask_mass=mass_share(heat, mask), pointing=pointing_hit(heat, mask),
                   background_mass=mass_share(heat, ~mask))
    return out


def agreement_metrics(a: np.ndarray, b: np.ndarray, segments: np.ndarray, percent: float) -> dict:
    """Agreement of two maps: top_iou (IoU of the top-`percent` % regions), spearman (per superpixel)."""
    return {"top_iou": top_iou(a, b, percent), "spearman": superpixel_spearman(a, b, segments)}


def summarise_explanations(per_image: pd.DataFrame, agreement: pd.DataFrame) -> pd.DataFrame:
    """Long summary table: one row per (method or method pair, metric) with mean_ci's columns.

    per_image: rows of (image, method) with the map_metrics and AUC columns; agreement: rows of
    (image, pair) with the agreement_metrics columns.
    """
    rows = []
    for table, key in ((per_image, "method"), (agreement, "pair")):
        metrics = [c for c in table.columns if c not in ("image_id", "label", "predicted", "confidence", key)]
        for name, group in table.groupby(key, sort=False):
            rows += [{"method": name, "metric": m, **mean_ci(group[m])} for m in metrics]
    return pd.DataFrame(rows)
