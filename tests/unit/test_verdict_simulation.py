"""The verdict against the colour baseline, simulated: power, type-I error, what duplicates do to intervals,
exact intervals at small n, and the group-bootstrap metrics against sklearn's."""

from __future__ import annotations

import numpy as np
import pytest

from alldag.evaluate import classification_metrics
from alldag.stats import (
    clopper_pearson,
    group_bootstrap_weights,
    metric_intervals,
    paired_difference,
    verdict,
    weighted_metrics,
)

N_TEST = 1300  # about the real data's pooled four-class test set (3,256 images / 2.5)


def paired_correctness(rng, n: int, baseline_error: float, model_error: float, shared: float):
    """Correct/incorrect of a baseline and a model on the same n independent images; `shared` of the model's
    errors fall on images the baseline also gets wrong (hard images)."""
    both = model_error * shared
    p = [both, model_error - both, baseline_error - both, 1 - model_error - baseline_error + both]
    state = rng.choice(4, size=n, p=p)  # both wrong, only the model wrong, only the baseline wrong, both right
    return ~np.isin(state, (0, 1)), ~np.isin(state, (0, 2))


def declared_better(seed: int, model_error: float, n: int = N_TEST, n_boot: int = 500) -> str:
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    model, base = paired_correctness(rng, n, 0.05, model_error, shared=0.5)
    weights = group_bootstrap_weights(y, np.arange(n), n_boot, seed + 100_000)  # a stream apart from the data
    d = paired_difference(weights, y, model, base)
    return verdict(d["ci_low"], d["ci_high"])


def test_a_true_difference_of_2_5_points_is_found_in_at_least_90_percent_of_seeds():
    verdicts = [declared_better(seed, model_error=0.025) for seed in range(100)]  # 97.5 % vs 95 %
    assert verdicts.count("true") >= 90, verdicts.count("true")


def test_no_true_difference_is_declared_better_in_at_most_5_percent_of_seeds():
    # 600 seeds at half the test size keep this fast; the nominal one-sided rate is 2.5 %
    verdicts = [declared_better(seed, model_error=0.05, n=600, n_boot=400) for seed in range(600)]
    assert verdicts.count("true") <= 30, verdicts.count("true")  # type-I error <= 5 %
    assert verdicts.count("false") <= 30, verdicts.count("false")  # and 'false' is as rare


def test_duplicated_test_images_widen_the_group_interval_but_not_the_image_level_one():
    rng = np.random.default_rng(0)
    unique = 300
    y0 = np.repeat([0, 1], unique // 2)
    correct0 = rng.uniform(size=unique) < 0.85
    y, correct, groups = np.repeat(y0, 3), np.repeat(correct0, 3), np.repeat(np.arange(unique), 3)
    proba = np.eye(2)[np.where(correct, y, 1 - y)]
    image_level = metric_intervals(group_bootstrap_weights(y, np.arange(len(y)), 2000, 1), y, proba)
    grouped = metric_intervals(group_bootstrap_weights(y, groups, 2000, 1), y, proba)
    once = metric_intervals(
        group_bootstrap_weights(y0, np.arange(unique), 2000, 1), y0, np.eye(2)[np.where(correct0, y0, 1 - y0)]
    )
    width = {
        name: iv["balanced_accuracy"][1] - iv["balanced_accuracy"][0]
        for name, iv in (("image", image_level), ("group", grouped), ("once", once))
    }
    assert width["group"] > 1.5 * width["image"], width  # about sqrt(3) wider
    assert width["group"] == pytest.approx(width["once"], rel=0.15)  # as wide as the 300 distinct images


def test_group_bootstrap_keeps_coverage_when_images_cluster():
    rng = np.random.default_rng(5)
    hits = {"group": 0, "image": 0}
    trials, n_groups, size = 150, 60, 10
    for t in range(trials):
        # every group (patient) has its own accuracy, 1.0 or 0.5 (mean 0.8): images of one group are correlated
        p_group = np.where(rng.uniform(size=n_groups) < 0.6, 1.0, 0.5)
        groups = np.repeat(np.arange(n_groups), size)
        y = np.repeat(np.arange(n_groups) % 2, size)
        correct = rng.uniform(size=len(y)) < p_group[groups]
        proba = np.eye(2)[np.where(correct, y, 1 - y)]
        for name, g in (("group", groups), ("image", np.arange(len(y)))):
            low, high = metric_intervals(group_bootstrap_weights(y, g, 400, t), y, proba)["accuracy"]
            hits[name] += low <= 0.8 <= high
    assert hits["group"] / trials >= 0.88, hits
    assert hits["image"] / trials < hits["group"] / trials - 0.1, hits  # images-as-independent undercovers


def test_twelve_perfect_predictions_get_the_exact_interval_not_one_to_one():
    y = np.repeat([0, 1], 6)
    proba = np.eye(2)[y]
    intervals = metric_intervals(group_bootstrap_weights(y, np.arange(12), 200, 0), y, proba)
    assert intervals["accuracy"] == pytest.approx((0.7354, 1.0), abs=1e-3)
    low, high = intervals["balanced_accuracy"]
    assert high == 1.0 and low < 0.7  # per-class exact bounds (6 images each), Bonferroni over 2 classes


def test_clopper_pearson_matches_known_values():
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 0.3085), abs=1e-4)
    assert clopper_pearson(5, 10) == pytest.approx((0.1871, 0.8129), abs=1e-4)
    assert all(np.isnan(clopper_pearson(0, 0)))


