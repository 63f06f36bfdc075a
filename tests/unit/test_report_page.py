"""The report page from a small fake results tree: structure, headline numbers, summary.json, and a
report that marks missing results instead of crashing (what --keep-going runs get). No browser, no DAG.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from html import escape as html_escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alldag.headline import opening_paragraph, task_headline
from alldag.jobs import MODEL_OUTPUT_KINDS, ModelResult
from alldag.report import (
    ReportInputs,
    ReportOutputs,
    build_report,
    first_screen,
    per_class_recall,
    sig3,
    training_histories,
)
from alldag.verdicts import DISPLAY

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
    row = {
        "model": model,
        "verdict_vs_colour_baseline": verdict,
        "verdict_reason": "interval too wide for ±0.01" if verdict == "undetermined" else "",
        "diff_vs_colour_baseline": diff,
        "diff_vs_colour_baseline_ci_low": diff - 0.03,
        "diff_vs_colour_baseline_ci_high": diff + 0.03,
        "p_vs_colour_baseline": 0.01,
        "p_vs_colour_baseline_holm": 0.02,
        "mcnemar_p_vs_colour_baseline": 0.02,
        "n_test": 40,
        "n_groups": 16,
        "study_accuracy": float("nan"),
    }
    for m in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc"):
        row.update({m: ba, f"{m}_ci_low": ba - 0.05, f"{m}_ci_high": min(1.0, ba + 0.05), f"{m}_fold_sd": 0.0})
    return row


def per_class(recalls: dict[str, float]) -> dict:
    return {c: {"precision": r, "recall": r, "f1": r, "support": 10} for c, r in recalls.items()}


GLOBAL_KINDS = ("provenance", "audit", "quarantine", "duplicates")  # files of the whole run: no task
PER_TASK_KINDS = ("leakage", "augmentation", "preview", "comparison", "paired", "comparison_figure")


@dataclass
class FakeResults:
    """The report's keyed input table (as workflow/rules/common.smk's report_table makes it), config and outputs."""

    rows: list[dict]
    config: dict
    parent_run_file: str
    outputs: ReportOutputs

    def path(self, kind: str, model: str | None = None, task: str | None = TASK) -> str:
        """The file of one kind (of one model, for per-model kinds) in the first fold."""
        task = None if kind in GLOBAL_KINDS else task
        return next(r["path"] for r in self.rows if (r["task"], r["model"], r["kind"]) == (task, model, kind))

    def render(self, rows: list[dict] | None = None) -> str:
        return build_report(
            inputs=ReportInputs.from_table(self.rows if rows is None else rows),
            config=self.config,
            outputs=self.outputs,
            parent_run_file=self.parent_run_file,
        )


def keyed_rows(inputs: dict, per_model: dict[str, dict[str, str]]) -> list[dict]:
    """The keyed input table of the fake results tree: one task, fold 0."""

    def row(kind, path, task=TASK, model=None, fold=None):
        return {"task": task, "model": model, "fold": fold, "kind": kind, "path": path}

    return [
        *(row(kind, inputs[kind], None) for kind in GLOBAL_KINDS),
        *(row(kind, inputs[kind]) for kind in PER_TASK_KINDS),
        row("manifest", inputs["manifest"], fold=0),
        row("metrics", inputs["baseline_metrics"], model="colour_baseline", fold=0),
        *(row(kind, path, model=model, fold=0) for model, files in per_model.items() for kind, path in files.items()),
    ]


@pytest.fixture
def fake_results(tmp_path) -> FakeResults:
    """The report's inputs, config and outputs for one task, two CNNs and one fold."""
    r = tmp_path / "results"
    inputs = {
        "provenance": jsonfile(
            r / "data/dataset.json",
            {
                "source": "synthetic",
                "root": "x",
                "reason": "offline",
                "demo": True,
                "synthetic": True,
                "folder": "Original",
                "counts": {"Benign": 20, "Pro": 20},
                "verification": {"skipped": True},
                "manifest": None,
            },
        ),
        "audit": jsonfile(
            r / "data/audit.json",
            {
                "checked": 40,
                "usable": 40,
                "fixed": 0,
                "quarantined": 0,
                "quarantine_reasons": {},
                "mask_min_fraction": 0.02,
                "masks_nearly_empty": 0,
                "masks_missing": 0,
                "duplicate_clusters": 1,
                "exact_duplicate_clusters": 1,
                "near_threshold": 0.97,
                "images_in_duplicate_clusters": 2,
                "cross_class_clusters": 0,
            },
        ),
        "quarantine": tsv(r / "data/quarantine.tsv", pd.DataFrame(columns=["path", "reason"])),
        "duplicates": tsv(r / "data/duplicates.tsv", pd.DataFrame({"cluster": [0, 0], "path": ["a", "b"]})),
        "manifest": tsv(
            r / f"split/{TASK}/fold0/split_manifest.tsv",
            pd.DataFrame({"label": ["Benign", "Pro"] * 10, "split": ["train"] * 12 + ["val"] * 4 + ["test"] * 4}),
        ),
        "leakage": tsv(r / f"split/{TASK}/leakage_check.tsv", pd.DataFrame(columns=["fold", "cluster", "splits"])),
        "augmentation": jsonfile(
            r / f"augment/{TASK}/augmentation.json",
            {
                "rotation_degrees": 20,
                "brightness": 0.2,
                "horizontal_flip": False,
                "vertical_flip": False,
                "seed": 1,
            },
        ),
        "preview": png(r / f"augment/{TASK}/augmentation_preview.png"),
        "comparison": tsv(
            r / f"comparison/{TASK}/comparison.tsv",
            pd.DataFrame(
                [
                    comparison_row("MobileNet", 0.90, "beats", 0.15),
                    comparison_row("VGG16", 0.80, "undetermined", 0.05),
                    comparison_row("colour_baseline", 0.75, ""),
                ]
            ),
        ),
        "baseline_metrics": jsonfile(
            r / f"evaluation/{TASK}/colour_baseline/fold0/metrics.json",
            {"accuracy": 0.75, "balanced_accuracy": 0.75, "per_class": per_class({"Benign": 0.7, "Pro": 0.8})},
        ),
        "paired": tsv(
            r / f"comparison/{TASK}/paired_tests.tsv",
            pd.DataFrame(
                [
                    {
                        "model_a": "MobileNet",
                        "model_b": "VGG16",
                        "fold": "all",
                        "n_images": 40,
                        "accuracy_a": 0.9,
                        "accuracy_b": 0.8,
                        "balanced_accuracy_diff": 0.1,
                        "p_value": 0.2,
                        "p_holm": 0.4,
                        "mcnemar_only_a_correct": 5,
                        "mcnemar_only_b_correct": 1,
                        "mcnemar_p_value": 0.2,
                        "mcnemar_p_holm": 0.4,
                    }
                ]
            ),
        ),
        "comparison_figure": png(r / f"comparison/{TASK}/comparison.png"),
    }
    per_model = {model: {} for model in MODELS}
    for model, files in per_model.items():
        m, e, x = (r / f"{k}/{TASK}/{model}/fold0" for k in ("models", "evaluation", "explanations"))
        files["metrics"] = jsonfile(
            e / "metrics.json",
            {
                "accuracy": 0.9,
                "balanced_accuracy": 0.9,
                "macro_f1": 0.9,
                "roc_auc": 0.95,
                "n_test": 40,
                "chance_accuracy": 0.5,
                "per_class": per_class({"Benign": 0.85, "Pro": 0.95}),
            },
        )
        files["history"] = tsv(
            m / "history.tsv",
            pd.DataFrame(
                {
                    "epoch": [1, 2],
                    "phase": "full",
                    "loss": [1, 0.5],
                    "val_loss": [0.6, 0.9],
                    "accuracy": [0.5, 0.8],
                    "val_accuracy": [0.5, 0.7],
                    "kept": [False, True],
                }
            ),
        )
        for kind, where in (
            ("curves", m / "training_curves.png"),
            ("confusion", e / "confusion_matrix.png"),
            ("roc", e / "roc_curve.png"),
            ("reliability", e / "reliability.png"),
            ("explanation", x / "explanation_gallery.png"),
        ):
            files[kind] = png(where)
        files["explanation_summary"] = tsv(
            x / "explanation_summary.tsv",
            pd.DataFrame(
                [
                    {"method": method, "metric": metric, "n": 2, "mean": value, "sd": 0.1}
                    for method, shares in (("gradcam", (0.6, 0.05)), ("lime", (0.5, 0.1)), ("uniform", (0.2, 0.09)))
                    for metric, value in (
                        ("mask_mass", shares[0]),
                        ("corner_mass", shares[1]),
                        ("pointing", 1.0),
                        ("background_mass", 1 - shares[0]),
                        ("deletion_auc", 0.3),
                        ("insertion_auc", 0.7),
                    )
                ]
                + [
                    {"method": "gradcam_vs_lime", "metric": m, "n": 2, "mean": v, "sd": 0.1}
                    for m, v in (("spearman", 0.3), ("top_iou", 0.2))
                ]
            ),
        )
        weights = {"backbone": model, "weights_file": f"{model.lower()}_notop.h5", "weights_sha256": model[0] * 64}
        files["run"] = jsonfile(
            m / "mlflow_run.json",
            {"run_id": None, "record": f"record-{model}", "tracking_uri": "sqlite:///x.db", "params": weights},
        )
        # per image: 10 % of the field is leukocyte; Grad-CAM puts 40 % there (4x chance), LIME 10 % (1x)
        files["explanations"] = tsv(
            x / "explanations.tsv",
            pd.DataFrame(
                [
                    {
                        "image_id": f"i{i}",
                        "label": "Pro",
                        "predicted": "Pro",
                        "confidence": 0.9,
                        "mask_source": source,
                        "method": method,
                        "mask_mass": share if source != "none" else float("nan"),
                        "background_mass": 1 - share if source != "none" else float("nan"),
                        "mask_area": 0.1 if source != "none" else float("nan"),
                        "corner_mass": 0.09,
                        "corner_ratio": 1.0,
                    }
                    for i, source in enumerate(["segmented"] * 6 + ["stain"] * 3 + ["none"])
                    for method, share in (("gradcam", 0.4 + 0.01 * i), ("lime", 0.1), ("uniform", 0.1))
                ]
            ),
        )
        files["agreement"] = tsv(
            x / "agreement.tsv",
            pd.DataFrame(
                {
                    "image_id": [f"i{i}" for i in range(10)],
                    "pair": "gradcam_vs_lime",
                    "top_iou": 0.3,
                    "spearman": 0.2,
                }
            ),
        )
    jsonfile(r / "mlflow/parent.json", {"run_id": "parent-1", "tracking_uri": "sqlite:///x.db"})
    return FakeResults(
        rows=keyed_rows(inputs, per_model),
        config={
            "seed": 1,
            "train": {"image_size": 64, "epochs": 2, "weights": None},
            "evaluate": {"bootstrap_samples": 1000, "equivalence_margin": 0.01},
        },
        parent_run_file=str(r / "mlflow/parent.json"),
        outputs=ReportOutputs(
            page=str(r / "report.html"),
            table=str(r / "results_table.tsv"),
            fold_means=str(r / "results_summary.tsv"),
            headline=str(r / "summary.json"),
        ),
    )


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
    fake = fake_results
    page = Page(fake.render())
    assert set(SECTIONS) <= page.ids
    assert len(page.images) == 5 * len(MODELS) + 4  # per model 5; the preview, comparison, recall and curves plots
    for img in page.images:
        assert img["alt"] and img["src"].startswith("data:image/png;base64,")
        Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1]))).verify()
    first_cells = [row[0] for row in page.rows if row]
    assert {"MobileNet", "VGG16", "colour_baseline"} <= set(first_cells)  # the comparison table
    assert first_cells.count(TASK) >= len(MODELS)  # results table: one row per model
    assert {f"{TASK}/{m}/fold0" for m in MODELS} <= set(first_cells)  # provenance: record id per model
    html = Path(fake.outputs.page).read_text()
    assert [f"{TASK}/MobileNet/fold0", "record-MobileNet"] in page.rows  # the tag its MLflow run is found by
    assert html.count("record-MobileNet") == 2  # and with its figures
    assert "parent-1" in html and "mlflow ui --backend-store-uri sqlite:///x.db" in html
    # provenance: the pretrained weights file each backbone started from, once however many folds used it
    assert json.loads(Path(fake.outputs.headline).read_text())["mlflow"]["pretrained_weights"] == [
        {"backbone": m, "file": f"{m.lower()}_notop.h5", "sha256": m[0] * 64} for m in sorted(MODELS)
    ]
    assert "pretrained-weights" in page.ids and ["MobileNet", "mobilenet_notop.h5", "M" * 64] in page.rows
    assert "missing-banner" not in page.ids


