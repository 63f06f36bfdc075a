"""alldag.where_models_look: the per-task verdict on hand-built per-image tables whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alldag.attribution_metrics import corner_region, map_metrics
from alldag.where_models_look import method_verdict, pooled_ratio, verdict_table, where_models_look

SIZE = 40


def _rows(maps_of, n_images=12, seed=0):
    """explanations.tsv-like rows: per image a random leukocyte disc (one image without a mask), the maps
    that maps_of(mask, corner) returns, and the uniform reference."""
    rng = np.random.default_rng(seed)
    corner = corner_region(SIZE, 0.3)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    rows = []
    for i in range(n_images):
        cy, cx, r = rng.uniform(10, 20), rng.uniform(10, 20), rng.uniform(4, 9)
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        has_mask = i != 0
        maps = maps_of(mask, corner) | {"uniform": np.ones((SIZE, SIZE))}
        for method, heat in maps.items():
            rows.append(
                {
                    "image_id": f"img{i}",
                    "label": "Pro",
                    "method": method,
                    "mask_source": "stain" if has_mask else "none",
                    **map_metrics(heat, mask if has_mask else None, corner),
                }
            )
    return pd.DataFrame(rows)


def test_a_map_on_the_cells_and_one_on_the_corner_and_a_uniform_one():
    draws = np.random.default_rng(1)

    def maps_of(mask, corner):
        noise = draws.uniform(0, 1, (SIZE, SIZE))  # a fresh noise map per image
        return {"gradcam": mask * 1.0 + 0.01, "lime": corner * 1.0 + 0.01, "gradcam_pp": noise}

    verdict = where_models_look("four_class", _rows(maps_of))
    gradcam, lime, plus = (verdict["methods"][m] for m in ("gradcam", "lime", "gradcam_pp"))
    assert gradcam["verdict"] == "leukocytes" and gradcam["leukocytes"]["ratio"] > 5
    assert gradcam["leukocytes"]["ci"][0] > 1 and gradcam["background"]["ratio"] < 0.5
    assert lime["verdict"] == "corner" and lime["corner"]["ratio"] > 5 and lime["leukocytes"]["ratio"] < 0.5
    assert plus["verdict"] == "chance" and plus["leukocytes"]["ci"][0] < 1 < plus["leukocytes"]["ci"][1]
    assert verdict["verdict"] == "disagree"
    assert verdict["not_scored_without_mask"] == 1 and verdict["mask_sources"] == {
        "segmented": 0,
        "stain": 11,
        "none": 1,
    }
    assert gradcam["leukocytes"]["n"] == 11 and gradcam["corner"]["n"] == 12  # the corner needs no mask
    assert gradcam["leukocytes_by_class"]["Pro"]["ratio"] == pytest.approx(gradcam["leukocytes"]["ratio"])
    sentence = verdict["sentence"]
    assert sentence.startswith("four_class: by Grad-CAM the models put ") and sentence.endswith(".")
    assert "the methods disagree (Grad-CAM: look at the leukocytes, LIME: look at the scale-bar corner" in sentence
    assert "1 image(s) without a usable leukocyte mask are not scored" in sentence
    assert sentence.count(". ") == 0  # one sentence
    table = verdict_table(verdict)
    assert list(table["method"]) == ["Grad-CAM", "Grad-CAM++", "LIME"]
    assert table.loc[0, "leukocytes by class (× chance)"].startswith("Pro ")


def test_uniform_maps_are_exactly_chance():
    verdict = where_models_look(
        "t", _rows(lambda mask, corner: {"gradcam": np.ones((SIZE, SIZE)) * 2, "lime": np.ones((SIZE, SIZE))})
    )
    for method in ("gradcam", "lime"):
        for region in ("leukocytes", "background", "corner"):
            assert verdict["methods"][method][region]["ratio"] == pytest.approx(1.0)
    assert verdict["verdict"] == "chance"
    assert "they look at the leukocytes no more than at the rest of the field" in verdict["sentence"]


def test_both_study_methods_on_the_cells_with_agreement():
    rows = _rows(lambda mask, corner: {"gradcam": mask + 0.05, "lime": mask + 0.02})
    agreement = pd.DataFrame(
        {
            "image_id": [f"img{i}" for i in range(12)],
            "pair": "gradcam_vs_lime",
            "top_iou": np.linspace(0.5, 0.7, 12),
            "spearman": 0.8,
        }
    )
    verdict = where_models_look("benign_vs_pro", rows, agreement)
    assert verdict["verdict"] == "leukocytes"
    assert verdict["agreement"]["gradcam_vs_lime"]["top_iou"]["mean"] == pytest.approx(0.6)
    assert (
        ": they look at the leukocytes; Grad-CAM and LIME agree strongly (their top regions overlap 0.60"
        in verdict["sentence"]
    )


def test_pooled_ratio_is_mean_share_over_mean_area_and_never_scores_a_missing_mask():
    out = pooled_ratio(np.array([0.2, 0.4, np.nan]), np.array([0.1, 0.1, 0.3]))
    assert out["n"] == 2 and out["ratio"] == pytest.approx(3.0) and out["share"] == pytest.approx(0.3)
    assert out["ci"][0] <= 3.0 <= out["ci"][1] and out["ci"][0] >= 2.0
    empty = pooled_ratio(np.array([np.nan]), np.array([np.nan]))
    assert empty["n"] == 0 and math.isnan(empty["ratio"])


def test_method_verdict_rules():
    def region(ratio, low, high):
        return {"ratio": ratio, "ci": [low, high]}

    assert method_verdict({"corner": region(3, 2, 4), "leukocytes": region(1.5, 1.2, 1.8)}) == "corner"
    assert method_verdict({"corner": region(1.2, 1.1, 1.3), "leukocytes": region(2, 1.5, 2.5)}) == "leukocytes"
    assert method_verdict({"corner": region(1, 0.8, 1.2), "leukocytes": region(0.6, 0.5, 0.8)}) == "background"
    assert method_verdict({"corner": region(1, 0.8, 1.2), "leukocytes": region(1.1, 0.9, 1.3)}) == "chance"
