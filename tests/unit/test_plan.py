"""alldag.plan (the study's plan and its keyed file tables) and alldag.layout (path patterns)."""

from __future__ import annotations

import pytest

from alldag import AlldagError
from alldag import layout as L
from alldag.config import validate_config
from alldag.names import BASELINE_NAME
from alldag.plan import study_plan
from conftest import REPO


@pytest.fixture
def plan(schema_path):
    config = validate_config(
        {
            "backbones": ["VGG16", "MobileNet"],
            "backbone_overrides": {"MobileNet": {"image_size": 64}},
            "split": {"folds": 3},
            "train": {"weights": None, "image_size": 48},
        },
        schema_path,
    )
    return study_plan(config, synthetic=True, demo=False, source_kind="synthetic", basedir=REPO)


def test_fill_leaves_the_wildcards_it_is_not_given():
    assert L.fill(L.MODEL_DIR, backbone="VGG16") == "results/models/{task}/VGG16/fold{fold}"
    assert L.fill(L.MODEL_DIR, task="t", backbone="b", fold=2) == "results/models/t/b/fold2"


def test_tables_are_keyed_by_model_and_fold_whatever_the_order(plan):
    table = plan.per_model_fold(L.PREDICTIONS, "benign_vs_pro")
    assert list(table) == ["VGG16", "MobileNet", BASELINE_NAME]
    assert table["MobileNet"][2] == "results/evaluation/benign_vs_pro/MobileNet/fold2/predictions.tsv"
    runs = plan.tracked_runs("four_class")
    assert {(r["model"], r["fold"]) for r in runs} == {(m, f) for m in plan.compared_models for f in (0, 1, 2)}
    assert all(f"/{r['model']}/fold{r['fold']}/" in r["path"] for r in runs)


def test_each_model_gets_its_own_overrides_and_no_weights_file_without_imagenet(plan):
    assert plan.train["MobileNet"]["image_size"] == 64
    assert plan.train["VGG16"]["image_size"] == 48
    assert plan.weights.train_input("VGG16") == {}
    assert plan.weights.entry_of("VGG16") is None
    assert plan.weights.by_file == {}
    assert plan.preview_image_size == 64  # the augmentation preview: as sharp as the sharpest model sees it


def test_imagenet_backbones_get_their_weights_file_from_the_checksum_table(schema_path):
    config = validate_config({"backbones": ["VGG16"], "train": {"weights": "imagenet"}}, schema_path)
    plan = study_plan(config, synthetic=False, demo=False, source_kind="local", basedir=REPO)
    (file,) = plan.weights.by_file
    assert plan.weights.train_input("VGG16") == {"weights": f"{config['weights_cache']}/{file}"}
    assert plan.weights.fetch_entry(file)["backbone"] == "VGG16"


def test_the_report_reads_every_declared_file_once(plan):
    inputs = plan.report_inputs(["metrics", "run"])
    assert inputs["quarantine"] == [L.AUDIT["quarantine"]] and inputs["duplicates"] == [L.AUDIT["duplicates"]]
    # two tasks x three folds x (two trained models + the colour baseline)
    assert len(inputs["metrics"]) == len(set(inputs["metrics"])) == 2 * 3 * 3
    assert len(inputs["run"]) == 2 * 3 * 2


@pytest.mark.parametrize(
    ("trainers", "needle"),
    [({"VGG16": [], "MobileNet": ["train"]}, "no rule trains"), ({"VGG16": ["train", "train_x"]}, "trained by rules")],
)
def test_a_model_without_exactly_one_training_rule_is_one_line(plan, trainers, needle):
    with pytest.raises(AlldagError, match=needle) as exc:
        plan.check_trainers(trainers, {})
    assert "\n" not in str(exc.value)