def test_summary_json_holds_the_numbers_the_page_shows(fake_results):
    fake = fake_results
    html = fake.render()
    summary = json.loads(Path(fake.outputs.headline).read_text())
    headline = summary["tasks"][TASK]
    assert headline["best"] == "MobileNet" and headline["best_value"] == pytest.approx(0.90)
    assert headline["runner_up"] == "VGG16" and headline["margin_over_runner_up"] == pytest.approx(0.10)
    assert headline["verdict_vs_colour_baseline"] == "beats" and headline["models_compared"] == 2
    assert headline["models_not_shown_to_beat_colour_baseline"] == ["VGG16"]
    assert headline["models"]["VGG16"]["verdict_vs_colour_baseline"] == "undetermined"
    assert headline["models"]["VGG16"]["verdict_reason"] == "interval too wide for ±0.01"
    assert headline["models"]["colour_baseline"]["verdict_vs_colour_baseline"] is None
    assert headline["models"]["MobileNet"]["diff_vs_colour_baseline"] == pytest.approx(0.15)
    assert headline["models"]["MobileNet"]["n_groups"] == 16
    assert "not_better_than_colour_baseline" not in json.dumps(summary)
    assert (
        "Against the colour baseline on balanced accuracy (Holm-adjusted across the 2 models compared): "
        "<b>✔ beats:</b> MobileNet; <b>? undetermined:</b> VGG16." in html
    )
    assert summary["study"]["doi"] == "10.11648/j.ajbls.20210905.19"
    assert "Kim N." in headline["study"]["citation"] and "10.11648/j.ajbls.20210905.19" in html
    assert summary["synthetic"] is True and summary["missing"] == []
    assert summary["summary"] in html.replace("&#39;", "'")
    assert (
        "MobileNet is best with balanced accuracy 0.900 (95% CI 0.850–0.950, n = 40 images in 16 groups)"
        in summary["summary"]
    )
    assert (
        "it beats the colour baseline (0.750; difference +0.150, 95% CI +0.120 to +0.180, one-sided p = 0.01, "
        "0.02 after Holm adjustment across the 2 models compared)" in summary["summary"]
    )
    assert "not shown to beat the colour baseline either: VGG16" in summary["summary"]
    assert "(paired group-bootstrap p = 0.4 after Holm)" in summary["summary"]
    assert "Grad-CAM and LIME agree weakly (their top regions overlap 0.30 by IoU)" in summary["summary"]
    assert summary["explanations"][TASK]["gradcam_mask_mass"] == pytest.approx(0.6)


