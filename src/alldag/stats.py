"""Statistics for honest comparisons: bootstrap intervals, McNemar's test, calibration error."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import binomtest

CI_LEVEL = 0.95


def bootstrap_cis(y_true: np.ndarray, proba: np.ndarray, metrics: Callable[[np.ndarray, np.ndarray], dict],
                  n_boot: int = 1000, seed: int = 0, level: float = CI_LEVEL) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of every value of metrics(y_true, proba), resampling test images.

    NaN values (e.g. an AUC on a resample that misses a class) are left out of that metric's interval.
    """
    rng = np.random.default_rng(seed)
    n = len(y_true)
    draws: dict[str, list[float]] = {}
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        for name, value in metrics(y_true[idx], proba[idx]).items():
            if not np.isnan(value):
                draws.setdefault(name, []).append(value)
    tail = (1 - level) / 2 * 100
    names = metrics(y_true, proba).keys()
    return {name: tuple(float(v) for v in np.percentile(draws[name], [tail, 100 - tail])) if draws.get(name)
            else (float("nan"), float("nan")) for name in names}


def bootstrap_ci(y_true: np.ndarray, proba: np.ndarray, metric: Callable[[np.ndarray, np.ndarray], float],
                 n_boot: int = 1000, seed: int = 0, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of one metric(y_true, proba) over resampled test images."""
    return bootstrap_cis(y_true, proba, lambda y, p: {"m": metric(y, p)}, n_boot, seed, level)["m"]


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    order = np.argsort(p_values)
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """Exact McNemar test of two classifiers on the same images (boolean 'was correct' arrays).

    Returns b (only A right), c (only B right) and the two-sided exact binomial p-value of b vs c
    (1.0 when they never disagree).
    """
    a, b_ = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((a & ~b_).sum()), int((~a & b_).sum())
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": p}


def reliability(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> list[dict]:
    """Per confidence bin (top-class probability in equal-width bins): count, mean confidence, accuracy."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    bins = []
    for k in range(n_bins):
        sel = which == k
        bins.append({"low": float(edges[k]), "high": float(edges[k + 1]), "count": int(sel.sum()),
                     "confidence": float(confidence[sel].mean()) if sel.any() else float("nan"),
                     "accuracy": float(correct[sel].mean()) if sel.any() else float("nan")})
    return bins


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> float:
    """ECE: mean |accuracy - confidence| over confidence bins, weighted by the share of images per bin."""
    n = len(y_true)
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"])
                     for b in reliability(y_true, proba, n_bins) if b["count"]))


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True when two closed intervals overlap (NaN bounds count as overlapping: no evidence)."""
    if any(np.isnan(v) for v in (*a, *b)):
        return True
    return a[0] <= b[1] and b[0] <= a[1]