@pytest.mark.parametrize("k", [2, 4])
def test_weighted_metrics_with_unit_weights_equal_sklearn(k):
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 200)
    proba = rng.dirichlet(np.ones(k), 200)
    proba[:20] = np.round(proba[:20], 1)  # ties in the scores
    proba[np.arange(100), y[:100]] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    draws = weighted_metrics(np.ones((1, 200)), y, proba)
    expected = classification_metrics(y, proba)
    for name, value in expected.items():
        assert draws[name][0] == pytest.approx(value, abs=1e-12), name


def test_weighted_metrics_with_integer_weights_equal_the_repeated_sample():
    rng = np.random.default_rng(9)
    y, proba = rng.integers(0, 3, 90), rng.dirichlet(np.ones(3), 90)
    weights = rng.integers(0, 3, 90)
    repeated = np.repeat(np.arange(90), weights)
    draws = weighted_metrics(weights[None].astype(float), y, proba)
    for name, value in classification_metrics(y[repeated], proba[repeated]).items():
        assert draws[name][0] == pytest.approx(value, abs=1e-12), name


def test_group_bootstrap_draws_whole_groups_and_keeps_each_class_size():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    groups = np.array(["a", "a", "b", "b", "c", "c", "c", "d", "e", "e"])
    weights = group_bootstrap_weights(y, groups, 300, 0)
    for g in np.unique(groups):
        members = weights[:, groups == g]
        assert (members == members[:, :1]).all()  # a group's images are drawn together
    assert (weights[:, y == 0].sum(axis=1) % 2 == 0).all()  # class 0: two groups of two, two draws
    assert (weights[:, groups == "a"][:, 0] + weights[:, groups == "b"][:, 0] == 2).all()


def test_verdict_rule():
    assert verdict(0.01, 0.05) == "true" and verdict(-0.05, 0.0) == "false"
    assert verdict(-0.01, 0.02) == "undetermined" and verdict(float("nan"), 0.1) == "undetermined"


def test_too_few_groups_per_class_give_no_verdict_however_clear_the_difference():
    from alldag.stats import MIN_GROUPS_PER_CLASS, groups_per_class, verdict

    y = np.repeat([0, 1], 8)
    one_group_each = np.repeat(["Benign#1", "Pro#1"], 8)
    assert groups_per_class(y, one_group_each) == 1
    # one group per class resamples to the same images every time: a zero-width interval above 0
    assert verdict(0.25, 0.25, groups_per_class(y, one_group_each)) == "undetermined"
    many = np.array([f"g{i // 2}" for i in range(16)])
    assert groups_per_class(y, many) == 4 < MIN_GROUPS_PER_CLASS
    assert verdict(0.25, 0.25, MIN_GROUPS_PER_CLASS) == "true" and verdict(0.25, 0.25) == "true"