def test_where_the_models_look_is_in_summary_json_and_on_the_page(fake_results):
    fake = fake_results
    html = fake.render()
    where = json.loads(Path(fake.outputs.headline).read_text())["tasks"][TASK]["where_models_look"]
    gradcam, lime = where["methods"]["gradcam"], where["methods"]["lime"]
    assert gradcam["leukocytes"]["median"] == pytest.approx(4.4) and gradcam["leukocytes"]["n"] == 2 * 9
    assert gradcam["leukocytes"]["images"] == 9  # both models explain the same nine masked images
    assert gradcam["verdict"] == "leukocytes" and lime["verdict"] == "chance" and where["verdict"] == "disagree"
    assert where["mask_sources"] == {"segmented": 12, "stain": 6, "none": 2} and where["not_scored_without_mask"] == 2
    assert where["sentence"].startswith(f"{TASK}: by Grad-CAM the models put a median 4.4× chance on the leukocytes")
    assert (
        where["sentence"] in html
        and where["sentence"] in json.loads(Path(fake.outputs.headline).read_text())["summary"]
    )
    assert f'id="where-{TASK}"' in html


def test_missing_results_are_marked_in_place_not_a_crash(fake_results):
    fake = fake_results
    for kind in MODEL_OUTPUT_KINDS:
        Path(fake.path(kind, "VGG16")).unlink()  # VGG16 failed
    for kind in ("comparison", "paired", "comparison_figure"):
        Path(fake.path(kind)).unlink()  # so the task's comparison never ran
    page_text = fake.render()
    page = Page(page_text)
    assert "missing-banner" in page.ids
    assert page_text.count('class="missing"') >= 7  # 5 figures + explanations of VGG16, and the comparison
    assert f"{TASK}/VGG16/fold0/model" not in page_text  # no bogus paths
    summary = json.loads(Path(fake.outputs.headline).read_text())
    assert any("VGG16" in m for m in summary["missing"]) and any("comparison.tsv" in m for m in summary["missing"])
    table = pd.read_csv(fake.outputs.table, sep="\t")
    assert table.set_index("backbone").loc["VGG16", "status"].startswith("MISSING")
    assert table.set_index("backbone").loc["MobileNet", "status"] == "ok"
    assert table.set_index("backbone").loc["MobileNet", "best_epoch"] == 2  # the kept epoch, not the val_loss minimum


