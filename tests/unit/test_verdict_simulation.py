"""The verdict against the colour baseline, simulated on grouped (patient-like) test sets: false "beats"
and "worse", power, the family adjustment, pairing; exact intervals on groups; the group-bootstrap metrics
against sklearn's. The full grid is bench/bench_verdicts.py; these are its cheap corners."""

from __future__ import annotations

import numpy as np
import pytest

from alldag.compare import baseline_verdicts
from alldag.evaluate import classification_metrics
from alldag.stats import (
    clopper_pearson,
    group_bootstrap_weights,
    metric_intervals,
    paired_comparison,
    sign_flip_p,
    weighted_metrics,
)
from alldag.verdict_simulation import Scenario, simulated_rows, simulated_verdicts
from alldag.verdicts import (
    ALPHA,
    BEATS,
    EQUIVALENT,
    MIN_GROUPS_PER_CLASS,
    UNDETERMINED,
    VERDICT_COLUMN,
    WORSE,
    decide,
)


@pytest.mark.parametrize(("accuracy", "groups"), [(0.99, 5), (0.90, 13)])
def test_no_true_difference_on_grouped_data_is_rarely_called_beats_or_worse(accuracy, groups):
    # nominal 2.5 % each; the paired group bootstrap this replaced said one or the other in 7.5-13 %
    verdicts = [simulated_verdicts(Scenario(accuracy, groups, min_groups=1), seed)[0] for seed in range(150)]
    assert verdicts.count(BEATS) <= 6 and verdicts.count(WORSE) <= 6, (verdicts.count(BEATS), verdicts.count(WORSE))


def test_a_true_gain_of_2_points_is_found_with_25_patients_per_class():
    verdicts = [simulated_verdicts(Scenario(0.97, 25, gain=0.02), seed)[0] for seed in range(60)]
    assert verdicts.count(BEATS) >= 48, verdicts.count(BEATS)  # bench: 9x % at this grid point


def test_four_null_models_rarely_give_any_beats_after_holm():
    family = Scenario(0.97, 13, models=4, min_groups=1)
    runs = [simulated_rows(family, seed) for seed in range(60)]
    assert sum(any(r[VERDICT_COLUMN] == BEATS for r in rows) for rows in runs) <= 3


def test_holm_is_applied_across_the_models_of_a_task():
    # four identical models, each fixing the baseline's one error in each of 7 of 20 Pro patients
    y = np.repeat([0, 1], 400)
    groups = np.arange(800) // 20
    baseline = np.ones(800, bool)
    baseline[np.arange(7) * 20 + 400] = False
    models = {f"m{i}": np.ones(800, bool) for i in range(4)}
    one = baseline_verdicts(y=y, groups=groups, baseline=baseline, models={"m0": models["m0"]}, margin=0.01, seed=0)
    four = baseline_verdicts(y=y, groups=groups, baseline=baseline, models=models, margin=0.01, seed=0)
    p = one[0]["p_vs_colour_baseline"]
    assert p < ALPHA < 4 * p and one[0][VERDICT_COLUMN] == BEATS
    assert [r["p_vs_colour_baseline_holm"] for r in four] == pytest.approx([4 * p] * 4)
    assert {r[VERDICT_COLUMN] for r in four} == {UNDETERMINED}  # alone it beats; one of four does not


def test_the_difference_is_paired_image_by_image():
    # patients differ a lot (shared by both models); the model fixes one baseline error in each of 16 patients.
    # Paired, that is clear; resampling the two models independently would drown it in the patient spread.
    rng = np.random.default_rng(0)
    y, groups = np.repeat([0, 1], 640), np.arange(1280) // 40
    baseline = rng.uniform(size=1280) >= np.repeat(rng.uniform(0, 0.5, 32), 40)
    model = baseline.copy()
    model[np.flatnonzero(~baseline)[np.unique(groups[~baseline], return_index=True)[1][:16]]] = True
    d = paired_comparison(y, groups, model, baseline, seed=0)
    assert d["diff"] == pytest.approx(16 / 640 / 2)
    assert d["ci_low"] > 0 and d["p_greater"] < 0.001
    assert d["ci_high"] - d["ci_low"] < 0.02  # independent resampling: about 0.1 wide
    rows = baseline_verdicts(y=y, groups=groups, baseline=baseline, models={"m": model}, margin=0.01, seed=0)
    assert rows[0][VERDICT_COLUMN] == BEATS


