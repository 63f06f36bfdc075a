"""Statistics for honest comparisons: group bootstrap intervals and paired differences, exact binomial
intervals, McNemar's test, calibration error."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import beta, binomtest

CI_LEVEL = 0.95
EXACT_BELOW_N = 30  # below this many test images (or at 0 % / 100 %) accuracy gets an exact interval


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
        bins.append(
            {
                "low": float(edges[k]),
                "high": float(edges[k + 1]),
                "count": int(sel.sum()),
                "confidence": float(confidence[sel].mean()) if sel.any() else float("nan"),
                "accuracy": float(correct[sel].mean()) if sel.any() else float("nan"),
            }
        )
    return bins


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> float:
    """ECE: mean |accuracy - confidence| over confidence bins, weighted by the share of images per bin."""
    n = len(y_true)
    return float(
        sum(
            b["count"] / n * abs(b["accuracy"] - b["confidence"])
            for b in reliability(y_true, proba, n_bins)
            if b["count"]
        )
    )


def clopper_pearson(successes: int, n: int, level: float = CI_LEVEL) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion successes / n; (nan, nan) when n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    alpha = 1 - level
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


def balanced_accuracy_exact(y_true: np.ndarray, correct: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """Conservative exact interval of balanced accuracy: the mean of per-class Clopper-Pearson bounds, each
    at level 1 - (1 - level) / classes (Bonferroni), so all hold together with at least `level` probability."""
    classes = np.unique(y_true)
    per_class_level = 1 - (1 - level) / len(classes)
    bounds = np.array(
        [clopper_pearson(int(correct[y_true == c].sum()), int((y_true == c).sum()), per_class_level) for c in classes]
    )
    return float(bounds[:, 0].mean()), float(bounds[:, 1].mean())


def group_bootstrap_weights(y_true: np.ndarray, groups: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap weights (n_boot, n): how often each image is drawn when whole groups are resampled.

    Groups (duplicate clusters, patient-proxy blocks) are drawn with replacement within their class
    (a group's class is its most common label), as many per class as the class has, so correlated images
    enter or leave a resample together and every resample keeps the class mix. Pass one group per image
    for the ordinary image-level bootstrap.
    """
    group_ids, g = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    y = np.asarray(y_true)
    counts = np.zeros((len(group_ids), int(y.max()) + 1), int)
    np.add.at(counts, (g, y), 1)
    stratum = counts.argmax(axis=1)
    rng = np.random.default_rng(seed)
    group_weight = np.zeros((n_boot, len(group_ids)))
    for s in np.unique(stratum):
        members = np.flatnonzero(stratum == s)
        draws = rng.integers(0, len(members), (n_boot, len(members)))
        flat = (draws + np.arange(n_boot)[:, None] * len(members)).ravel()
        group_weight[:, members] = np.bincount(flat, minlength=n_boot * len(members)).reshape(n_boot, len(members))
    return group_weight[:, g]


def _per_class(weights: np.ndarray, indicator: np.ndarray) -> np.ndarray:
    """Weighted sums (n_boot, k) of a (n, k) indicator matrix."""
    return weights @ indicator.astype(float)