def test_headline_flags_a_best_model_that_does_not_beat_the_colour_baseline():
    table = pd.DataFrame([comparison_row("VGG16", 0.80, "worse", -0.05), comparison_row("colour_baseline", 0.85, "")])
    headline = task_headline(table)
    assert headline["best"] == "VGG16" and headline["verdict_vs_colour_baseline"] == "worse"
    assert headline["margin_over_colour_baseline"] == pytest.approx(-0.05)
    text = opening_paragraph({TASK: headline})
    assert "it is worse than the colour baseline (0.850; difference -0.050, 95% CI -0.080 to -0.020" in text
    assert "after Holm" not in text  # one model: nothing to adjust across


def test_headline_says_equivalent_with_the_margin_it_was_tested_at():
    table = pd.DataFrame(
        [comparison_row("VGG16", 0.80, "equivalent", 0.002), comparison_row("colour_baseline", 0.798, "")]
    )
    table["verdict_reason"] = ["interval within ±0.01", ""]
    text = opening_paragraph({TASK: task_headline(table)})
    assert "it is equivalent to the colour baseline (0.798; difference +0.002" in text
    assert text.endswith("one-sided p = 0.01; interval within ±0.01).")


def test_headline_says_undetermined_when_the_interval_straddles_zero():
    table = pd.DataFrame(
        [comparison_row("VGG16", 0.80, "undetermined", 0.01), comparison_row("colour_baseline", 0.79, "")]
    )
    headline = task_headline(table, task="four_class")
    assert headline["verdict_vs_colour_baseline"] == "undetermined"
    text = opening_paragraph({"four_class": headline})
    assert "it is undetermined whether it beats the colour baseline (0.790; difference +0.010" in text
    assert "one-sided p = 0.01; interval too wide for ±0.01)" in text
    assert "reported about 83% accuracy on four_class, the best of its four backbones" in text
    assert "Leakage check" not in text  # no image-level baseline was run


