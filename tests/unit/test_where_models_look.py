"""alldag.where_models_look: the per-task verdict on hand-built per-image tables whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alldag.attribution_metrics import corner_region, map_metrics
from alldag.where_models_look import FALLBACK_SOURCES, method_verdict, verdict_table, where_models_look

SIZE = 40


def _rows(maps_of, n_images=12, seed=0, label="Pro"):
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
                    "image_id": f"{label}{i}",
                    "label": label,
                    "method": method,
                    "mask_source": FALLBACK_SOURCES[0] if has_mask else "none",
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
    assert gradcam["verdict"] == "leukocytes" and gradcam["leukocytes"]["median"] > 5
    assert gradcam["leukocytes"]["median_ci"][0] > 1 and gradcam["background"]["median"] < 0.5
    assert lime["verdict"] == "corner" and lime["corner"]["median"] > 5 and lime["leukocytes"]["median"] < 0.5
    assert plus["verdict"] == "chance" and plus["leukocytes"]["median_ci"][0] < 1 < plus["leukocytes"]["median_ci"][1]
    assert verdict["verdict"] == "disagree"
    assert verdict["not_scored_without_mask"] == 1 and verdict["mask_sources"] == {
        "segmented": 0,
        FALLBACK_SOURCES[0]: 11,
        "none": 1,
    }
    assert gradcam["leukocytes"]["n"] == 11 and gradcam["corner"]["n"] == 12  # the corner needs no mask
    assert gradcam["leukocytes_by_class"]["Pro"]["median"] == pytest.approx(gradcam["leukocytes"]["median"])
    assert gradcam["leukocytes_by_source"][FALLBACK_SOURCES[0]]["mean"] == pytest.approx(gradcam["leukocytes"]["mean"])
    sentence = verdict["sentence"]
    assert sentence.startswith("four_class: by Grad-CAM the models put a median ") and sentence.endswith(".")
    assert "the methods disagree (Grad-CAM: look at the leukocytes, LIME: look at the scale-bar corner" in sentence
    assert "1 image(s) without a usable leukocyte mask are not scored" in sentence
    assert sentence.count(". ") == 0  # one sentence
    table = verdict_table(verdict)
    assert list(table["method"]) == ["Grad-CAM", "Grad-CAM++", "LIME"]
    assert table.loc[0, "leukocytes by class (median; mean)"].startswith("Pro ")


def test_uniform_maps_are_exactly_chance():
    verdict = where_models_look(
        "t", _rows(lambda mask, corner: {"gradcam": np.ones((SIZE, SIZE)) * 2, "lime": np.ones((SIZE, SIZE))})
    )
    for method in ("gradcam", "lime"):
        for region in ("leukocytes", "background", "corner"):
            assert verdict["methods"][method][region]["median"] == pytest.approx(1.0)
            assert verdict["methods"][method][region]["mean"] == pytest.approx(1.0)
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


def test_the_median_and_mean_are_of_per_image_ratios_not_a_ratio_of_means():
    """A large (wrong) mask must not outweigh the rest: two images with a mask of 10 % and a share of 0.4 (4x
    chance), one with a mask of 60 % and a share of 0.6 (1x). Mean share over mean area would say 1.8x."""
    rows = pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "a", "b", "c"],
            "label": "Pro",
            "method": ["gradcam"] * 3 + ["uniform"] * 3,
            "mask_source": "segmented",
            "mask_mass": [0.4, 0.4, 0.6, 0.1, 0.1, 0.6],
            "background_mass": [0.6, 0.6, 0.4, 0.9, 0.9, 0.4],
            "mask_area": [0.1, 0.1, 0.6] * 2,
            "corner_mass": 0.09,
            "corner_ratio": 1.0,
        }
    )
    cells = where_models_look("t", rows)["methods"]["gradcam"]["leukocytes"]
    assert cells["median"] == pytest.approx(4.0) and cells["mean"] == pytest.approx(3.0)
    assert cells["n"] == 3 and cells["images"] == 3


def test_a_blast_only_map_beats_a_red_cell_only_map_when_the_mask_is_the_blast():
    """Fields of one blast among red cells, the mask the blast: a map on the blast scores far above chance,
    a map on the red cells below it, image by image and in the verdict."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]

    def disc(cy, cx, r):
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r

    rows = []
    for i in range(10):
        blast = disc(*rng.uniform(12, 28, 2), 6)
        red = np.zeros((SIZE, SIZE), bool)
        for _ in range(8):
            red |= disc(*rng.uniform(0, SIZE, 2), 4)
        red &= ~blast
        maps = {"gradcam": blast * 1.0, "lime": red * 1.0, "uniform": np.ones((SIZE, SIZE))}
        rows += [
            {"image_id": f"f{i}", "label": "Pro", "method": m, "mask_source": "segmented"}
            | map_metrics(heat, blast, corner_region(SIZE, 0.3))
            for m, heat in maps.items()
        ]
    table = pd.DataFrame(rows)
    by_image = table.pivot(index="image_id", columns="method", values="mask_ratio")
    assert (by_image["gradcam"] > 3 * by_image["uniform"]).all() and (by_image["lime"] < 0.5).all()
    verdict = where_models_look("benign_vs_pro", table)["methods"]
    assert verdict["gradcam"]["leukocytes"]["median_ci"][0] > verdict["lime"]["leukocytes"]["median_ci"][1]
    assert verdict["gradcam"]["verdict"] == "leukocytes" and verdict["lime"]["verdict"] == "background"


