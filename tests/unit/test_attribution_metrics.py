"""alldag.attribution_metrics: each metric on hand-made maps whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from alldag.attribution_metrics import (
    agreement_metrics,
    attribution_order,
    corner_region,
    curve_auc,
    image_bootstrap,
    map_metrics,
    mass_share,
    mean_ci,
    perturbation_series,
    pointing_hit,
    summarise_explanations,
    superpixel_means,
    superpixel_spearman,
    top_iou,
    top_region,
)


def _blob(size, cy, cx, sigma):
    yy, xx = np.mgrid[0:size, 0:size]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)).astype(np.float32)


def _quadrants(size=8):
    """Segments 0..3: the four quadrants of a size x size image."""
    seg = np.zeros((size, size), int)
    h = size // 2
    seg[:h, h:], seg[h:, :h], seg[h:, h:] = 1, 2, 3
    return seg


def test_top_region_takes_the_top_share():
    heat = np.arange(100, dtype=np.float32).reshape(10, 10)
    region = top_region(heat, 20)
    assert region.sum() == 20 and region[8:].all() and not region[:8].any()
    # zeros never count as "top", even when fewer than k pixels are positive
    sparse = np.zeros((10, 10), np.float32)
    sparse[0, :5] = 1.0
    assert top_region(sparse, 20).sum() == 5
    assert not top_region(np.zeros((4, 4)), 20).any()


def test_ties_do_not_enlarge_the_top_region():
    lime_like = np.zeros((10, 10), np.float32)
    lime_like[:5] = 1.0  # one superpixel of 50 pixels with the top weight
    lime_like[5:] = 0.5
    for seed in range(3):
        region = top_region(lime_like, 20, np.random.default_rng(seed).random(100))
        assert region.sum() == 20 and region[:5].sum() == 20  # exactly k, all from the top superpixel
    a, b = (
        top_region(lime_like, 20, np.random.default_rng(0).random(100)),
        top_region(lime_like, 20, np.random.default_rng(1).random(100)),
    )
    assert not np.array_equal(a, b)  # which tied pixels: random with the seed
    assert top_iou(lime_like, lime_like.copy(), 20, np.random.default_rng(5)) == 1.0  # same keys for both maps
    assert top_region(np.ones((10, 10)), 20).sum() == 20  # a flat map too


def test_top_iou_identical_disjoint_partial():
    a = _blob(40, 15, 20, 6) + np.linspace(0, 0.01, 1600, dtype=np.float32).reshape(40, 40)
    assert top_iou(a, a.copy(), 20) == pytest.approx(1.0)
    assert top_iou(_blob(40, 8, 8, 4), _blob(40, 32, 32, 4), 20) == 0.0
    a, b = np.zeros((10, 10)), np.zeros((10, 10))
    a[:, :2], b[:, 1:3] = 1.0, 1.0  # top 20 %: columns 0-1 vs 1-2
    assert top_iou(a, b, 20) == pytest.approx(10 / 30)
    assert math.isnan(top_iou(np.zeros((5, 5)), np.zeros((5, 5)), 20))


def test_top_iou_depends_on_k():
    a = np.arange(100, dtype=np.float32).reshape(10, 10)
    b = a[::-1].copy()  # reversed rows: tops at opposite ends
    assert top_iou(a, b, 20) == 0.0
    assert top_iou(a, b, 100) == pytest.approx(98 / 100)  # each map's zero pixel is never "top"


def test_superpixel_means_and_spearman():
    seg = _quadrants()
    heat = seg.astype(np.float32) * 2.0  # quadrant q has value 2q
    np.testing.assert_allclose(superpixel_means(heat, seg), [0, 2, 4, 6])
    # identical ranking of superpixels -> 1, even if pixel values inside differ
    noisy = heat + np.random.default_rng(0).uniform(0, 0.1, heat.shape)
    assert superpixel_spearman(heat, noisy, seg) == pytest.approx(1.0)
    assert superpixel_spearman(heat, 6 - heat, seg) == pytest.approx(-1.0)
    assert math.isnan(superpixel_spearman(heat, np.ones_like(heat), seg))


def test_spearman_is_per_superpixel_not_per_pixel():
    seg = _quadrants()
    a = seg.astype(np.float32)
    b = a.copy()
    b[seg == 0] = np.linspace(0.5, 0, 16)  # detail inside segment 0; segment means keep their order
    assert superpixel_spearman(a, b, seg) == pytest.approx(1.0)
    assert spearmanr(a.ravel(), b.ravel()).statistic < 0.999  # a per-pixel correlation is not 1


def test_mass_share_and_corner_region():
    corner = corner_region(10, 0.3)
    assert corner.sum() == 9 and corner[7:, 7:].all()
    heat = np.zeros((10, 10), np.float32)
    heat[8, 9] = 3.0
    assert mass_share(heat, corner) == 1.0  # all mass in the corner
    assert mass_share(np.ones((10, 10)), corner) == pytest.approx(0.09)  # uniform map: the area fraction
    assert math.isnan(mass_share(np.zeros((10, 10)), corner))
    assert not corner_region(10, 0.01).any()


def test_corner_region_covers_the_synthetic_shortcut_bar():
    from alldag.synthetic import image_rng, render_smear

    for size in (64, 224):
        with_bar, _ = render_smear("Pro", image_rng(0, "Pro", 1), size, shortcut=1.0)
        without, _ = render_smear("Pro", image_rng(0, "Pro", 1), size, shortcut=0.0)
        changed = (with_bar != without).any(axis=-1)
        assert changed.any() and not (changed & ~corner_region(size, 0.3)).any()


def test_pointing_hit():
    mask = np.zeros((10, 10), bool)
    mask[2:5, 2:5] = True
    heat = np.zeros((10, 10))
    heat[3, 3] = 1.0
    assert pointing_hit(heat, mask) == 1.0
    heat[3, 3], heat[8, 8] = 0.5, 1.0
    assert pointing_hit(heat, mask) == 0.0
    assert pointing_hit(np.ones((10, 10)), mask) == pytest.approx(0.09)  # tied peaks: expected hit
    assert math.isnan(pointing_hit(np.zeros((10, 10)), mask))


def test_map_metrics():
    mask = np.zeros((10, 10), bool)
    mask[:5, :5] = True
    corner = corner_region(10, 0.3)
    heat = np.zeros((10, 10), np.float32)
    heat[1, 1], heat[9, 9] = 3.0, 1.0
    out = map_metrics(heat, mask, corner)
    assert out.pop("no_positive_attribution") is False
    assert out == pytest.approx(
        {
            "mask_mass": 0.75,
            "pointing": 1.0,
            "background_mass": 0.25,
            "corner_mass": 0.25,
            "mask_ratio": 3.0,
            "background_ratio": 1 / 3,
            "corner_ratio": 0.25 / 0.09,
            "mask_area": 0.25,
        }
    )
    uniform = map_metrics(np.ones((10, 10)), mask, corner)
    uniform.pop("no_positive_attribution")
    assert uniform == pytest.approx(
        {
            "mask_mass": 0.25,
            "pointing": 0.25,
            "background_mass": 0.75,
            "corner_mass": 0.09,
            "mask_ratio": 1.0,
            "background_ratio": 1.0,
            "corner_ratio": 1.0,
            "mask_area": 0.25,
        }
    )
    no_mask = map_metrics(heat, None, corner)
    assert math.isnan(no_mask["mask_mass"]) and math.isnan(no_mask["pointing"]) and no_mask["corner_mass"] == 0.25
    assert math.isnan(no_mask["mask_ratio"]) and math.isnan(no_mask["mask_area"])
    assert math.isnan(map_metrics(heat, np.zeros((10, 10), bool), corner)["background_mass"])
    blank = map_metrics(np.zeros((10, 10)), mask, corner)  # LIME when no superpixel helps: counted, no ratios
    assert blank["no_positive_attribution"] is True and blank["mask_area"] == 0.25
    assert all(math.isnan(blank[k]) for k in ("mask_ratio", "corner_ratio", "pointing", "background_ratio"))


@pytest.mark.parametrize("size,cells", [(32, 1), (64, 1), (224, 1), (224, 3)])
def test_mask_ratio_reads_the_same_on_every_size_and_cell_count(size, cells):
    """A uniform map scores 1.0; a map exactly on the mask scores the maximum, 1 / the mask's area fraction;
    a map half on, half off (by mass) scores the same share over area whatever the field."""
    yy, xx = np.mgrid[0:size, 0:size]
    mask = np.zeros((size, size), bool)
    for k in range(cells):
        mask |= (yy - size * (k + 1) / (cells + 1)) ** 2 + (xx - size / 2) ** 2 <= (size / 10) ** 2
    corner = corner_region(size, 0.3)
    assert map_metrics(np.ones((size, size)), mask, corner)["mask_ratio"] == pytest.approx(1.0)
    on_mask = map_metrics(mask.astype(np.float32), mask, corner)
    assert on_mask["mask_ratio"] == pytest.approx(1 / mask.mean()) and on_mask["background_ratio"] == 0.0
    half = np.where(mask, 0.5 / mask.sum(), 0.5 / (~mask).sum())
    assert map_metrics(half, mask, corner)["mask_ratio"] == pytest.approx(0.5 / mask.mean())
    assert map_metrics(half, mask, corner)["mask_mass"] == pytest.approx(0.5)


def test_agreement_metrics():
    seg = _quadrants()
    a = seg.astype(np.float32)
    same = agreement_metrics(a, a, seg, 25, np.random.default_rng(0))
    assert same == pytest.approx({"top_iou": 1.0, "spearman": 1.0})


def test_attribution_order_most_first_ties_random():
    heat = np.array([[0.1, 0.9], [0.5, 0.9]])
    order = attribution_order(heat, np.random.default_rng(0))
    assert set(order[:2]) == {1, 3} and list(order[2:]) == [2, 0]
    # a flat map gives a seeded random permutation, not raster order
    flat = attribution_order(np.ones((10, 10)), np.random.default_rng(1))
    assert sorted(flat) == list(range(100)) and list(flat) != list(range(100))
    np.testing.assert_array_equal(flat, attribution_order(np.ones((10, 10)), np.random.default_rng(1)))


def test_perturbation_series_deletion_and_insertion():
    image = np.full((4, 4, 3), 200, np.float32)
    baseline = np.zeros((4, 4, 3), np.float32)
    order = np.arange(16)[::-1]  # bottom-right first
    deletion = perturbation_series(image, baseline, order, 4, insert=False)
    assert deletion.shape == (5, 4, 4, 3)
    np.testing.assert_array_equal(deletion[0], image)
    np.testing.assert_array_equal(deletion[-1], baseline)
    assert (deletion[1][3] == 0).all() and (deletion[1][:3] == 200).all()  # first quarter removed = last row
    insertion = perturbation_series(image, baseline, order, 4, insert=True)
    np.testing.assert_array_equal(insertion[0], baseline)
    np.testing.assert_array_equal(insertion[-1], image)
    assert [int((s[..., 0] == 200).sum()) for s in insertion] == [0, 4, 8, 12, 16]


def test_deletion_auc_on_a_toy_model_that_reads_known_pixels():
    """p(class) = share of the 4 'evidence' pixels still present: the right order deletes them first."""
    image = np.zeros((8, 8, 3), np.float32)
    evidence = np.zeros((8, 8), bool)
    evidence[2, 2] = evidence[2, 5] = evidence[5, 2] = evidence[5, 5] = True
    image[evidence] = 1.0
    baseline = np.zeros_like(image)

    def model(batch):
        return batch[:, evidence, 0].mean(axis=1)

    rng = np.random.default_rng(0)
    right = evidence.astype(np.float32)
    wrong = 1.0 - right
    steps = 16
    auc = {
        name: (
            curve_auc(model(perturbation_series(image, baseline, attribution_order(h, rng), steps, False))),
            curve_auc(model(perturbation_series(image, baseline, attribution_order(h, rng), steps, True))),
        )
        for name, h in (("right", right), ("wrong", wrong), ("random", np.ones((8, 8))))
    }
    # the right map deletes all evidence in the first step: probability 0 from x = 1/16 on
    assert auc["right"][0] == pytest.approx(0.5 / steps)
    assert auc["right"][1] == pytest.approx(1 - 0.5 / steps)
    assert auc["wrong"][0] > auc["random"][0] > auc["right"][0]
    assert auc["wrong"][1] < auc["random"][1] < auc["right"][1]


def test_curve_auc():
    assert curve_auc([1, 1, 1]) == pytest.approx(1.0)
    assert curve_auc([1, 0]) == pytest.approx(0.5)
    assert curve_auc(np.linspace(0, 1, 11)) == pytest.approx(0.5)
    assert curve_auc([0.5, 0.5], reference=0.5) == pytest.approx(1.0)  # relative to the original probability
    assert math.isnan(curve_auc([0, 0], reference=0.0))


def test_mean_ci_is_one_bootstrap_for_every_metric():
    out = mean_ci([1.0, 2.0, 3.0, float("nan")])
    assert out["n"] == 3 and out["mean"] == pytest.approx(2.0) and out["sd"] == pytest.approx(1.0)
    assert out["interval"] == "bootstrap" and 1.0 <= out["ci_low"] < 2.0 < out["ci_high"] <= 3.0
    assert out == mean_ci([1.0, 2.0, 3.0])  # seeded
    one = mean_ci([0.4])
    assert one["mean"] == 0.4 and math.isnan(one["ci_low"])
    assert mean_ci([])["n"] == 0
    # shares near 0 never get an interval below 0 (a t-interval would)
    shares = mean_ci([0.0] * 9 + [0.3])
    assert shares["ci_low"] >= 0.0 and shares["ci_high"] <= 0.3
    hits = mean_ci([0, 0, 0, 1, 0, 0, 0, 0])  # Grad-CAM's 0/1 pointing hits
    tied = mean_ci([0, 0.5, 1, 0.25])  # LIME's expected hits of tied peaks: the same interval method
    assert hits["interval"] == tied["interval"] == "bootstrap"
    assert 0 <= hits["ci_low"] <= hits["ci_high"] <= 1 and 0 <= tied["ci_low"] <= tied["ci_high"] <= 1


def test_summarise_explanations():
    per_image = pd.DataFrame(
        {
            "image_id": ["a", "a", "b", "b", "c", "c"],
            "label": ["x", "x", "x", "x", "y", "y"],
            "predicted": "x",
            "confidence": 0.9,
            "mask_source": ["segmented"] * 4 + ["none"] * 2,
            "method": ["gradcam", "uniform"] * 3,
            "mask_mass": [0.6, 0.1, 0.8, 0.1, np.nan, np.nan],
            "pointing": [1.0, 0.1, 0.0, 0.1, np.nan, np.nan],
            "no_positive_attribution": [False, False, False, False, True, False],
        }
    )
    agreement = pd.DataFrame(
        {
            "image_id": ["a", "b"],
            "label": "x",
            "predicted": "x",
            "confidence": 0.9,
            "mask_source": "segmented",
            "pair": "gradcam_vs_lime",
            "top_iou": [0.2, 0.4],
            "spearman": [0.1, float("nan")],
        }
    )
    summary = summarise_explanations(per_image, agreement).set_index(["method", "label", "metric"])
    assert summary.loc[("gradcam", "all", "mask_mass"), "mean"] == pytest.approx(0.7)
    assert summary.loc[("gradcam", "all", "mask_mass"), "n"] == 2  # image c has no mask: not scored, not 0
    assert summary.loc[("gradcam", "x", "mask_mass"), "mean"] == pytest.approx(0.7)
    assert summary.loc[("gradcam", "y", "mask_mass"), "n"] == 0
    assert summary.loc[("gradcam", "all", "pointing"), "interval"] == "bootstrap"
    assert summary.loc[("gradcam", "all", "pointing"), "no_positive_attribution"] == 1
    assert summary.loc[("gradcam", "x", "pointing"), "no_positive_attribution"] == 0
    assert ("gradcam", "all", "no_positive_attribution") not in summary.index  # a count, not a metric
    assert summary.loc[("uniform", "all", "mask_mass"), "sd"] == 0.0
    assert summary.loc[("gradcam_vs_lime", "all", "top_iou"), "n"] == 2
    assert summary.loc[("gradcam_vs_lime", "all", "spearman"), "n"] == 1
    assert set(summary.columns) == {"n", "mean", "sd", "ci_low", "ci_high", "interval", "no_positive_attribution"}


def _clustered(copies: int):
    """12 images with one value each (two clusters of values), repeated `copies` times as if that many models
    had explained every image the same way."""
    values = np.r_[np.full(6, 1.0), np.linspace(2, 8, 6)]
    return np.tile(values, copies), np.tile([f"img{i}" for i in range(12)], copies)


@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_the_image_bootstrap_moves_whole_images(statistic):
    """Four models' identical rows of an image are one image's evidence, not four: the interval must equal
    the one of a single row per image (resampling rows would shrink it by about 2x)."""
    once = image_bootstrap(*_clustered(1), statistic)
    four = image_bootstrap(*_clustered(4), statistic)
    assert four["images"] == once["images"] == 12 and four["n"] == 48
    assert four["value"] == pytest.approx(once["value"])
    assert four["ci"] == pytest.approx(once["ci"])
    values, _ = _clustered(4)
    rows = np.random.default_rng(0).integers(0, len(values), (2000, len(values)))  # the old, row-wise bootstrap
    by_row = np.quantile(getattr(np, statistic)(values[rows], axis=1), [0.025, 0.975])
    assert four["ci"][1] - four["ci"][0] > 1.5 * (by_row[1] - by_row[0])


def test_weighted_medians_are_numpys_median_of_the_repeated_values():
    from alldag.attribution_metrics import _weighted_medians

    rng = np.random.default_rng(1)
    values = rng.normal(size=7)
    weights = rng.integers(0, 4, (50, 7))
    weights[:, 0] += 1  # at least one value per draw
    expected = [np.median(np.repeat(values, w)) for w in weights]
    np.testing.assert_allclose(_weighted_medians(values, weights), expected)


def test_image_bootstrap_median_matches_numpy_and_drops_nans():
    values = np.array([3.0, 1.0, np.nan, 2.0, 10.0])
    out = image_bootstrap(values, np.array(["a", "b", "c", "c", "d"]), "median")
    assert out["value"] == pytest.approx(np.nanmedian(values)) and out["n"] == 4 and out["images"] == 4
    assert 1.0 <= out["ci"][0] <= out["value"] <= out["ci"][1] <= 10.0
    single = image_bootstrap(np.array([1.0, 2.0]), np.array(["a", "a"]), "mean")
    assert single["value"] == 1.5 and all(math.isnan(v) for v in single["ci"])
    assert image_bootstrap(np.array([np.nan]), np.array(["a"]))["n"] == 0