def test_headline_shows_how_much_an_image_level_split_inflates_the_shortcut():
    table = pd.DataFrame(
        [
            comparison_row("VGG16", 0.80, "beats", 0.1),
            comparison_row("colour_baseline", 0.70, "") | {"image_level_balanced_accuracy": 0.93},
        ]
    )
    headline = task_headline(table)
    assert headline["colour_baseline_image_level"] == pytest.approx(0.93)
    text = opening_paragraph({TASK: headline})
    assert (
        "Leakage check on benign_vs_pro: splitting by patient proxy instead of by image lowers the colour "
        "shortcut's balanced accuracy from 0.930 to 0.700."
    ) in text
    assert headline["models"]["VGG16"]["study_accuracy"] is None  # no per-backbone four-class figure


def test_headline_says_tie_instead_of_a_zero_margin():
    table = pd.DataFrame(
        [
            comparison_row("Xception", 1.0, "false", 0.0),
            comparison_row("VGG16", 1.0, "false", 0.0),
            comparison_row("colour_baseline", 1.0, ""),
        ]
    )
    text = opening_paragraph({TASK: task_headline(table)})
    assert "Xception and VGG16 tie for best with balanced accuracy 1.000" in text and "0.000 above" not in text


class VerdictTable(HTMLParser):
    """Rows of the first screen's verdict tables (cells as text), and where the section starts."""

    def __init__(self, text: str):
        super().__init__()
        self.rows, self._in, self._row, self._cell = [], False, None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table" and ("class", "verdict") in attrs:
            self._in = True
        elif self._in and tag == "tr":
            self._row = []
        elif self._in and tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self._in = False
        elif self._in and tag in ("td", "th") and self._row is not None:
            self._row.append(self._cell.strip())
        elif self._in and tag == "tr":
            self.rows.append(self._row)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_first_screen_is_one_verdict_row_per_model_before_the_paragraph(fake_results):
    fake = fake_results
    html = fake.render()
    rows = VerdictTable(html).rows
    assert rows[0] == [
        "model",
        "balanced accuracy (95% CI)",
        "minus colour baseline (95% CI)",
        "verdict vs colour baseline",
    ]
    assert rows[1:] == [
        ["MobileNet", "0.900 (0.850–0.950)", "+0.150 (+0.120 to +0.180)", "✔ beats"],
        ["VGG16", "0.800 (0.750–0.850)", "+0.0500 (+0.0200 to +0.0800)", "? undetermined"],
        ["colour_baseline", "0.750 (0.700–0.800)", "reference", "reference"],
    ]
    assert html.index('id="verdict"') < html.index('id="summary"') < html.index('id="data"')
    assert "(40 test images, 16 groups)" in html
    legend = html[html.index('class="note legend"') :]
    for word, (mark, _, meaning) in DISPLAY.items():  # the legend explains all four verdicts, from one place
        assert f"<b>{mark}</b>: {html_escape(meaning.replace('δ', '0.01'))}" in legend, word


