"""Shortcut stress tests (alldag.stain, alldag.stress, alldag.external): the config errors, and a colour
shortcut that the probes and another lab's images expose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alldag import AlldagError
from alldag.config import external_with_defaults
from alldag.data import scan_dataset
from alldag.external import check_external, list_external
from alldag.jobs import ModelKey
from alldag.names import BASELINE_NAME
from alldag.stain import GREYSCALE, MACENKO, ProbeImageOutputs, ProbeImageSettings, write_probed_images
from alldag.stress import (
    ProbeScoreOutputs,
    ScoringSettings,
    SummarySettings,
    balanced_accuracy,
    prediction_rows,
    predictor,
    score_stain_probes,
    stain_headline,
    stain_sentence,
    summarise_stain_probes,
)
from alldag.synthetic import generate_dataset, generate_external_set

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
CLASSES = ("Benign", "Pro")


def test_an_empty_external_folder_stops_with_one_line(tmp_path):
    (tmp_path / "lab_b" / "lymphocytes").mkdir(parents=True)
    with pytest.raises(AlldagError) as err:
        check_external({"lab_b": {"folder": str(tmp_path / "lab_b"), "classes": {"lymphocytes": "Benign"}}})
    assert "external.lab_b" in str(err.value) and "no images" in str(err.value) and "\n" not in str(err.value)


def test_an_unmapped_external_label_stops_with_one_line(tmp_path):
    generate_external_set(tmp_path / "lab_b", {"Benign": 1, "Pro": 1}, 3)
    with pytest.raises(AlldagError) as err:
        check_external({"lab_b": {"folder": str(tmp_path / "lab_b"), "classes": {"Benign": "Benign"}}})
    assert "Pro" in str(err.value) and "classes map" in str(err.value) and "\n" not in str(err.value)
    check_external({"lab_b": {"folder": str(tmp_path / "lab_b"), "classes": {"Benign": "Benign", "Pro": "Pro"}}})


def test_synthetic_external_sets_get_the_schema_defaults():
    filled = external_with_defaults({"b": {"classes": {"Benign": "Benign"}, "synthetic": {"seed": 5}}}, SCHEMA)
    assert filled["b"]["manifest"] is None
    assert filled["b"]["synthetic"] == {
        "images_per_class": 12,
        "palette": "second_lab",
        "magnification": 2.0,
        "jpeg_quality": 60,
        "seed": 5,
    }


@pytest.fixture(scope="module")
def shortcut_fold(tmp_path_factory):
    """A binary fold of a colour_shortcut: 1.0 synthetic set (patients of 4 fields; a third of them tested)."""
    root = tmp_path_factory.mktemp("shortcut")
    generate_dataset(root / "data", {c: 32 for c in CLASSES}, 7, colour_shortcut=1.0, fields_per_patient=4)
    rows = scan_dataset(root / "data")
    number = rows["image_id"].str.extract(r"-(\d+)\.")[0].astype(int) - 1
    rows = rows.assign(
        y=rows["label"].map({c: i for i, c in enumerate(CLASSES)}),
        group=rows["label"] + (number // 4).astype(str),
        fold=0,
    )
    rows["split"] = np.where((number // 4) % 3 == 0, "test", "train")
    manifest = root / "split_manifest.tsv"
    rows.to_csv(manifest, sep="\t", index=False)
    return root, manifest


def test_a_colour_shortcut_falls_to_chance_under_macenko_and_greyscale(shortcut_fold):
    root, manifest = shortcut_fold
    probed = ProbeImageOutputs(str(root / "probed.tsv"), str(root / "probed"))
    write_probed_images(manifest=manifest, settings=ProbeImageSettings(seed=1), outputs=probed)
    outputs = ProbeScoreOutputs(str(root / "probes.tsv"), str(root / "probes.json"))
    settings = ScoringSettings(ModelKey("t", BASELINE_NAME, 0), CLASSES, 1)
    metrics = score_stain_probes(model=None, manifest=manifest, probed=probed.table, settings=settings, outputs=outputs)
    assert metrics["stain_as_is_balanced_accuracy"] >= 0.95
    assert metrics[f"stain_{MACENKO}_balanced_accuracy"] <= 0.65
    assert metrics[f"stain_{GREYSCALE}_balanced_accuracy"] <= 0.65
    table = summarise_stain_probes(
        predictions={BASELINE_NAME: {0: outputs.predictions}, "CNN": {0: outputs.predictions}},
        settings=SummarySettings(200, 1),
        output=root / "summary.tsv",
    )
    macenko = table[(table["model"] == BASELINE_NAME) & (table["probe"] == MACENKO)].iloc[0]
    assert macenko["diff_vs_as_is"] < -0.3 and macenko["diff_ci_low"] < macenko["diff_vs_as_is"]
    sentence = stain_sentence("benign_vs_pro", stain_headline(table))
    assert sentence.startswith(
        "benign_vs_pro: under stain normalisation (Macenko / Reinhard) the colour baseline falls"
    )


def test_a_colour_shortcut_falls_to_chance_on_a_second_lab(shortcut_fold, tmp_path):
    _, manifest = shortcut_fold
    generate_external_set(tmp_path / "lab_b", {c: 12 for c in CLASSES}, 11, magnification=2.0, jpeg_quality=60)
    images = list_external(tmp_path / "lab_b", {c: c for c in CLASSES})
    images = images.assign(y=images["label"].map({c: i for i, c in enumerate(CLASSES)}), group=images["image_id"])
    settings = ScoringSettings(ModelKey("t", BASELINE_NAME, 0), CLASSES, 1)
    proba = predictor(model=None, manifest=pd.read_csv(manifest, sep="\t"), settings=settings)(images)
    scored = prediction_rows(images, proba, list(CLASSES), ["image_id", "label", "y", "group"])
    assert balanced_accuracy(scored) <= 0.65
