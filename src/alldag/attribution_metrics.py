"""Explanation metrics as pure numpy functions: agreement, faithfulness, plausibility, shortcut probes.

Every attribution map is a non-negative (H, W) array (larger = more evidence for the explained
class); masks are bool (H, W). Nothing here calls a model: faithfulness is split into building
the perturbed images (`perturbation_series`) and scoring the probabilities the caller got for
them (`curve_auc`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BOOTSTRAP_RESAMPLES = 2000
FILLS = ("blur", "median")  # what deleted pixels become in the faithfulness curves (alldag.explain.faithfulness)
CURVES = ("deletion", "insertion")
BEATS_RANDOM_SIGN = {"deletion": -1, "insertion": 1}  # the sign of a difference from random that is better
NO_POSITIVE = "no_positive_attribution"  # a map with no positive attribution: counted, never a ratio


def auc_column(curve: str, fill: str) -> str:
    """The per-image column of a faithfulness AUC, e.g. deletion_auc_blur."""
    return f"{curve}_auc_{fill}"


def vs_random_column(curve: str, fill: str) -> str:
    """The per-image column of an AUC minus the mean AUC of random pixel orders, e.g. deletion_auc_blur_vs_random."""
    return f"{auc_column(curve, fill)}_vs_random"


AUC_COLUMNS = tuple(auc_column(c, f) for f in FILLS for c in CURVES)
VS_RANDOM_COLUMNS = tuple(vs_random_column(c, f) for f in FILLS for c in CURVES)


def top_region(heat: np.ndarray, percent: float, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Exactly the map's top round(`percent` % of pixels) by rank (bool), zeros never included.

    Ties are ordered by `tiebreak` (random keys, one per pixel; default a fixed seeded draw), so a
    piecewise-constant map (LIME's superpixels) gets a region of the same size as any other map's.
    """
    k = max(1, int(round(percent / 100 * heat.size)))
    keys = np.random.default_rng(0).random(heat.size) if tiebreak is None else np.ravel(tiebreak)
    region = np.zeros(heat.size, bool)
    region[np.lexsort((keys, -heat.ravel()))[:k]] = True
    return region.reshape(heat.shape) & (heat > 0)


def top_iou(a: np.ndarray, b: np.ndarray, percent: float, rng: np.random.Generator | None = None) -> float:
    """Intersection over union of two maps' top-`percent` % regions (ties broken by the same random keys
    drawn from rng for both maps); NaN if both regions are empty."""
    keys = (rng or np.random.default_rng(0)).random(a.size)
    ra, rb = top_region(a, percent, keys), top_region(b, percent, keys)
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
    from scipy.stats import spearmanr  # here: alldag.run_metrics (track jobs) imports this module's constants

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


def perturbation_series(
    image: np.ndarray, baseline: np.ndarray, order: np.ndarray, steps: int, insert: bool
) -> np.ndarray:
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


def curve_auc(probabilities: np.ndarray, reference: float = 1.0) -> float:
    """Area under a curve of probabilities sampled at evenly spaced fractions of [0, 1] (trapezoid), divided
    by `reference` (the original image's probability of the class: so AUCs compare across models)."""
    p = np.asarray(probabilities, np.float64)
    return float(np.trapezoid(p, np.linspace(0, 1, len(p))) / reference) if reference > 0 else float("nan")