def test_first_screen_shows_dashes_where_the_comparison_has_no_verdict_columns(fake_results):
    fake = fake_results
    old = pd.read_csv(fake.path("comparison"), sep="\t").drop(
        columns=[
            "verdict_vs_colour_baseline",
            "diff_vs_colour_baseline",
            "diff_vs_colour_baseline_ci_low",
            "diff_vs_colour_baseline_ci_high",
            "p_vs_colour_baseline",
            "n_groups",
        ]
    )
    tsv(Path(fake.path("comparison")), old)
    rows = VerdictTable(fake.render()).rows
    assert rows[1] == ["MobileNet", "0.900 (0.850–0.950)", "—", "—"]
    assert rows[3] == ["colour_baseline", "0.750 (0.700–0.800)", "reference", "reference"]


def test_where_the_models_look_sentence_is_shown_when_summary_json_has_it():
    table = pd.DataFrame([comparison_row("VGG16", 0.8, "worse", -0.02), comparison_row("colour_baseline", 0.82, "")])
    sentence = "The models put 1.2x chance on leukocytes (0.9-1.5): they mostly look at the background."
    with_it = first_screen({TASK: table}, {TASK: {"where_models_look": {"sentence": sentence}}})
    assert with_it[0]["sentence"] == sentence
    assert with_it[0]["rows"][0]["verdict"] == "✘ worse"
    assert with_it[0]["rows"][0]["difference"] == "−0.0200 (−0.0500 to +0.0100)"
    assert first_screen({TASK: table}, {TASK: {"best": "VGG16"}})[0]["sentence"] is None
    assert first_screen({TASK: None}, {})[0]["rows"] is None


@pytest.mark.parametrize(
    "value, text",
    [
        (0.912345, "0.912"),
        (1.0, "1.00"),
        (0.0, "0.00"),
        (0.05, "0.0500"),
        (12.345, "12.3"),
        (123.456, "123"),
        (1234.5, "1234"),
        (40.0, "40"),
        (7, "7"),
        (np.int64(3), "3"),
        (3.2e-7, "3.20e-07"),
        (-0.0213, "-0.0213"),
        (float("nan"), "—"),
        (None, "—"),
        (True, "True"),
    ],
)
def test_numbers_are_rounded_to_three_significant_digits_for_reading(value, text):
    assert sig3(value) == text


def test_tsvs_keep_full_precision_while_the_page_rounds(fake_results):
    fake = fake_results
    metrics = json.loads(Path(fake.path("metrics", "MobileNet")).read_text()) | {"balanced_accuracy": 0.9123456789}
    jsonfile(Path(fake.path("metrics", "MobileNet")), metrics)
    html = fake.render()
    table = pd.read_csv(fake.outputs.table, sep="\t").set_index("backbone")
    assert table.loc["MobileNet", "balanced_accuracy"] == 0.9123456789
    assert "0.9123456789" not in html and "<td>0.912</td>" in html


