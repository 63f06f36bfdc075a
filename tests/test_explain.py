"""alldag.explain: the pure heatmap functions (no model needed)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alldag.explain import (
    choose_images,
    heatmap_agreement,
    lime_segments_to_heatmap,
    load_mask,
    normalise_heatmap,
    resize_heatmap,
)


def _blob(size, cy, cx, sigma):
    yy, xx = np.mgrid[0:size, 0:size]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2)).astype(np.float32)


def test_normalise_heatmap():
    heat = np.array([[-2.0, 0.0], [1.0, 4.0]])
    out = normalise_heatmap(heat)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.0], [0.25, 1.0]])
    assert heat[0, 0] == -2.0  # input untouched


def test_normalise_heatmap_all_zero_or_negative_stays_zero():
    np.testing.assert_array_equal(normalise_heatmap(np.zeros((3, 3))), np.zeros((3, 3)))
    np.testing.assert_array_equal(normalise_heatmap(-np.ones((2, 2))), np.zeros((2, 2)))


def test_resize_heatmap():
    heat = np.arange(16, dtype=np.float32).reshape(4, 4)
    out = resize_heatmap(heat, 10)
    assert out.shape == (10, 10)
    assert out.dtype == np.float32
    assert heat.min() <= out.min() and out.max() <= heat.max()
    # increasing along both axes is kept
    assert (np.diff(out, axis=0) >= -1e-5).all() and (np.diff(out, axis=1) >= -1e-5).all()
    np.testing.assert_allclose(resize_heatmap(np.full((2, 2), 0.5), 7), np.full((7, 7), 0.5), atol=1e-6)
    assert resize_heatmap(np.ones((1, 1)), 5).shape == (5, 5)


def test_lime_segments_to_heatmap():
    segments = np.array([[0, 0, 1, 1],
                         [0, 0, 1, 1],
                         [2, 2, 3, 3],
                         [2, 2, 3, 3]])
    heat = lime_segments_to_heatmap(segments, [(0, 0.5), (1, -0.2), (2, 0.25)])
    np.testing.assert_allclose(heat, [[1.0, 1.0, 0.0, 0.0],
                                      [1.0, 1.0, 0.0, 0.0],
                                      [0.5, 0.5, 0.0, 0.0],
                                      [0.5, 0.5, 0.0, 0.0]])
    assert heat.dtype == np.float32 and heat.shape == segments.shape


def test_lime_segments_all_negative_is_zero():
    segments = np.array([[0, 1], [1, 0]])
    np.testing.assert_array_equal(lime_segments_to_heatmap(segments, [(0, -1.0), (1, -0.5)]), np.zeros((2, 2)))


def test_agreement_identical_maps():
    a = _blob(40, 15, 20, 6) + 0.01 * np.arange(1600, dtype=np.float32).reshape(40, 40) / 1600
    out = heatmap_agreement(a, a.copy())
    assert out["spearman"] == pytest.approx(1.0)
    assert out["top_iou"] == pytest.approx(1.0)
    assert set(out) == {"spearman", "top_iou"}  # no mask, no mask metrics


def test_agreement_disjoint_blobs():
    a, b = _blob(40, 8, 8, 4), _blob(40, 32, 32, 4)
    out = heatmap_agreement(a, b)
    assert out["top_iou"] == 0.0
    assert out["spearman"] < 0


def test_agreement_partial_overlap_iou():
    a = np.zeros((10, 10), np.float32)
    b = np.zeros((10, 10), np.float32)
    a[:, :2] = 1.0   # top 20% of a: columns 0-1
    b[:, 1:3] = 1.0  # top 20% of b: columns 1-2
    out = heatmap_agreement(a, b)
    assert out["top_iou"] == pytest.approx(10 / 30)


def test_agreement_mask_metrics():
    size = 30
    mask = np.zeros((size, size), bool)
    mask[5:20, 5:20] = True
    a = np.zeros((size, size), np.float32)
    a[8:16, 8:16] = _blob(size, 12, 12, 3)[8:16, 8:16]  # all its mass inside the mask
    b = _blob(size, 26, 26, 3)  # peak outside the mask
    out = heatmap_agreement(a, b, mask)
    assert out["a_in_mask"] == pytest.approx(1.0)
    assert out["a_pointing"] == 1.0
    assert out["b_pointing"] == 0.0
    assert 0.0 <= out["b_in_mask"] < 0.05
    expected_b = b[mask].sum() / b.sum()
    assert out["b_in_mask"] == pytest.approx(expected_b, rel=1e-5)


def test_agreement_empty_mask_is_ignored():
    a = _blob(10, 3, 3, 2)
    out = heatmap_agreement(a, a, np.zeros((10, 10), bool))
    assert "a_in_mask" not in out and "b_pointing" not in out


def test_agreement_constant_map():
    a = _blob(20, 5, 5, 3)
    out = heatmap_agreement(a, np.full((20, 20), 0.3, np.float32))
    assert math.isnan(out["spearman"])
    zero = heatmap_agreement(np.zeros((5, 5)), np.zeros((5, 5)), np.ones((5, 5), bool))
    assert math.isnan(zero["spearman"]) and math.isnan(zero["top_iou"])
    assert math.isnan(zero["a_in_mask"]) and math.isnan(zero["b_in_mask"])


def test_choose_images_first_per_class():
    test = pd.DataFrame({
        "image_id": ["Pro/c.jpg", "Benign/b.jpg", "Pro/a.jpg", "Benign/z.jpg", "Benign/a.jpg", "Pro/b.jpg"],
        "label": ["Pro", "Benign", "Pro", "Benign", "Benign", "Pro"],
        "y": [1, 0, 1, 0, 0, 1],
    }, index=[10, 11, 12, 13, 14, 15])
    chosen = choose_images(test, 2)
    assert chosen["image_id"].tolist() == ["Benign/a.jpg", "Benign/b.jpg", "Pro/a.jpg", "Pro/b.jpg"]
    assert list(chosen.index) == [0, 1, 2, 3]
    assert choose_images(test, 1)["image_id"].tolist() == ["Benign/a.jpg", "Pro/a.jpg"]
    assert len(choose_images(test, 10)) == 6


def test_choose_images_orders_by_task_class_index():
    test = pd.DataFrame({"image_id": ["Benign/a.jpg", "Pro/a.jpg"], "label": ["Benign", "Pro"], "y": [1, 0]})
    assert choose_images(test, 1)["label"].tolist() == ["Pro", "Benign"]


def test_load_mask(synthetic_root):
    seg = synthetic_root / "Segmented" / "Benign" / "WBC-Benign-001.jpg"
    mask = load_mask(str(seg), 64)
    assert mask.shape == (64, 64) and mask.dtype == bool
    assert 0.01 < mask.mean() < 0.5
    assert load_mask("", 64) is None
    assert load_mask(str(synthetic_root / "missing.jpg"), 64) is None
