"""Statistics for honest comparisons: group bootstrap intervals, exact binomial intervals on the effective
number of groups, the paired difference of two models tested on whole groups (sign flips and a cluster-robust
interval), McNemar's test, calibration error."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import beta, binomtest
from scipy.stats import t as student_t

from alldag.metrics import METRICS

CI_LEVEL = 0.95
EXACT_BELOW_GROUPS = 5  # errors (or hits) in fewer groups than this: accuracy also gets the exact interval on groups
EXACT_FLIPS_UP_TO = 14  # non-zero groups up to which the sign-flip test enumerates every sign pattern
SIGN_FLIPS = 10_000  # random sign patterns above that


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


def clopper_pearson(successes: float, n: float, level: float = CI_LEVEL) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion successes / n; (nan, nan) when n = 0.
    Non-integer counts (effective numbers of groups) use the same beta quantiles."""
    if n == 0:
        return float("nan"), float("nan")
    alpha = 1 - level
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


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


def resampled_accuracy(weights: np.ndarray, y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Accuracy of each weight row (n_boot, n) -> (n_boot,)."""
    return weights @ (proba.argmax(axis=1) == y_true) / weights.sum(axis=1)


def resampled_balanced_accuracy(weights: np.ndarray, y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Balanced accuracy of each weight row (n_boot, n) -> (n_boot,) (weighted_balanced_accuracy)."""
    return weighted_balanced_accuracy(weights, y_true, proba.argmax(axis=1) == y_true, proba.shape[1])


def resampled_macro_f1(weights: np.ndarray, y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Macro-F1 over the k classes of proba of each weight row (n_boot, n) -> (n_boot,)."""
    k = proba.shape[1]
    onehot, predicted = np.eye(k)[y_true], np.eye(k)[proba.argmax(axis=1)]
    support, n_pred = _per_class(weights, onehot), _per_class(weights, predicted)
    tp = _per_class(weights, onehot * predicted)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(support + n_pred > 0, 2 * tp / (support + n_pred), 0.0)
    return f1.mean(axis=1)


def resampled_roc_auc(weights: np.ndarray, y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """ROC-AUC (positive class for k == 2, else the mean one-vs-rest AUC) of each weight row (n_boot, n)."""
    k = proba.shape[1]
    if k == 2:
        return _weighted_auc(weights, y_true == 1, proba[:, 1])
    return np.mean([_weighted_auc(weights, y_true == c, proba[:, c]) for c in range(k)], axis=0)


def weighted_metrics(weights: np.ndarray, y_true: np.ndarray, proba: np.ndarray) -> dict[str, np.ndarray]:
    """Every registered metric (alldag.metrics, as evaluate.classification_metrics computes it) for every
    weight row of a bootstrap: (n_boot, n) weights -> (n_boot,) values per metric."""
    return {name: metric.on_resamples(weights, y_true, proba) for name, metric in METRICS.items()}


def percentile_interval(draws: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap draws (NaN draws left out); (nan, nan) when none is finite."""
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def effective_groups(groups: np.ndarray) -> float:
    """Kish's effective number of groups, (sum of sizes)^2 / sum of squared sizes: the number of equal groups
    that carry as much information when a group's images all agree (the worst case at 0 or 100 %)."""
    sizes = np.unique(np.asarray(groups).astype(str), return_counts=True)[1].astype(float)
    return float(sizes.sum() ** 2 / (sizes**2).sum()) if len(sizes) else 0.0


def exact_on_groups(correct: np.ndarray, groups: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """Clopper-Pearson interval of the share correct, counted on the effective number of groups (not images):
    a perfect model on 64 images from 16 equal groups gets the interval of 16 of 16."""
    n = effective_groups(groups)
    return clopper_pearson(float(np.mean(correct)) * n if n else 0.0, n, level)


def balanced_accuracy_exact(
    y_true: np.ndarray, correct: np.ndarray, groups: np.ndarray, level: float = CI_LEVEL
) -> tuple[float, float]:
    """Conservative exact interval of balanced accuracy: the mean of per-class exact_on_groups bounds, each at
    level 1 - (1 - level) / classes (Bonferroni), so all hold together with at least `level` probability."""
    classes = np.unique(y_true)
    per_class_level = 1 - (1 - level) / len(classes)
    bounds = np.array([exact_on_groups(correct[y_true == c], groups[y_true == c], per_class_level) for c in classes])
    return float(bounds[:, 0].mean()), float(bounds[:, 1].mean())


def seen_in_few_groups(correct: np.ndarray, groups: np.ndarray) -> bool:
    """Whether the errors, or the hits, lie in fewer than EXACT_BELOW_GROUPS groups: a group bootstrap cannot
    see how such rare events spread over patients (none at all: a zero-width interval)."""
    groups = np.asarray(groups).astype(str)
    return min(len(np.unique(groups[~correct])), len(np.unique(groups[correct]))) < EXACT_BELOW_GROUPS


def _hull(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return min(a[0], b[0]), max(a[1], b[1])


def accuracy_exact_interval(y_true: np.ndarray, correct: np.ndarray, groups: np.ndarray, level: float = CI_LEVEL):
    """Accuracy's exact interval on groups (exact_on_groups) where its errors or hits lie in few groups; else None."""
    return exact_on_groups(correct, groups, level) if seen_in_few_groups(correct, groups) else None


def balanced_accuracy_exact_interval(
    y_true: np.ndarray, correct: np.ndarray, groups: np.ndarray, level: float = CI_LEVEL
):
    """Balanced accuracy's exact interval (balanced_accuracy_exact) where any class's errors or hits lie in few
    groups; else None."""
    if any(seen_in_few_groups(correct[y_true == c], groups[y_true == c]) for c in np.unique(y_true)):
        return balanced_accuracy_exact(y_true, correct, groups, level)
    return None


def metric_intervals(
    weights: np.ndarray, y_true: np.ndarray, proba: np.ndarray, groups: np.ndarray, level: float = CI_LEVEL
) -> dict[str, tuple[float, float]]:
    """95 % intervals of every registered metric: group-bootstrap percentiles, joined with the metric's exact
    interval where it has one (accuracy and balanced accuracy: on the effective number of groups where errors
    or hits are seen in few groups), so one error never gives a narrower interval than none.

    weights: group_bootstrap_weights of the same groups; groups: one label per image.
    """
    draws = weighted_metrics(weights, y_true, proba)
    out = {name: percentile_interval(values, level) for name, values in draws.items()}
    correct = proba.argmax(axis=1) == y_true
    groups = np.asarray(groups).astype(str)
    for name, metric in METRICS.items():
        exact = metric.exact_interval(y_true, correct, groups, level)
        if exact is not None:
            out[name] = _hull(out[name], exact)
    return out


def groups_per_class(y: np.ndarray, groups: np.ndarray) -> int:
    """The smallest number of distinct groups among the classes present in y."""
    frame = pd.DataFrame({"y": np.asarray(y), "group": np.asarray(groups)})
    return int(frame.groupby("y")["group"].nunique().min()) if len(frame) else 0


def _group_index(y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each image's group index and each group's stratum (its most common class), as the bootstrap has them."""
    g = np.unique(np.asarray(groups).astype(str), return_inverse=True)[1]
    counts = np.zeros((g.max() + 1, int(np.max(y)) + 1), int)
    np.add.at(counts, (g, y), 1)
    return g, counts.argmax(axis=1)


def balanced_accuracy_weights(y: np.ndarray) -> np.ndarray:
    """Per image 1 / (classes x its class's size): the weighted sum of 'correct' is the balanced accuracy."""
    classes, inverse, sizes = np.unique(y, return_inverse=True, return_counts=True)
    return 1.0 / (len(classes) * sizes[inverse])


def sign_flip_p(contributions: np.ndarray, *, flips: int, seed: int) -> tuple[float, float]:
    """One-sided p-values (A not better, A not worse) of a sum of per-group contributions to a paired
    difference, by flipping each group's sign (swapping the two models within the group).

    Exact (every sign pattern) up to EXACT_FLIPS_UP_TO non-zero groups, else `flips` random patterns with
    p = (1 + hits) / (1 + flips). Exact under the null that the two models are exchangeable within a group.
    """
    u = contributions[contributions != 0]
    if not len(u):
        return 1.0, 1.0
    observed, tolerance = u.sum(), 1e-9 * np.abs(u).max()
    if len(u) <= EXACT_FLIPS_UP_TO:
        signs = 1 - 2 * ((np.arange(2 ** len(u))[:, None] >> np.arange(len(u))) & 1)
        sums = signs @ u
        return float(np.mean(sums >= observed - tolerance)), float(np.mean(sums <= observed + tolerance))
    signs = 1 - 2 * np.random.default_rng(seed).integers(0, 2, (flips, len(u)))
    sums = signs @ u
    greater, less = int(np.sum(sums >= observed - tolerance)), int(np.sum(sums <= observed + tolerance))
    return (1 + greater) / (1 + flips), (1 + less) / (1 + flips)


def _variance_terms(per_group: np.ndarray, contributions: np.ndarray, stratum: np.ndarray, image: np.ndarray):
    """Per-group terms of the stratified (by class) cluster variance, plus two pseudo-groups per class that
    disagree one each way by the class's mean non-zero contribution (one image where none disagrees): like
    adding a discordant pair to a 2x2 table, they keep a few disagreeing patients from giving a falsely
    narrow interval."""
    terms = []
    for s in np.unique(stratum):
        members = per_group[stratum == s]
        if len(members) > 1:
            terms.append(len(members) / (len(members) - 1) * (members - members.mean()) ** 2)
        seen = np.abs(contributions[(stratum == s) & (contributions != 0)])
        terms.append(np.full(2, (seen.mean() if len(seen) else image[s]) ** 2))
    return np.concatenate(terms)


def cluster_interval(y: np.ndarray, groups: np.ndarray, diff: np.ndarray, level: float = CI_LEVEL) -> dict:
    """Balanced-accuracy difference (per-image diff = correct A - correct B) with a cluster-robust t interval.

    The variance sums per-group linearised contributions within classes (_variance_terms); the degrees of
    freedom are the terms' effective number, (sum)^2 / sum of squares, at most groups - classes, so a
    difference carried by a few patients gets a wide t. Returns diff, se, df, ci_low, ci_high, p_greater and
    p_less (the t test's one-sided p of 'A not better' and 'A not worse').
    """
    classes, yi, sizes = np.unique(y, return_inverse=True, return_counts=True)
    weight = 1.0 / (len(classes) * sizes[yi])
    class_diff = np.bincount(yi, weights=diff) / sizes
    point = float(class_diff.mean())
    g, stratum = _group_index(yi, groups)
    terms = _variance_terms(
        np.bincount(g, weights=(diff - class_diff[yi]) * weight),  # ratio-estimator linearisation
        np.bincount(g, weights=diff * weight),
        stratum,
        1.0 / (len(classes) * sizes),
    )
    variance = float(terms.sum())
    df = float(np.clip(variance**2 / float((terms**2).sum()), 1, max(stratum.size - len(classes), 1)))
    se = float(np.sqrt(variance))
    half = float(student_t.ppf(1 - (1 - level) / 2, df)) * se
    t_stat = point / se
    return {
        "diff": point,
        "se": se,
        "df": df,
        "ci_low": point - half,
        "ci_high": point + half,
        "p_greater": float(student_t.sf(t_stat, df)),
        "p_less": float(student_t.cdf(t_stat, df)),
    }


def paired_comparison(
    y: np.ndarray,
    groups: np.ndarray,
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    seed: int,
    flips: int = SIGN_FLIPS,
    level: float = CI_LEVEL,
) -> dict:
    """Balanced accuracy of A minus B on the same images, paired image by image and tested on whole groups.

    The interval is cluster_interval's; each one-sided p is the larger of the group sign-flip test's and the
    interval's t test's, so a small p needs both (the sign flip stays exact where few groups disagree, the t
    test keeps the interval and the p in agreement). Returns diff, ci_low, ci_high, se, df, p_greater ('A is
    not better'), p_less ('A is not worse'), p_two_sided, discordant_groups.
    """
    y = np.asarray(y, int)
    diff = np.asarray(correct_a, float) - np.asarray(correct_b, float)
    out = cluster_interval(y, groups, diff, level)
    g, _ = _group_index(y, groups)
    contributions = np.bincount(g, weights=diff * balanced_accuracy_weights(y))
    flip_greater, flip_less = sign_flip_p(contributions, flips=flips, seed=seed)
    out["p_greater"] = max(out["p_greater"], flip_greater)
    out["p_less"] = max(out["p_less"], flip_less)
    out["p_two_sided"] = min(1.0, 2 * min(out["p_greater"], out["p_less"]))
    out["discordant_groups"] = int(np.count_nonzero(np.abs(contributions) > 0))
    return out
