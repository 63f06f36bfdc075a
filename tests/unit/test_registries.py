"""The metric and explanation-method registries: a toy metric and a toy method, each registered in one place,
reach every output that lists metrics or methods (metrics.json, the comparison, summary.json, the report;
the explanation tables, the gallery, the verdict and the report). No DAG: the stages' functions on small
tables and the report's fake results tree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_explain import SETTINGS, _red_and_green, _red_model
from test_report_page import MODELS, TASK, fake_results  # noqa: F401 (fake_results is a fixture)

from alldag.attribution_metrics import corner_region, summarise_explanations
from alldag.compare import ComparisonOutputs, ComparisonSettings, compare_models
from alldag.evaluate import classification_metrics
from alldag.explain import UNIFORM, explain_images
from alldag.figures import explanation_gallery
from alldag.methods import METHODS, Attributions, Method
from alldag.metrics import METRICS, Metric
from alldag.names import BASELINE_NAME

TOY_METRIC, TOY_METHOD = "mean_confidence", "toy_centre"


def mean_confidence(y_true, proba) -> float:
    """The toy metric: the mean top-class probability (no vectorised bootstrap: the registry resamples it)."""
    return float(np.asarray(proba).max(axis=1).mean())


def centre_maps(job) -> Attributions:
    """The toy method: a bright square in the middle of every image, whatever the model says."""
    n, size = job.images.shape[:2]
    maps = np.zeros((n, size, size), np.float32)
    maps[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0
    return Attributions({TOY_METHOD: maps})


@pytest.fixture
def toy_metric(monkeypatch):
    monkeypatch.setitem(METRICS, TOY_METRIC, Metric(TOY_METRIC, "mean confidence", mean_confidence))


@pytest.fixture
def toy_method(monkeypatch):
    monkeypatch.setitem(METHODS, TOY_METHOD, Method(TOY_METHOD, "Toy centre", centre_maps))


def _predictions(folder: Path, model: str, correct_rate: float, rng) -> str:
    """One fold's predictions.tsv of a two-class model on 60 images in 20 groups."""
    y = np.repeat([0, 1], 30)
    predicted = np.where(rng.uniform(size=len(y)) < correct_rate, y, 1 - y)
    p_first = np.where(predicted == 0, rng.uniform(0.6, 0.95, len(y)), rng.uniform(0.05, 0.4, len(y)))
    frame = pd.DataFrame(
        {
            "image_id": [f"i{i}" for i in range(len(y))],
            "label": np.where(y == 0, "Benign", "Pro"),
            "y": y,
            "group": [f"g{i // 3}" for i in range(len(y))],
            "predicted": np.where(predicted == 0, "Benign", "Pro"),
            "correct": predicted == y,
            "p_Benign": p_first,
            "p_Pro": 1 - p_first,
        }
    )
    path = folder / f"{model}.tsv"
    frame.to_csv(path, sep="\t", index=False)
    return str(path)


def test_a_registered_metric_reaches_metrics_json_the_comparison_summary_json_and_the_report(
    toy_metric, request, tmp_path
):
    fake = request.getfixturevalue("fake_results")
    rng = np.random.default_rng(0)
    rates = {MODELS[0]: 0.9, MODELS[1]: 0.8, BASELINE_NAME: 0.7}
    predictions = {m: {0: _predictions(tmp_path, m, rate, rng)} for m, rate in rates.items()}
    for model in MODELS:  # each model's metrics.json as evaluate writes it: every registered metric
        frame = pd.read_csv(predictions[model][0], sep="\t")
        metrics = classification_metrics(frame["y"].to_numpy(), frame[["p_Benign", "p_Pro"]].to_numpy())
        assert metrics[TOY_METRIC] == pytest.approx(mean_confidence(None, frame[["p_Benign", "p_Pro"]].to_numpy()))
        path = Path(fake.path("metrics", model))
        path.write_text(json.dumps(json.loads(path.read_text()) | metrics))
    comparison = compare_models(
        predictions=predictions,
        settings=ComparisonSettings(TASK, ("Benign", "Pro"), 200, 0, equivalence_margin=0.01),
        outputs=ComparisonOutputs(fake.path("comparison"), fake.path("paired"), fake.path("comparison_figure")),
    ).set_index("model")
    row = comparison.loc[MODELS[0]]
    assert row[f"{TOY_METRIC}_ci_low"] <= row[TOY_METRIC] <= row[f"{TOY_METRIC}_ci_high"]
    assert row[f"{TOY_METRIC}_ci_low"] < row[f"{TOY_METRIC}_ci_high"]  # resampled by its point function

    html = fake.render()
    summary = json.loads(Path(fake.outputs.headline).read_text())
    assert summary["tasks"][TASK]["models"][MODELS[0]][TOY_METRIC] == pytest.approx(row[TOY_METRIC])
    assert pd.read_csv(fake.outputs.table, sep="\t")[TOY_METRIC].notna().all()
    assert f"{TOY_METRIC}_mean" in pd.read_csv(fake.outputs.fold_means, sep="\t")
    assert f"<th>{TOY_METRIC}_ci_low</th>" in html  # the comparison table on the page