def test_the_sentence_says_when_a_class_masks_come_mostly_from_the_fallback():
    fallback = FALLBACK_SOURCES[0]

    def maps_of(mask, corner):
        return {"gradcam": mask + 0.05, "lime": mask + 0.02}

    pro, benign = _rows(maps_of, label="ProB"), _rows(maps_of, label="Benign")
    benign["mask_source"] = benign["mask_source"].replace(fallback, "segmented")
    verdict = where_models_look("four_class", pd.concat([pro, benign]))
    assert verdict["mask_sources_by_class"]["ProB"][fallback] == 11
    assert verdict["fallback_classes"] == {"ProB": {"fallback": 11, "masked": 11}}
    assert "the ProB masks come mostly from the fallback (11 of 11 images)" in verdict["sentence"]
    assert "Benign masks" not in verdict["sentence"]


def test_maps_without_positive_attribution_are_counted_not_scored():
    def maps_of(mask, corner):
        return {"gradcam": mask + 0.05, "lime": np.zeros((SIZE, SIZE))}  # LIME: no superpixel helped

    verdict = where_models_look("t", _rows(maps_of))
    lime = verdict["methods"]["lime"]
    assert lime["no_positive_attribution"] == 12 and verdict["methods"]["gradcam"]["no_positive_attribution"] == 0
    assert lime["leukocytes"]["n"] == 0 and lime["corner"]["n"] == 0 and math.isnan(lime["leukocytes"]["median"])
    assert "maps with no positive attribution (not scored): LIME 12" in verdict["sentence"]
    row = verdict_table(verdict).set_index("method").loc["LIME"]
    assert row["no_positive_attribution"] == 12 and row["leukocytes (× chance, median)"] == "–"


def test_faithfulness_against_random_orders_in_the_verdict():
    rows = _rows(lambda mask, corner: {"gradcam": mask + 0.05, "lime": mask + 0.02})
    rng = np.random.default_rng(0)
    for column, better in (
        ("deletion_auc_blur_vs_random", -0.2),
        ("insertion_auc_blur_vs_random", 0.2),
        ("deletion_auc_median_vs_random", -0.2),
        ("insertion_auc_median_vs_random", 0.2),
    ):
        noise = rng.normal(0, 0.02, len(rows))
        rows[column] = np.where(rows["method"] == "gradcam", better, 0.0) + noise
    verdict = where_models_look("t", rows)
    gradcam, lime = verdict["methods"]["gradcam"], verdict["methods"]["lime"]
    assert gradcam["beats_random"] == 4 and lime["beats_random"] == 0
    assert gradcam["faithfulness_vs_random"]["deletion_auc_blur_vs_random"]["mean"] == pytest.approx(-0.2, abs=0.02)
    assert (
        "a random pixel order is beaten (deletion and insertion, both fills) by Grad-CAM on 4 of 4"
        in (verdict["sentence"])
    )
    assert "LIME on 0 of 4" in verdict["sentence"]
    assert verdict_table(verdict).set_index("method").at["Grad-CAM", "deletion_auc_blur_vs_random"].endswith("✔")


def test_method_verdict_rules():
    def region(median, low, high):
        return {"median": median, "median_ci": [low, high]}

    assert method_verdict({"corner": region(3, 2, 4), "leukocytes": region(1.5, 1.2, 1.8)}) == "corner"
    assert method_verdict({"corner": region(1.2, 1.1, 1.3), "leukocytes": region(2, 1.5, 2.5)}) == "leukocytes"
    assert method_verdict({"corner": region(1, 0.8, 1.2), "leukocytes": region(0.6, 0.5, 0.8)}) == "background"
    assert method_verdict({"corner": region(1, 0.8, 1.2), "leukocytes": region(1.1, 0.9, 1.3)}) == "chance"