def bootstrap_mean_ci(values: np.ndarray, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (BOOTSTRAP_RESAMPLES resamples, seeded): it stays within the
    values' range, so a share's interval never leaves [0, 1]. NaNs for fewer than 2 values."""
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return float("nan"), float("nan")
    means = v[np.random.default_rng(seed).integers(0, len(v), (BOOTSTRAP_RESAMPLES, len(v)))].mean(axis=1)
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def mean_ci(values, confidence: float = 0.95) -> dict:
    """n, mean, SD and the 95 % percentile-bootstrap interval of the mean of `values` (NaNs dropped), and the
    interval's name: one interval for every metric (a LIME pointing score is fractional, Grad-CAM's 0/1)."""
    v = np.asarray(values, np.float64)
    v = v[~np.isnan(v)]
    n = len(v)
    if n == 0:
        return {
            "n": 0,
            "mean": float("nan"),
            "sd": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "interval": "",
        }
    low, high = bootstrap_mean_ci(v, confidence)
    return {
        "n": n,
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if n > 1 else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "interval": "bootstrap",
    }


def map_metrics(heat: np.ndarray, mask: np.ndarray | None, corner: np.ndarray) -> dict:
    """Plausibility and shortcut probes of one map.

    mask_mass (share of mass on the leukocytes), pointing (pointing_hit), background_mass (share
    outside them), corner_mass (share in the scale-bar corner); each share also as a ratio to a uniform
    map's (the region's area fraction: 1.0 = no better than chance, so it reads the same on every image
    size and cell count): mask_ratio, background_ratio, corner_ratio; mask_area, the leukocytes' area
    fraction. Mask metrics are NaN without a mask (or with an empty one): such images are not scored.
    no_positive_attribution: the map is zero everywhere (LIME when no superpixel helps), so it has no
    shares; such maps are counted, never scored.
    """
    nan = float("nan")
    corner_mass = mass_share(heat, corner)
    out = {
        NO_POSITIVE: not heat.sum() > 0,
        "mask_mass": nan,
        "pointing": nan,
        "background_mass": nan,
        "corner_mass": corner_mass,
        "mask_ratio": nan,
        "background_ratio": nan,
        "corner_ratio": corner_mass / corner.mean() if corner.any() else nan,
        "mask_area": nan,
    }
    if mask is not None and mask.any():
        area = float(mask.mean())
        out["mask_area"] = area
        if out[NO_POSITIVE]:
            return out
        out.update(
            mask_mass=mass_share(heat, mask),
            pointing=pointing_hit(heat, mask),
            background_mass=mass_share(heat, ~mask),
        )
        out.update(
            mask_ratio=out["mask_mass"] / area,
            background_ratio=out["background_mass"] / (1 - area) if area < 1 else nan,
        )
    return out


def agreement_metrics(
    a: np.ndarray, b: np.ndarray, segments: np.ndarray, percent: float, rng: np.random.Generator | None = None
) -> dict:
    """Agreement of two maps: top_iou (IoU of the top-`percent` % regions, ties broken with rng),
    spearman (per superpixel)."""
    return {"top_iou": top_iou(a, b, percent, rng), "spearman": superpixel_spearman(a, b, segments)}


ALL_CLASSES = "all"  # the `label` of a summary row over every class
IMAGE_COLUMNS = ("image_id", "label", "predicted", "confidence", "mask_source")


def no_positive_attribution(rows: pd.DataFrame) -> pd.Series:
    """Per row, whether its map had no positive attribution (the NO_POSITIVE column; in tables written before
    it, a map without a corner share, which needs no mask)."""
    if NO_POSITIVE in rows:
        return rows[NO_POSITIVE].astype(str).str.lower().isin(("true", "1", "1.0"))
    return rows["corner_mass"].isna() if "corner_mass" in rows else pd.Series(False, index=rows.index)


def summarise_explanations(per_image: pd.DataFrame, agreement: pd.DataFrame) -> pd.DataFrame:
    """Long summary table: one row per (method or method pair, class, metric) with mean_ci's columns, and
    no_positive_attribution: how many of the group's maps had none (empty for method pairs).

    per_image: rows of (image, method) with the map_metrics and AUC columns; agreement: rows of
    (image, pair) with the agreement_metrics columns. `label` is the class, or ALL_CLASSES for every
    image; n counts the images with a value (images without a usable mask, and maps without positive
    attribution, have no plausibility value).
    """
    rows = []
    for table, key in ((per_image, "method"), (agreement, "pair")):
        metrics = [c for c in table.columns if c not in (*IMAGE_COLUMNS, key, NO_POSITIVE)]
        groups = [(name, ALL_CLASSES, group) for name, group in table.groupby(key, sort=False)]
        if "label" in table:
            groups += [(name, label, group) for (name, label), group in table.groupby([key, "label"], sort=False)]
        counted = NO_POSITIVE in table
        rows += [
            {
                "method": name,
                "label": label,
                "metric": m,
                **mean_ci(group[m]),
                NO_POSITIVE: int(no_positive_attribution(group).sum()) if counted else None,
            }
            for name, label, group in groups
            for m in metrics
        ]
    return pd.DataFrame(rows)


def _resample_weights(codes: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, rows) weights: how often each row's image is drawn when the images are resampled with
    replacement, so all rows of one image (every model's, every method's) move together."""
    k = int(codes.max()) + 1
    picks = np.random.default_rng(seed).integers(0, k, (resamples, k))
    counts = np.bincount((np.arange(resamples)[:, None] * k + picks).ravel(), minlength=resamples * k)
    return counts.reshape(resamples, k)[:, codes]


def _weighted_medians(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of integer weights (r, n), the median of `values` repeated that often (np.median's convention)."""
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(weights[:, order], axis=1)
    total = cum[:, -1:]
    low = (cum > (total - 1) // 2).argmax(axis=1)
    high = (cum > total // 2).argmax(axis=1)
    return (v[low] + v[high]) / 2


STATISTICS = {"median": np.median, "mean": np.mean}


def image_bootstrap(values, images, statistic: str = "mean", confidence: float = 0.95, seed: int = 0) -> dict:
    """The median or mean of per-row values and its percentile-bootstrap interval, resampling IMAGES.

    values: one number per row (an image explained by one model with one method; NaNs dropped); images: the
    row's image id. Every backbone explains the same images, so rows of one image are not independent: a
    resample draws image ids with replacement and takes all their rows. Returns n (rows), images, value and
    ci ([low, high]; NaNs for fewer than 2 images).
    """
    v = np.asarray(values, np.float64)
    ids = np.asarray(images)[~np.isnan(v)]
    v = v[~np.isnan(v)]
    nan = float("nan")
    if len(v) == 0:
        return {"n": 0, "images": 0, "value": nan, "ci": [nan, nan]}
    _, codes = np.unique(ids, return_inverse=True)
    out = {"n": int(len(v)), "images": int(codes.max()) + 1, "value": float(STATISTICS[statistic](v)), "ci": [nan, nan]}
    if out["images"] > 1:
        weights = _resample_weights(codes, BOOTSTRAP_RESAMPLES, seed)
        stats = _weighted_medians(v, weights) if statistic == "median" else weights @ v / weights.sum(axis=1)
        tail = (1 - confidence) / 2
        out["ci"] = [float(np.quantile(stats, tail)), float(np.quantile(stats, 1 - tail))]
    return out