def test_a_registered_method_reaches_the_explanation_tables_the_gallery_the_verdict_and_the_report(toy_method, request):
    size = 32
    images = _red_and_green(2, size, (27, 27), (12, 12))
    masks = [np.zeros((size, size), bool), None]
    masks[0][8:20, 8:20] = True
    maps, segments, _, _, method_rows, pair_rows = explain_images(_red_model(size), images, masks, SETTINGS, 0)
    assert list(maps) == ["gradcam", "gradcam_pp", "lime", TOY_METHOD]
    rows = pd.DataFrame(method_rows)
    toy = rows[rows["method"] == TOY_METHOD].set_index("index")
    assert toy.at[0, "mask_mass"] == pytest.approx(144 / 256)  # the 12x12 mask lies inside the 16x16 centre square
    assert {f"gradcam_vs_{TOY_METHOD}", f"lime_vs_{TOY_METHOD}"} <= set(pd.DataFrame(pair_rows)["pair"])
    means = summarise_explanations(rows.assign(image_id=rows["index"]).drop(columns="index"), pd.DataFrame(pair_rows))
    assert TOY_METHOD in set(means["method"])
    figure = explanation_gallery(
        images,
        maps,
        {m: ["", ""] for m in maps},
        segments,
        masks,
        ["segmented", "none"],
        corner_region(size, 0.3),
        ["a", "b"],
        "t",
    )
    assert any(ax.get_title().startswith("Toy centre") for ax in figure.axes)

    # the fake tree's explanation tables as the explain stage writes them, with the toy method's rows
    fake = request.getfixturevalue("fake_results")
    for model in MODELS:
        per_image = pd.read_csv(fake.path("explanations", model), sep="\t")
        extra = per_image[per_image["method"] == UNIFORM].assign(method=TOY_METHOD)
        extra[["mask_mass", "background_mass"]] = extra[["mask_mass", "background_mass"]].to_numpy() * [3, 0.5]
        pd.concat([per_image, extra]).to_csv(fake.path("explanations", model), sep="\t", index=False)
        summary = pd.read_csv(fake.path("explanation_summary", model), sep="\t")
        extra = summary[summary["method"] == UNIFORM].assign(method=TOY_METHOD)
        pd.concat([summary, extra]).to_csv(fake.path("explanation_summary", model), sep="\t", index=False)
    html = fake.render()
    summary = json.loads(Path(fake.outputs.headline).read_text())
    where = summary["tasks"][TASK]["where_models_look"]
    assert where["methods"][TOY_METHOD]["leukocytes"]["median"] == pytest.approx(3.0)
    assert "(LIME: 1.0×, 1.0×, 1.0×; Toy centre: 3.0×" in where["sentence"]
    assert f"{TOY_METHOD}_mask_mass" in summary["explanations"][TASK]
    assert "<td>Toy centre</td>" in html and f"<td>{TOY_METHOD}</td>" in html  # the verdict and methods tables
