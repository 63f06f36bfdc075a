"""Statistics (bootstrap, McNemar, calibration, Holm), the colour baseline and the comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from alldag import AlldagError
from alldag.baseline import colour_features, features_of, fit_colour_baseline
from alldag.compare import ComparisonOutputs, ComparisonSettings, compare_models
from alldag.data import scan_dataset
from alldag.evaluate import per_class_metrics
from alldag.split import SplitSettings, make_folds
from alldag.stats import (
    expected_calibration_error,
    group_bootstrap_weights,
    holm,
    mcnemar,
    metric_intervals,
    reliability,
)
from alldag.synthetic import generate_dataset
from alldag.tables import write_tsv_atomic


def accuracy(y, p):
    return float((p.argmax(axis=1) == y).mean())


def bootstrap_ci(y, proba, n_boot, seed):
    """The image-level bootstrap interval of accuracy (one group per image)."""
    images = np.arange(len(y))
    return metric_intervals(group_bootstrap_weights(y, images, n_boot, seed), y, proba, images)["accuracy"]


def test_bootstrap_ci_covers_the_true_accuracy_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    true_accuracy, n, hits, trials = 0.8, 150, 0, 200
    for t in range(trials):
        y = rng.integers(0, 2, n)
        correct = rng.uniform(size=n) < true_accuracy
        pred = np.where(correct, y, 1 - y)
        proba = np.eye(2)[pred]
        low, high = bootstrap_ci(y, proba, n_boot=300, seed=t)
        hits += low <= true_accuracy <= high
    assert 0.88 <= hits / trials <= 0.99, hits / trials


def test_bootstrap_ci_brackets_the_point_estimate_and_narrows_with_n():
    rng = np.random.default_rng(1)
    widths = []
    for n in (50, 800):
        y = rng.integers(0, 2, n)
        proba = np.eye(2)[np.where(rng.uniform(size=n) < 0.9, y, 1 - y)]
        low, high = bootstrap_ci(y, proba, n_boot=400, seed=0)
        assert low <= accuracy(y, proba) <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2


@pytest.mark.parametrize("only_a,only_b", [(10, 0), (7, 3), (5, 5), (0, 1), (30, 12)])
def test_mcnemar_matches_the_exact_binomial_test(only_a, only_b):
    both, neither = 20, 4
    a = np.array([True] * only_a + [False] * only_b + [True] * both + [False] * neither)
    b = np.array([False] * only_a + [True] * only_b + [True] * both + [False] * neither)
    result = mcnemar(a, b)
    assert (result["only_a_correct"], result["only_b_correct"]) == (only_a, only_b)
    assert result["p_value"] == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    if (only_a, only_b) == (10, 0):
        assert result["p_value"] == pytest.approx(2 * 0.5**10)


def test_mcnemar_without_disagreement_is_one():
    same = np.array([True, False, True])
    assert mcnemar(same, same)["p_value"] == 1.0


def test_ece_hand_computed():
    # 4 images at confidence 0.9 (3 right) and 2 at 0.6 (both right): ECE = 4/6*|0.75-0.9| + 2/6*|1-0.6|
    proba = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 2)
    y = np.array([0, 0, 0, 1, 0, 0])
    assert expected_calibration_error(y, proba) == pytest.approx(4 / 6 * 0.15 + 2 / 6 * 0.4)
    bins = [b for b in reliability(y, proba) if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in bins] == [(2, 1.0), (4, 0.75)]


def test_perfectly_calibrated_predictions_have_small_ece():
    rng = np.random.default_rng(2)
    conf = rng.uniform(0.5, 1, 20000)
    y = (rng.uniform(size=conf.size) > conf).astype(int)  # class 0 with probability conf
    proba = np.stack([conf, 1 - conf], axis=1)
    assert expected_calibration_error(y, proba) < 0.02


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def test_per_class_metrics_hand_computed():
    out = per_class_metrics(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0]), ["A", "B"])
    assert out["A"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert out["B"]["precision"] == pytest.approx(2 / 3) and out["B"]["recall"] == pytest.approx(2 / 3)


def test_colour_features_are_the_15_channel_statistics():
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = np.arange(16).reshape(4, 4)
    image[..., 2] = 200
    f = colour_features(image)
    assert f.shape == (15,)
    assert f[0] == pytest.approx(7.5) and f[1] == pytest.approx(np.arange(16).std())
    assert f[2:5] == pytest.approx(np.percentile(np.arange(16), [5, 50, 95]))
    assert f[5:10] == pytest.approx([0, 0, 0, 0, 0]) and f[10] == 200 and f[11] == 0


def _baseline_accuracy(tmp_path, colour_shortcut):
    # The synthetic smears carry the real images' class-correlated colours (REAL-SMEARS.md: 15 colour statistics
    # score 0.94-0.99 there), e.g. Pre-B's saturated red cells and crowded leukocytes against Early's.
    root = tmp_path / f"ALL{colour_shortcut}"
    generate_dataset(root, {"Early": 60, "Pre": 60}, seed=8, colour_shortcut=colour_shortcut)
    data = scan_dataset(root)
    data["y"] = data["label"].map({"Early": 0, "Pre": 1})
    manifest = make_folds(data, SplitSettings(1, 0.15, 0.3, seed=0))[0]
    train, test = manifest[manifest["split"] == "train"], manifest[manifest["split"] == "test"]
    model = fit_colour_baseline(features_of(train["path"]), train["y"].to_numpy(), seed=0)
    return (model.predict(features_of(test["path"])) == test["y"].to_numpy()).mean()


def test_colour_baseline_scores_as_on_real_smears_and_higher_with_a_planted_colour_shortcut(tmp_path):
    assert _baseline_accuracy(tmp_path, 0.0) > 0.8  # chance is 0.5; real Early vs Pre-B colours separate too
    assert _baseline_accuracy(tmp_path, 1.0) > 0.95


def test_image_level_baseline_refits_on_a_split_that_lets_patients_cross(tmp_path):
    from alldag.baseline import image_level_predictions

    root = tmp_path / "ALL"
    generate_dataset(root, {"Early": 24, "Pre": 24}, seed=8, size=32, fields_per_patient=4)
    data = scan_dataset(root)
    data["y"] = data["label"].map({"Early": 0, "Pre": 1})
    grouped = make_folds(data, SplitSettings(2, 0.15, 0.15, seed=0, block_size=4))
    naive = image_level_predictions(grouped[1], ["Early", "Pre"], SplitSettings(2, 0.15, 0.15, seed=0))
    assert (naive["group"] == naive["image_id"]).all() and set(naive["image_id"]) <= set(data["image_id"])
    assert len(naive) == 24 and naive[["p_Early", "p_Pre"]].sum(axis=1).to_numpy() == pytest.approx(1.0)
    naive_split = make_folds(data.assign(cluster=data["image_id"]), SplitSettings(2, 0.15, 0.15, seed=0))[1]
    patient = naive_split["image_id"].str.extract(r"(\d+)\.jpg")[0].astype(int).sub(1) // 4
    crossing = naive_split.groupby([naive_split["label"], patient])["split"].nunique()
    assert (crossing > 1).any()  # the image-level split puts one patient's fields on both sides
    assert (grouped[1].groupby("group")["split"].nunique() == 1).all()


def _predictions(tmp_path, name, fold, y, correct_rate, rng):
    n = len(y)
    pred = np.where(rng.uniform(size=n) < correct_rate, y, 1 - y)
    proba = np.where(np.eye(2)[pred] == 1, 0.8, 0.2)
    frame = pd.DataFrame(
        {
            "image_id": [f"f{fold}-{i}" for i in range(n)],
            "label": np.where(y == 0, "A", "B"),
            "y": y,
            "group": [f"g{fold}-{i // 3}" for i in range(n)],
            "predicted": np.where(pred == 0, "A", "B"),
            "correct": pred == y,
            "p_A": proba[:, 0],
            "p_B": proba[:, 1],
        }
    )
    path = tmp_path / f"{name}-{fold}.tsv"
    write_tsv_atomic(frame, path)
    return path


def comparison_outputs(folder) -> ComparisonOutputs:
    return ComparisonOutputs(comparison=folder / "c.tsv", paired=folder / "p.tsv", figure=folder / "c.png")


def test_compare_models_says_which_models_beat_the_baseline(tmp_path):
    rng = np.random.default_rng(3)
    rates = {"Good": 0.95, "Same": 0.62, "Worse": 0.2, "colour_baseline": 0.6}
    paths = {}
    ys = [np.repeat([0, 1], 60)[rng.permutation(120)] for _ in range(2)]
    for name, rate in rates.items():
        paths[name] = {fold: str(_predictions(tmp_path, name, fold, ys[fold], rate, rng)) for fold in range(2)}
    image_level = [_predictions(tmp_path, "image_level", fold, ys[fold], 0.9, rng) for fold in range(2)]
    summary = compare_models(
        predictions=paths,
        settings=ComparisonSettings("t", ("A", "B"), 300, 0, equivalence_margin=0.01),
        outputs=comparison_outputs(tmp_path),
        image_level=[str(p) for p in image_level],
    ).set_index("model")
    assert summary.loc["colour_baseline", "image_level_balanced_accuracy"] > 0.8  # the leaky split's number
    assert summary.loc["colour_baseline", "image_level_n_test"] == 240
    assert np.isnan(summary.loc["Good", "image_level_balanced_accuracy"])
    assert summary["verdict_vs_colour_baseline"].to_dict() == {
        "Good": "beats",
        "Same": "undetermined",
        "Worse": "worse",
        "colour_baseline": "",
    }
    assert summary.loc["Same", "verdict_reason"] == "interval too wide for ±0.01"
    # Holm across the task's three models
    assert summary.loc["Good", "p_vs_colour_baseline_holm"] >= summary.loc["Good", "p_vs_colour_baseline"]
    good = summary.loc["Good"]
    assert good["diff_vs_colour_baseline_ci_low"] > 0 and good["p_vs_colour_baseline"] < 0.01
    assert good["diff_vs_colour_baseline"] == pytest.approx(
        good["balanced_accuracy"] - summary.loc["colour_baseline", "balanced_accuracy"]
    )
    assert good["mcnemar_p_vs_colour_baseline"] < 1e-6
    assert summary.loc["Same", "p_vs_colour_baseline"] > 0.025
    assert summary.loc["Good", "n_test"] == 240 and summary.loc["Good", "n_groups"] == 80
    assert summary.loc["Good", "folds"] == 2 and summary.loc["Good", "accuracy_fold_sd"] >= 0
    back = pd.read_csv(tmp_path / "c.tsv", sep="\t", keep_default_na=False).set_index("model")
    assert back.loc["Same", "verdict_vs_colour_baseline"] == "undetermined"
    assert "not_better_than_colour_baseline" not in back
    paired = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    pair = paired[(paired["model_a"] == "Good") & (paired["model_b"] == "colour_baseline")].set_index("fold")
    assert sorted(pair.index.astype(str)) == ["0", "1", "all"]
    assert pair.loc["all", "mcnemar_p_value"] < 1e-6 and pair.loc["all", "n_images"] == 240
    assert pair.loc["all", "balanced_accuracy_diff"] == pytest.approx(good["diff_vs_colour_baseline"])
    assert pair.loc["all", "balanced_accuracy_diff_ci_low"] == pytest.approx(good["diff_vs_colour_baseline_ci_low"])
    assert pair.loc["0", "n_images"] == 120 and pair.loc["all", "p_holm"] >= pair.loc["all", "p_value"]
    assert pair.loc["all", "mcnemar_p_holm"] >= pair.loc["all", "mcnemar_p_value"]
    assert (tmp_path / "c.png").stat().st_size > 5000


def test_compare_models_refuses_models_tested_on_different_images(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 10)
    paths = [_predictions(tmp_path, m, 0, y, 0.8, rng) for m in ("A", "colour_baseline")]
    frame = pd.read_csv(paths[1], sep="\t")
    write_tsv_atomic(frame.assign(image_id=frame["image_id"] + "x"), paths[1])
    with pytest.raises(AlldagError, match="tested on different images") as exc:
        compare_models(
            predictions={"A": {0: str(paths[0])}, "colour_baseline": {0: str(paths[1])}},
            settings=ComparisonSettings("t", ("A", "B"), 50, 0, equivalence_margin=0.01),
            outputs=comparison_outputs(tmp_path),
        )
    assert "\n" not in str(exc.value)


def test_grouping_sensitivity_reports_the_baseline_under_every_grouping(tmp_path):
    from alldag.compare import grouping_sensitivity
    from alldag.tables import write_tsv_atomic

    rng = np.random.default_rng(0)
    paths = []
    for fold in range(2):
        frames = []
        for name, accuracy in (("appearance", 0.8), ("blocks of 4", 0.9), ("none", 1.0)):
            y = np.repeat([0, 1], 20)
            right = rng.uniform(size=40) < accuracy if accuracy < 1 else np.ones(40, bool)
            p1 = np.where(right == (y == 1), 0.9, 0.1)
            frames.append(
                pd.DataFrame(
                    {
                        "image_id": [f"{fold}-{i}" for i in range(40)],
                        "y": y,
                        "group": np.arange(40) // 4,
                        "p_A": 1 - p1,
                        "p_B": p1,
                        "grouping": name,
                    }
                )
            )
        paths.append(tmp_path / f"fold{fold}.tsv")
        write_tsv_atomic(pd.concat(frames), paths[-1])
    table = grouping_sensitivity([str(p) for p in paths], ["A", "B"], 200, 0, "appearance").set_index("grouping")
    assert list(table.index) == ["appearance", "blocks of 4", "none"]
    assert table.loc["none", "balanced_accuracy"] == 1.0 and table["n_test"].eq(80).all()
    assert table.loc["appearance", "balanced_accuracy"] < table.loc["blocks of 4", "balanced_accuracy"] < 1.0
    assert table["main"].tolist() == [True, False, False]
    assert (table["balanced_accuracy_ci_low"] <= table["balanced_accuracy"]).all()