def weighted_balanced_accuracy(weights: np.ndarray, y_true: np.ndarray, correct: np.ndarray, k: int) -> np.ndarray:
    """Balanced accuracy (mean per-class recall) of each weight row (n_boot, n) -> (n_boot,); NaN-free classes only."""
    onehot = np.eye(k)[y_true]
    support = _per_class(weights, onehot)
    hits = _per_class(weights, onehot * np.asarray(correct, bool)[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
    return np.nanmean(np.where(np.isnan(recall).all(axis=1, keepdims=True), 0.0, recall), axis=1)


def _weighted_auc(weights: np.ndarray, positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC-AUC of one score under each weight row (ties count half), vectorised over rows; NaN without both classes."""
    order = np.argsort(score, kind="mergesort")
    ordered = score[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # blocks of tied scores
    w = weights[:, order]
    pos = np.add.reduceat(w * positive[order], starts, axis=1)
    neg = np.add.reduceat(w * ~positive[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    denominator = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (pos * (below + 0.5 * neg)).sum(axis=1) / denominator, np.nan)


def weighted_metrics(weights: np.ndarray, y_true: np.ndarray, proba: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy, macro-F1 and ROC-AUC (as in evaluate.classification_metrics) for every
    weight row of a bootstrap: (n_boot, n) weights -> (n_boot,) values per metric."""
    k = proba.shape[1]
    y_pred = proba.argmax(axis=1)
    correct = y_pred == y_true
    onehot, predicted = np.eye(k)[y_true], np.eye(k)[y_pred]
    total = weights.sum(axis=1)
    support, n_pred = _per_class(weights, onehot), _per_class(weights, predicted)
    tp = _per_class(weights, onehot * predicted)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(support + n_pred > 0, 2 * tp / (support + n_pred), 0.0)
    if k == 2:
        auc = _weighted_auc(weights, y_true == 1, proba[:, 1])
    else:
        auc = np.mean([_weighted_auc(weights, y_true == c, proba[:, c]) for c in range(k)], axis=0)
    return {
        "accuracy": weights @ correct / total,
        "balanced_accuracy": weighted_balanced_accuracy(weights, y_true, correct, k),
        "macro_f1": f1.mean(axis=1),
        "roc_auc": auc,
    }


def percentile_interval(draws: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap draws (NaN draws left out); (nan, nan) when none is finite."""
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def metric_intervals(
    weights: np.ndarray, y_true: np.ndarray, proba: np.ndarray, level: float = CI_LEVEL
) -> dict[str, tuple[float, float]]:
    """95 % intervals of every metric: group-bootstrap percentiles, exact ones for (balanced) accuracy at
    0 or 1 or under EXACT_BELOW_N images, where a bootstrap collapses or undercovers."""
    draws = weighted_metrics(weights, y_true, proba)
    out = {name: percentile_interval(values, level) for name, values in draws.items()}
    correct = proba.argmax(axis=1) == y_true
    n, hits = len(y_true), int(correct.sum())
    if n < EXACT_BELOW_N or hits in (0, n):
        out["accuracy"] = clopper_pearson(hits, n, level)
    per_class = [correct[y_true == c].mean() for c in np.unique(y_true)]
    if n < EXACT_BELOW_N or all(r in (0.0, 1.0) for r in per_class):
        out["balanced_accuracy"] = balanced_accuracy_exact(y_true, correct, level)
    return out


def paired_difference(
    weights: np.ndarray, y_true: np.ndarray, correct_a: np.ndarray, correct_b: np.ndarray, level: float = CI_LEVEL
) -> dict:
    """Balanced accuracy of A minus B on the same images, with the paired (same-resample) bootstrap interval.

    weights: the (n_boot, n) group-bootstrap weights (group_bootstrap_weights). Returns diff, ci_low, ci_high,
    p_greater (one-sided p of 'A is not better': the share of resamples where A - B <= 0, plus one, over
    n_boot + 1) and p_two_sided.
    """
    k = int(np.max(y_true)) + 1
    point = np.ones((1, len(y_true)))
    diff = float(
        (
            weighted_balanced_accuracy(point, y_true, correct_a, k)
            - weighted_balanced_accuracy(point, y_true, correct_b, k)
        )[0]
    )
    draws = weighted_balanced_accuracy(weights, y_true, correct_a, k) - weighted_balanced_accuracy(
        weights, y_true, correct_b, k
    )
    low, high = percentile_interval(draws, level)
    n_boot = len(draws)
    p_greater = (1 + int((draws <= 0).sum())) / (n_boot + 1)
    p_less = (1 + int((draws >= 0).sum())) / (n_boot + 1)
    return {
        "diff": diff,
        "ci_low": low,
        "ci_high": high,
        "p_greater": p_greater,
        "p_two_sided": min(1.0, 2 * min(p_greater, p_less)),
    }


# A group bootstrap with fewer groups than this in some class cannot estimate the spread (one group per class
# resamples to the same data every time: a zero-width interval), so no verdict is drawn from it.
MIN_GROUPS_PER_CLASS = 5


def groups_per_class(y: np.ndarray, groups: np.ndarray) -> int:
    """The smallest number of distinct groups among the classes present in y."""
    frame = pd.DataFrame({"y": np.asarray(y), "group": np.asarray(groups)})
    return int(frame.groupby("y")["group"].nunique().min()) if len(frame) else 0


def verdict(ci_low: float, ci_high: float, min_groups: int | None = None) -> str:
    """'true' when an interval of a difference lies above 0, 'false' when it lies at or below 0, else
    'undetermined'. NaN bounds, or min_groups (the test images' fewest groups in a class) below
    MIN_GROUPS_PER_CLASS, are undetermined too."""
    if np.isnan(ci_low) or np.isnan(ci_high) or (min_groups is not None and min_groups < MIN_GROUPS_PER_CLASS):
        return "undetermined"
    return "true" if ci_low > 0 else "false" if ci_high <= 0 else "undetermined"
