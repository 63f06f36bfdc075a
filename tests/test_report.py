"""The report page from a small fake results tree: structure, headline numbers, summary.json, and a
report that marks missing results instead of crashing (what --keep-going runs get). No browser, no DAG.
"""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alldag.report import report_job
from alldag.summary import summary_paragraph, task_headline

TASK = "benign_vs_pro"
MODELS = ["MobileNet", "VGG16"]
SECTIONS = ["data-banner", "summary", "data", "comparison", "results", "provenance", "citation"]


def png(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 30, 3), 128, np.uint8)).save(path)
    return str(path)


def tsv(path: Path, frame: pd.DataFrame) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False)
    return str(path)


def jsonfile(path: Path, data: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


def comparison_row(model: str, ba: float, verdict: str, diff: float = float("nan")) -> dict:
    """A comparison.tsv row; verdict '' for the baseline, diff the balanced-accuracy difference to it."""
    row = {"model": model, "beats_colour_baseline": verdict, "diff_vs_colour_baseline": diff,
           "diff_vs_colour_baseline_ci_low": diff - 0.03, "diff_vs_colour_baseline_ci_high": diff + 0.03,
           "p_vs_colour_baseline": 0.01, "mcnemar_p_vs_colour_baseline": 0.02, "n_test": 40, "n_groups": 16,
           "study_accuracy": float("nan")}
    for m in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc"):
        row.update({m: ba, f"{m}_ci_low": ba - 0.05, f"{m}_ci_high": min(1.0, ba + 0.05), f"{m}_fold_sd": 0.0})
    return row


@pytest.fixture
def fake_results(tmp_path):
    """Inputs, params and outputs of the report rule for one task, two CNNs and one fold."""
    r = tmp_path / "results"
    inputs = {
        "provenance": jsonfile(r / "data/dataset.json", {
            "source": "synthetic", "root": "x", "reason": "offline", "demo": True, "synthetic": True,
            "folder": "Original", "counts": {"Benign": 20, "Pro": 20}, "verification": {"skipped": True},
            "manifest": None}),
        "audit": jsonfile(r / "data/audit.json", {
            "checked": 40, "usable": 40, "fixed": 0, "quarantined": 0, "quarantine_reasons": {},
            "mask_min_fraction": 0.02, "masks_nearly_empty": 0, "masks_missing": 0, "duplicate_clusters": 1,
            "exact_duplicate_clusters": 1, "near_threshold": 0.97, "images_in_duplicate_clusters": 2,
            "cross_class_clusters": 0}),
        "_quarantine": tsv(r / "data/quarantine.tsv", pd.DataFrame(columns=["path", "reason"])),
        "_duplicates": tsv(r / "data/duplicates.tsv", pd.DataFrame({"cluster": [0, 0], "path": ["a", "b"]})),
        "manifests": [tsv(r / f"split/{TASK}/fold0/split_manifest.tsv", pd.DataFrame(
            {"label": ["Benign", "Pro"] * 10, "split": ["train"] * 12 + ["val"] * 4 + ["test"] * 4}))],
        "leakage": [tsv(r / f"split/{TASK}/leakage_check.tsv", pd.DataFrame(columns=["fold", "cluster", "splits"]))],
        "augmentation": [jsonfile(r / f"augment/{TASK}/augmentation.json", {
            "rotation_degrees": 20, "brightness": 0.2, "horizontal_flip": False, "vertical_flip": False, "seed": 1})],
        "previews": [png(r / f"augment/{TASK}/augmentation_preview.png")],
        "comparison": [tsv(r / f"comparison/{TASK}/comparison.tsv", pd.DataFrame([
            comparison_row("MobileNet", 0.90, "true", 0.15), comparison_row("VGG16", 0.80, "undetermined", 0.05),
            comparison_row("colour_baseline", 0.75, "")]))],
        "paired": [tsv(r / f"comparison/{TASK}/paired_tests.tsv", pd.DataFrame([
            {"model_a": "MobileNet", "model_b": "VGG16", "fold": "all", "n_images": 40, "accuracy_a": 0.9,
             "accuracy_b": 0.8, "balanced_accuracy_diff": 0.1, "p_value": 0.2, "p_holm": 0.4,
             "mcnemar_only_a_correct": 5, "mcnemar_only_b_correct": 1, "mcnemar_p_value": 0.2, "mcnemar_p_holm": 0.4}]))],
        "comparison_figure": [png(r / f"comparison/{TASK}/comparison.png")],
    }
    for kind in ("metrics", "history", "curves", "confusion", "roc", "reliability", "explanation", "explanation_summary",
                 "run"):
        inputs[kind] = []
    for model in MODELS:
        m, e, x = (r / f"{k}/{TASK}/{model}/fold0" for k in ("models", "evaluation", "explanations"))
        inputs["metrics"].append(jsonfile(e / "metrics.json", {
            "accuracy": 0.9, "balanced_accuracy": 0.9, "macro_f1": 0.9, "roc_auc": 0.95, "n_test": 40,
            "chance_accuracy": 0.5}))
        inputs["history"].append(tsv(m / "history.tsv", pd.DataFrame(
            {"epoch": [1, 2], "phase": "full", "loss": [1, 0.5], "val_loss": [0.6, 0.9], "accuracy": [0.5, 0.8],
             "val_accuracy": [0.5, 0.7], "kept": [False, True]})))
        for kind, where in (("curves", m / "training_curves.png"), ("confusion", e / "confusion_matrix.png"),
                            ("roc", e / "roc_curve.png"), ("reliability", e / "reliability.png"),
                            ("explanation", x / "explanation_gallery.png")):
            inputs[kind].append(png(where))
        inputs["explanation_summary"].append(tsv(x / "explanation_summary.tsv", pd.DataFrame(
            [{"method": method, "metric": metric, "n": 2, "mean": value, "sd": 0.1}
             for method, shares in (("gradcam", (0.6, 0.05)), ("lime", (0.5, 0.1)), ("uniform", (0.2, 0.09)))
             for metric, value in (("mask_mass", shares[0]), ("corner_mass", shares[1]), ("pointing", 1.0),
                                   ("background_mass", 1 - shares[0]), ("deletion_auc", 0.3),
                                   ("insertion_auc", 0.7))]
            + [{"method": "gradcam_vs_lime", "metric": m, "n": 2, "mean": v, "sd": 0.1}
               for m, v in (("spearman", 0.3), ("top_iou", 0.2))])))
        inputs["run"].append(jsonfile(m / "mlflow_run.json", {"run_id": f"run-{model}", "tracking_uri": "sqlite:///x.db"}))
    del inputs["_quarantine"], inputs["_duplicates"]  # read beside audit.json, not rule inputs
    params = {"tasks": [TASK], "backbones": MODELS, "folds": [0], "parent_run_file": str(r / "mlflow/parent.json"),
              "config": {"seed": 1, "train": {"image_size": 64, "epochs": 2, "weights": None},
                         "evaluate": {"bootstrap_samples": 1000}}}
    jsonfile(r / "mlflow/parent.json", {"run_id": "parent-1", "tracking_uri": "sqlite:///x.db"})
    outputs = {"report": str(r / "report.html"), "table": str(r / "results_table.tsv"),
               "summary": str(r / "results_summary.tsv"), "summary_json": str(r / "summary.json")}
    return inputs, params, outputs


class Page(HTMLParser):
    """Ids, images and table rows of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.ids, self.images, self.rows, self._in_row, self._cells = set(), [], [], False, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs)
        if tag == "tr":
            self._in_row, self._cells = True, []

    def handle_endtag(self, tag):
        if tag == "tr":
            self.rows.append(self._cells)
            self._in_row = False

    def handle_data(self, data):
        if self._in_row and data.strip():
            self._cells.append(data.strip())


def test_page_has_every_section_working_images_and_expected_rows(fake_results):
    inputs, params, outputs = fake_results
    page = Page(report_job(inputs, params, outputs))
    assert set(SECTIONS) <= page.ids
    assert len(page.images) == 5 * len(MODELS) + 2  # per model 5 figures, the preview and the comparison plot
    for img in page.images:
        assert img["alt"] and img["src"].startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1]))).verify()
    first_cells = [row[0] for row in page.rows if row]
    assert {"MobileNet", "VGG16", "colour_baseline"} <= set(first_cells)  # the comparison table
    assert first_cells.count(TASK) >= len(MODELS)  # results table: one row per model
    assert {f"{TASK}/{m}/fold0" for m in MODELS} <= set(first_cells)  # provenance: run id per model
    html = Path(outputs["report"]).read_text()
    assert "run-MobileNet" in html and "parent-1" in html and "mlflow ui --backend-store-uri sqlite:///x.db" in html
    assert "missing-banner" not in page.ids


def test_summary_json_holds_the_numbers_the_page_shows(fake_results):
    inputs, params, outputs = fake_results
    html = report_job(inputs, params, outputs)
    summary = json.loads(Path(outputs["summary_json"]).read_text())
    headline = summary["tasks"][TASK]
    assert headline["best"] == "MobileNet" and headline["best_value"] == pytest.approx(0.90)
    assert headline["runner_up"] == "VGG16" and headline["margin_over_runner_up"] == pytest.approx(0.10)
    assert headline["beats_colour_baseline"] == "true"
    assert headline["models_not_shown_to_beat_colour_baseline"] == ["VGG16"]
    assert headline["models"]["VGG16"]["beats_colour_baseline"] == "undetermined"
    assert headline["models"]["colour_baseline"]["beats_colour_baseline"] is None
    assert headline["models"]["MobileNet"]["diff_vs_colour_baseline"] == pytest.approx(0.15)
    assert headline["models"]["MobileNet"]["n_groups"] == 16
    assert "not_better_than_colour_baseline" not in json.dumps(summary)
    assert "Beats the colour baseline on balanced accuracy: MobileNet; <b>undetermined:</b> VGG16." in html
    assert summary["study"]["doi"] == "10.11648/j.ajbls.20210905.19"
    assert "Kim N." in headline["study"]["citation"] and "10.11648/j.ajbls.20210905.19" in html
    assert summary["synthetic"] is True and summary["missing"] == []
    assert summary["summary"] in html.replace("&#39;", "'")
    assert ("MobileNet is best with balanced accuracy 0.900 (95% CI 0.850–0.950, n = 40 images in 16 groups)"
            in summary["summary"])
    assert ("it beats the colour baseline (0.750; difference +0.150, 95% CI +0.120 to +0.180, one-sided p = 0.01)"
            in summary["summary"])
    assert "not shown to beat the colour baseline either: VGG16" in summary["summary"]
    assert "(paired group-bootstrap p = 0.4 after Holm)" in summary["summary"]
    assert "Grad-CAM and LIME agree weakly (median per-superpixel Spearman 0.30, top-region IoU 0.20)" in summary["summary"]
    assert "LIME puts 50% of its attribution on the leukocyte and 10% in the scale-bar corner" in summary["summary"]
    assert summary["explanations"][TASK]["gradcam_mask_mass"] == pytest.approx(0.6)


def test_missing_results_are_marked_in_place_not_a_crash(fake_results):
    inputs, params, outputs = fake_results
    for kind in ("metrics", "history", "curves", "confusion", "roc", "reliability", "explanation", "explanation_summary",
                 "run"):
        Path(inputs[kind][1]).unlink()  # VGG16 failed
    for kind in ("comparison", "paired", "comparison_figure"):
        Path(inputs[kind][0]).unlink()  # so the task's comparison never ran
    page_text = report_job(inputs, params, outputs)
    page = Page(page_text)
    assert "missing-banner" in page.ids
    assert page_text.count('class="missing"') >= 7  # 5 figures + explanations of VGG16, and the comparison
    assert f"{TASK}/VGG16/fold0/model" not in page_text  # no bogus paths
    summary = json.loads(Path(outputs["summary_json"]).read_text())
    assert any("VGG16" in m for m in summary["missing"]) and any("comparison.tsv" in m for m in summary["missing"])
    table = pd.read_csv(outputs["table"], sep="\t")
    assert table.set_index("backbone").loc["VGG16", "status"].startswith("MISSING")
    assert table.set_index("backbone").loc["MobileNet", "status"] == "ok"
    assert table.set_index("backbone").loc["MobileNet", "best_epoch"] == 2  # the kept epoch, not the val_loss minimum


def test_headline_flags_a_best_model_that_does_not_beat_the_colour_baseline():
    table = pd.DataFrame([comparison_row("VGG16", 0.80, "false", -0.05), comparison_row("colour_baseline", 0.85, "")])
    headline = task_headline(table)
    assert headline["best"] == "VGG16" and headline["beats_colour_baseline"] == "false"
    assert headline["margin_over_colour_baseline"] == pytest.approx(-0.05)
    text = summary_paragraph({TASK: headline}, None, {}, False, [])
    assert "it does NOT beat the colour baseline (0.850; difference -0.050, 95% CI -0.080 to -0.020" in text


def test_headline_says_undetermined_when_the_interval_straddles_zero():
    table = pd.DataFrame([comparison_row("VGG16", 0.80, "undetermined", 0.01),
                          comparison_row("colour_baseline", 0.79, "")])
    headline = task_headline(table, task="four_class")
    assert headline["beats_colour_baseline"] == "undetermined"
    text = summary_paragraph({"four_class": headline}, None, {}, False, [])
    assert "it is undetermined whether it beats the colour baseline (0.790; difference +0.010" in text
    assert "reported about 83% accuracy on four_class, the best of its four backbones" in text
    assert "Leakage check" not in text  # no image-level baseline was run


def test_headline_shows_how_much_an_image_level_split_inflates_the_shortcut():
    table = pd.DataFrame([comparison_row("VGG16", 0.80, "true", 0.1),
                          comparison_row("colour_baseline", 0.70, "") | {"image_level_balanced_accuracy": 0.93}])
    headline = task_headline(table)
    assert headline["colour_baseline_image_level"] == pytest.approx(0.93)
    text = summary_paragraph({TASK: headline}, None, {}, False, [])
    assert ("Leakage check on benign_vs_pro: splitting by patient proxy instead of by image lowers the colour "
            "shortcut's balanced accuracy from 0.930 to 0.700.") in text
    assert headline["models"]["VGG16"]["study_accuracy"] is None  # no per-backbone four-class figure


def test_headline_says_tie_instead_of_a_zero_margin():
    table = pd.DataFrame([comparison_row("Xception", 1.0, "false", 0.0), comparison_row("VGG16", 1.0, "false", 0.0),
                          comparison_row("colour_baseline", 1.0, "")])
    text = summary_paragraph({TASK: task_headline(table)}, None, {}, False, [])
    assert "Xception and VGG16 tie for best with balanced accuracy 1.000" in text and "0.000 above" not in text