def test_recall_per_class_and_training_curves_of_every_model_join_the_report(fake_results):
    fake = fake_results
    page = Page(fake.render())
    alts = {img["alt"] for img in page.images}
    assert {f"{TASK}: recall per class", f"{TASK}: training curves of every model"} <= alts
    models = [ModelResult(TASK, b, 0, **{r["kind"]: r["path"] for r in fake.rows if r["model"] == b}) for b in MODELS]
    recall = per_class_recall(TASK, models, [fake.path("metrics", "colour_baseline")])
    assert recall.pivot(index="model", columns="class", values="recall").loc["colour_baseline"].tolist() == [0.7, 0.8]
    assert set(training_histories(TASK, models)["split"]) == {"train", "validation"}


def test_every_table_scrolls_inside_its_box(fake_results):
    fake = fake_results
    html = fake.render()
    assert html.count("<table") == html.count('<div class="scroll"><table') + 2  # run ids and versions: narrow


def test_first_screen_in_a_real_browser_at_1280_by_800(fake_results, tmp_path):
    """The demo's shape: two tasks, four backbones and the colour baseline each."""
    from browser import assert_first_screen_fits

    fake = fake_results
    five = pd.DataFrame(
        [
            comparison_row(m, ba, v, d)
            for m, ba, v, d in (
                ("Xception", 0.987654, "beats", 0.123456),
                ("VGG16", 0.95, "equivalent", 0.0023),
                ("VGG19", 0.5, "worse", -0.45),
                ("EfficientNetB0", 0.9, "undetermined", -0.05),
                ("colour_baseline", 0.95, "", float("nan")),
            )
        ]
    )
    comparisons = {t: tsv(tmp_path / f"{t}.tsv", five) for t in (TASK, "four_class")}
    two_tasks = [
        {**r, "task": t, "path": comparisons[t] if r["kind"] == "comparison" else r["path"]}
        for t in (TASK, "four_class")
        for r in fake.rows
        if r["task"] is not None
    ]
    fake.render([r for r in fake.rows if r["task"] is None] + two_tasks)
    shot = assert_first_screen_fits(Path(fake.outputs.page), "report-first-screen-fake.png")
    assert Image.open(shot).size == (1280, 800)


def test_an_empty_metric_cell_is_a_missing_number_not_a_crash(fake_results):
    """One explained image gives no agreement spread: the summary TSV holds an empty cell there."""
    fake = fake_results
    path = Path(fake.path("explanation_summary", "MobileNet"))
    summary = pd.read_csv(path, sep="\t")
    summary["mean"] = summary["mean"].astype(object)
    summary.loc[summary["metric"] == "spearman", "mean"] = ""
    summary.to_csv(path, sep="\t", index=False)
    fake.render()
    table = pd.read_csv(fake.outputs.table, sep="\t").set_index("backbone")
    assert pd.isna(table.loc["MobileNet", "gradcam_lime_spearman"])
    assert table.loc["VGG16", "gradcam_lime_spearman"] == pytest.approx(0.3)


def test_the_report_finds_each_input_by_its_key_not_by_its_place_in_the_table():
    """Two folds, two models, the colour baseline: rows in fold-major or model-major order give the same inputs."""

    def row(kind, task=None, model=None, fold=None):
        return {"task": task, "model": model, "fold": fold, "kind": kind, "path": f"{task}/{model}/{fold}/{kind}"}

    per_model = {
        (model, fold): [row(k, TASK, model, fold) for k in MODEL_OUTPUT_KINDS] for model in MODELS for fold in (0, 1)
    }
    common = [*(row(k) for k in GLOBAL_KINDS), *(row(k, TASK) for k in PER_TASK_KINDS)]
    per_fold = [
        r for fold in (1, 0) for r in (row("manifest", TASK, fold=fold), row("metrics", TASK, "colour_baseline", fold))
    ]
    model_major = common + per_fold + [r for m in MODELS for f in (0, 1) for r in per_model[(m, f)]]
    fold_major = per_fold[::-1] + [r for f in (1, 0) for m in MODELS for r in per_model[(m, f)]] + common[::-1]
    inputs = ReportInputs.from_table(model_major)
    assert ReportInputs.from_table(fold_major) == inputs
    assert [(m.backbone, m.fold) for m in inputs.models] == [(m, f) for m in MODELS for f in (0, 1)]
    assert inputs.models[1].metrics == f"{TASK}/MobileNet/1/metrics"
    assert inputs.split_manifests[TASK] == [f"{TASK}/None/0/manifest", f"{TASK}/None/1/manifest"]
    assert inputs.baseline_metrics[TASK] == [f"{TASK}/colour_baseline/{f}/metrics" for f in (0, 1)]
    assert inputs.comparisons[TASK]["figure"] == f"{TASK}/None/None/comparison_figure"