def test_four_errors_in_four_patients_at_the_ceiling_are_not_a_win():
    # the case: 13 Benign and 20 Pro-B blocks of 40; a perfect model; the baseline misses one image in
    # each of 4 patients. A sign test over the 4 discordant groups gives one-sided p = 1/16.
    y, groups = np.repeat([0, 1], [520, 800]), np.arange(1320) // 40
    baseline = np.ones(1320, bool)
    baseline[[0, 45, 600, 700]] = False
    d = paired_comparison(y, groups, np.ones(1320, bool), baseline, seed=0)
    assert d["p_greater"] >= 1 / 16 and d["discordant_groups"] == 4
    assert sign_flip_p(np.full(4, 0.001), flips=100, seed=0) == (1 / 16, 1.0)
    rows = baseline_verdicts(
        y=y, groups=groups, baseline=baseline, models={"m": np.ones(1320, bool)}, margin=0.01, seed=0
    )
    assert rows[0][VERDICT_COLUMN] == EQUIVALENT and rows[0]["diff_vs_colour_baseline_ci_low"] > -0.01


def test_the_verdict_says_undetermined_and_why():
    common = {"p_beats": 0.5, "p_worse": 0.5, "margin": 0.01, "fewest_groups": 13}
    assert decide(**common, ci=(-0.004, 0.006)) == (EQUIVALENT, "interval within ±0.01")
    assert decide(**common, ci=(-0.03, 0.02)) == (UNDETERMINED, "interval too wide for ±0.01")
    assert decide(**{**common, "p_beats": 0.001}, ci=(0.01, 0.05))[0] == BEATS
    assert decide(**{**common, "p_worse": 0.001}, ci=(-0.26, -0.13))[0] == WORSE
    few = decide(**{**common, "p_worse": 0.001, "fewest_groups": 4}, ci=(-0.26, -0.13))
    assert few == (UNDETERMINED, f"too few groups: 4 in a class, {MIN_GROUPS_PER_CLASS} needed")
    assert decide(**common, ci=(float("nan"), 0.1))[0] == UNDETERMINED


def test_one_error_never_gives_a_narrower_interval_than_none():
    y, groups = np.repeat([0, 1], 32), np.arange(64) // 4  # 64 images from 16 patients
    weights = group_bootstrap_weights(y, groups, 1000, 0)
    perfect = np.eye(2)[y]
    none = metric_intervals(weights, y, perfect, groups)
    assert none["balanced_accuracy"] == pytest.approx((0.578, 1.0), abs=1e-3)  # counted by images: 0.872
    assert none["accuracy"] == pytest.approx(clopper_pearson(16, 16), abs=1e-9)
    for wrong in range(3):
        proba = perfect.copy()
        proba[np.arange(wrong) * 4, :] = proba[np.arange(wrong) * 4, ::-1]  # errors in `wrong` patients
        one = metric_intervals(weights, y, proba, groups)
        for metric in ("accuracy", "balanced_accuracy"):
            assert one[metric][1] - one[metric][0] >= none[metric][1] - none[metric][0], (wrong, metric)
            assert one[metric][0] <= none[metric][0]


def test_duplicated_test_images_widen_the_group_interval_but_not_the_image_level_one():
    rng = np.random.default_rng(0)
    unique = 300
    y0 = np.repeat([0, 1], unique // 2)
    correct0 = rng.uniform(size=unique) < 0.85
    y, correct, groups = np.repeat(y0, 3), np.repeat(correct0, 3), np.repeat(np.arange(unique), 3)
    proba = np.eye(2)[np.where(correct, y, 1 - y)]
    images = np.arange(len(y))
    image_level = metric_intervals(group_bootstrap_weights(y, images, 2000, 1), y, proba, images)
    grouped = metric_intervals(group_bootstrap_weights(y, groups, 2000, 1), y, proba, groups)
    once = metric_intervals(
        group_bootstrap_weights(y0, np.arange(unique), 2000, 1),
        y0,
        np.eye(2)[np.where(correct0, y0, 1 - y0)],
        np.arange(unique),
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
            low, high = metric_intervals(group_bootstrap_weights(y, g, 400, t), y, proba, g)["accuracy"]
            hits[name] += low <= 0.8 <= high
    assert hits["group"] / trials >= 0.88, hits
    assert hits["image"] / trials < hits["group"] / trials - 0.1, hits  # images-as-independent undercovers


def test_twelve_perfect_predictions_get_the_exact_interval_not_one_to_one():
    y = np.repeat([0, 1], 6)
    proba = np.eye(2)[y]
    intervals = metric_intervals(group_bootstrap_weights(y, np.arange(12), 200, 0), y, proba, np.arange(12))
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


def test_too_few_groups_per_class_give_no_verdict_however_clear_the_difference():
    from alldag.stats import groups_per_class

    y = np.repeat([0, 1], 8)
    one_group_each = np.repeat(["Benign#1", "Pro#1"], 8)
    assert groups_per_class(y, one_group_each) == 1
    many = np.array([f"g{i // 2}" for i in range(16)])
    assert groups_per_class(y, many) == 4 < MIN_GROUPS_PER_CLASS
    rows = baseline_verdicts(y=y, groups=many, baseline=y == 0, models={"m": np.ones(16, bool)}, margin=0.01, seed=0)
    assert rows[0][VERDICT_COLUMN] == UNDETERMINED and rows[0]["verdict_reason"].startswith("too few groups: 4")