def test_the_report_reads_the_audit_tables_it_declares(fake_results, tmp_path):
    """quarantine.tsv and duplicates.tsv are keyed inputs: the page shows the declared files, wherever they lie."""
    elsewhere = tmp_path / "elsewhere"
    declared = {
        "duplicates": tsv(elsewhere / "dups.tsv", pd.DataFrame({"cluster": [0, 0], "path": ["declared_a.png", "b"]})),
        "quarantine": tsv(elsewhere / "q.tsv", pd.DataFrame(columns=["path", "reason"])),
    }
    rows = [r | {"path": declared.get(r["kind"], r["path"])} for r in fake_results.rows]
    assert "declared_a.png" in fake_results.render(rows)
    with pytest.raises(KeyError):  # a table without them is not a report's input table
        ReportInputs.from_table([r for r in rows if r["kind"] != "duplicates"])


def test_a_partial_report_marks_what_is_missing_and_never_raises(fake_results, capsys):
    """--keep-going after a failed job: the page is written with the missing results marked; a table it
    cannot use gives one line on stderr instead of an exception over the run's own error."""
    from alldag.report import write_partial_report

    outputs = {k: getattr(fake_results.outputs, k) for k in ("page", "table", "fold_means", "headline")}
    Path(fake_results.path("comparison")).unlink()  # the compare job failed
    rows = fake_results.rows
    assert write_partial_report(rows=rows, config=fake_results.config, outputs=outputs, parent_run_file="x")
    assert Path(outputs["page"]).is_file() and "partial report" in capsys.readouterr().err
    assert json.loads(Path(outputs["headline"]).read_text())["missing"]  # the comparison, marked missing
    broken = [r for r in rows if r["kind"] != "audit"]
    assert not write_partial_report(rows=broken, config=fake_results.config, outputs=outputs, parent_run_file="x")
    assert "no partial report" in capsys.readouterr().err


def test_the_mask_section_tabulates_sources_and_outlines_one_field_per_class(tmp_path):
    from PIL import Image

    from alldag.masks import write_mask_file
    from alldag.report import mask_section
    from alldag.synthetic import generated_field

    rows = []
    for cls, source in (("Benign", "segmented"), ("Pro", "stain")):
        image, mask = generated_field(cls, 1, 3)
        path, mask_path = tmp_path / f"{cls}.png", tmp_path / "masks" / f"{cls}.png"
        Image.fromarray(image).save(path)
        write_mask_file(mask, mask_path)
        rows.append((f"{cls}/1.jpg", cls, str(path), source, float(mask.mean()), 3, str(mask_path)))
    rows.append(("Pro/2.jpg", "Pro", str(tmp_path / "Pro.png"), "none", float("nan"), 0, ""))
    columns = ["image_id", "label", "path", "mask_source", "leukocyte_fraction", "mask_pieces", "mask_file"]
    pd.DataFrame(rows, columns=columns).to_csv(tmp_path / "images.tsv", sep="\t", index=False)
    section = mask_section(tmp_path / "images.tsv")
    assert [(e["label"], e["source"]) for e in section["examples"]] == [("Benign", "segmented"), ("Pro", "stain")]
    assert all(e["uri"].startswith("data:image/png;base64,") for e in section["examples"])
    for text in ("segmented", "stain", "none", "median_share", "median_pieces"):
        assert text in section["table"]
    assert mask_section(tmp_path / "missing.tsv") is None
