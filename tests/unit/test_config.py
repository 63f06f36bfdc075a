"""alldag.config against workflow/schemas/config.schema.yaml."""

from __future__ import annotations

import copy

import pytest
import yaml

from alldag import AlldagError
from alldag.config import (
    apply_demo,
    check_backbone_overrides,
    deep_merge,
    schema_error,
    train_settings_for,
    validate_config,
)
from conftest import REPO


@pytest.fixture
def defaults(schema_path):
    return validate_config({}, schema_path)


def _one_line_error(config, schema_path) -> str:
    with pytest.raises(AlldagError) as exc:
        validate_config(config, schema_path)
    message = str(exc.value)
    assert "\n" not in message, repr(message)
    return message


def test_empty_config_gets_every_default(defaults, schema_path):
    assert defaults["train"]["epochs"] == 25
    assert defaults["train"]["image_size"] == 224
    assert defaults["train"]["weights"] == "imagenet"
    assert defaults["train"]["bn_momentum"] is None
    assert defaults["data"]["source"] == "auto"
    assert defaults["data"]["folder"] == "Original"
    assert defaults["data"]["max_images_per_class"] is None
    assert defaults["data"]["synthetic"] == {
        "images_per_class": 100,
        "seed": 7,
        "fields_per_patient": 4,
        "shortcut": 0.0,
        "colour_shortcut": 0.0,
    }
    assert defaults["split"] == {
        "folds": 5,
        "grouping": "auto",
        "appearance_threshold": "auto",
        "group_blocks": "auto",
        "val_fraction": 0.15,
        "test_fraction": 0.15,
    }
    assert defaults["data"]["verify"] == "strict"
    assert defaults["audit"] == {"image_size": 224, "near_duplicate_threshold": 0.97, "mask_min_fraction": 0.02}
    assert defaults["backbones"] == ["Xception", "VGG16", "VGG19", "MobileNet"]
    assert defaults["tasks"] == {"benign_vs_pro": ["Benign", "Pro"], "four_class": ["Benign", "Early", "Pre", "Pro"]}
    assert defaults["seed"] == 42
    assert defaults["explain"]["gradcam_layer"] is None
    assert defaults["backbone_overrides"] == {}
    assert isinstance(defaults["demo"], dict) and defaults["demo"]
    assert schema_error(defaults, schema_path) is None


def test_validate_config_fills_in_place_and_keeps_given_values(schema_path):
    config = {"train": {"epochs": 3}, "data": {"synthetic": {"seed": 1}}}
    out = validate_config(config, schema_path)
    assert out is config
    assert config["train"]["epochs"] == 3
    assert config["train"]["batch_size"] == 32  # sibling defaults filled
    assert config["data"]["synthetic"] == {
        "images_per_class": 100,
        "seed": 1,
        "fields_per_patient": 4,
        "shortcut": 0.0,
        "colour_shortcut": 0.0,
    }
    assert config["data"]["source"] == "auto"


@pytest.mark.parametrize("value,ok", [("auto", True), (40, True), (None, True), ("big", False), (0, False)])
def test_group_blocks_takes_auto_a_size_or_null(schema_path, value, ok):
    error = schema_error({"split": {"group_blocks": value}}, schema_path)
    assert (error is None) == ok, error


def test_repository_config_validates(repo_root, schema_path):
    config = yaml.safe_load((repo_root / "config.yaml").read_text())
    assert schema_error(config, schema_path) is None
    validated = validate_config(copy.deepcopy(config), schema_path)
    assert validated["train"]["epochs"] == config["train"]["epochs"]
    check_backbone_overrides(validated, schema_path)


def test_e2e_test_config_validates(repo_root, schema_path):
    path = repo_root / "tests" / "configs" / "tiny.yaml"
    if not path.is_file():
        pytest.skip("no tests/configs/tiny.yaml")
    validate_config(yaml.safe_load(path.read_text()), schema_path)


def test_typo_key_is_one_line_with_path(schema_path):
    message = _one_line_error({"train": {"epochz": 3}}, schema_path)
    assert "config error at train" in message and "epochz" in message


def test_unknown_top_level_key(schema_path):
    message = _one_line_error({"trian": {}}, schema_path)
    assert "top level" in message and "trian" in message


@pytest.mark.parametrize(
    "config,path",
    [
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"data": {"source": "s3"}}, "data.source"),
        ({"data": {"synthetic": {"shortcut": 1.5}}}, "data.synthetic.shortcut"),
        ({"split": {"test_fraction": 0}}, "split.test_fraction"),
        ({"train": {"image_size": 16}}, "train.image_size"),
        ({"tasks": {"solo": ["Benign"]}}, "tasks.solo"),
        ({"backbones": []}, "backbones"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_value_is_one_line_with_path(schema_path, config, path):
    message = _one_line_error(config, schema_path)
    assert f"config error at {path}:" in message
    assert "config.schema.yaml" in message


def test_bad_value_message_names_value(schema_path):
    assert "'s3'" in _one_line_error({"data": {"source": "s3"}}, schema_path)


def test_apply_demo_merges_overrides(defaults, schema_path):
    before = copy.deepcopy(defaults)
    merged = apply_demo(defaults, schema_path)
    assert merged["train"]["weights"] is None
    assert merged["train"]["image_size"] == before["demo"]["train"]["image_size"] != before["train"]["image_size"]
    # keys the demo does not mention are kept
    assert merged["train"]["dropout"] == before["train"]["dropout"]
    assert merged["train"]["recalibrate_bn"] == before["train"]["recalibrate_bn"]
    assert merged["data"]["source"] == "auto"
    assert merged["data"]["synthetic"]["seed"] == before["data"]["synthetic"]["seed"]
    assert merged["study"] == before["study"] and merged["tasks"] == before["tasks"]
    assert merged["mlflow"] == before["mlflow"]
    assert merged["demo"] == before["demo"]
    # every demo value landed
    for section, values in before["demo"].items():
        if isinstance(values, dict):
            for key, value in values.items():
                if not isinstance(value, dict):
                    assert merged[section][key] == value, (section, key)
        else:
            assert merged[section] == values
    assert defaults == before  # the input is not modified


def test_apply_demo_custom_and_invalid(schema_path):
    config = validate_config({"demo": {"train": {"epochs": 2}, "seed": 9}}, schema_path)
    merged = apply_demo(config, schema_path)
    assert merged["train"]["epochs"] == 2 and merged["seed"] == 9
    assert merged["train"]["image_size"] == 224  # this demo block does not set it
    bad = validate_config({"demo": {"train": {"epochs": 0}}}, schema_path)
    with pytest.raises(AlldagError) as exc:
        apply_demo(bad, schema_path)
    message = str(exc.value)
    assert "\n" not in message and "demo" in message and "train.epochs" in message


def test_default_demo_works_with_fewer_backbones(schema_path):
    config = validate_config({"backbones": ["MobileNet"]}, schema_path)
    check_backbone_overrides(config, schema_path)
    check_backbone_overrides(apply_demo(config, schema_path), schema_path)


def test_apply_demo_keeps_the_overrides_of_custom_architectures(tmp_path, schema_path):
    config = validate_config(
        {
            "backbones": ["MobileNet"],
            "custom_models": {"SmallCNN": str(tmp_path / "small_cnn.smk")},
            "backbone_overrides": {"SmallCNN": {"epochs": 3}},
        },
        schema_path,
    )
    merged = apply_demo(config, schema_path)
    assert train_settings_for(merged, "SmallCNN")["epochs"] == 3
    assert "VGG16" not in merged["backbone_overrides"]  # the demo's overrides of models not trained go


def test_deep_merge():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 4}
    out = deep_merge(base, {"a": {"b": 2}, "e": {"f": 1}})
    assert out == {"a": {"b": 2, "c": [1, 2]}, "d": 4, "e": {"f": 1}}
    out["a"]["c"].append(3)
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 4}
    assert deep_merge({"a": 1}, {"a": {"x": 1}}) == {"a": {"x": 1}}
    assert deep_merge({"a": {"x": 1}}, {"a": None}) == {"a": None}


def test_train_settings_for(schema_path):
    config = validate_config(
        {
            "backbones": ["MobileNet", "VGG16"],
            "backbone_overrides": {"MobileNet": {"learning_rate": 0.001, "epochs": 4}},
        },
        schema_path,
    )
    check_backbone_overrides(config, schema_path)
    mobile = train_settings_for(config, "MobileNet")
    assert mobile["learning_rate"] == 0.001 and mobile["epochs"] == 4
    assert mobile["batch_size"] == 32 and mobile["image_size"] == 224
    vgg = train_settings_for(config, "VGG16")
    assert vgg == config["train"]
    assert config["train"]["learning_rate"] == 0.0001  # base settings untouched


def test_override_for_untrained_backbone(schema_path):
    config = validate_config(
        {"backbones": ["MobileNet"], "backbone_overrides": {"ResNet50": {"epochs": 2}}}, schema_path
    )
    with pytest.raises(AlldagError) as exc:
        check_backbone_overrides(config, schema_path)
    message = str(exc.value)
    assert "\n" not in message and "ResNet50" in message


@pytest.mark.parametrize(
    "override,where",
    [
        ({"learning_rate": -1}, "train.learning_rate"),
        ({"epochz": 2}, "epochz"),
        ({"image_size": "big"}, "train.image_size"),
    ],
)
def test_invalid_override_value(schema_path, override, where):
    config = validate_config({"backbones": ["MobileNet"], "backbone_overrides": {"MobileNet": override}}, schema_path)
    with pytest.raises(AlldagError) as exc:
        check_backbone_overrides(config, schema_path)
    message = str(exc.value)
    assert "\n" not in message
    assert "backbone_overrides.MobileNet" in message and where in message


def test_custom_model_names_and_rule_files_are_checked(tmp_path, monkeypatch):
    from alldag import AlldagError
    from alldag.config import check_custom_models, found_from

    rule = tmp_path / "mine.smk"
    rule.write_text("")
    check_custom_models({"MyNet": str(rule)}, REPO)
    with pytest.raises(AlldagError, match="built-in model"):
        check_custom_models({"VGG16": str(rule)}, REPO)
    with pytest.raises(AlldagError, match="not found"):
        check_custom_models({"MyNet": str(tmp_path / "missing.smk")}, REPO)
    # A relative path: from the working directory first, else the workflow folder's shipped example.
    monkeypatch.chdir(tmp_path)
    assert found_from("mine.smk", REPO) == rule.relative_to(tmp_path)
    shipped = "workflow/rules/custom/small_cnn.smk"
    assert found_from(shipped, REPO) == REPO / shipped
    check_custom_models({"SmallCNN": shipped}, REPO)
    with pytest.raises(AlldagError, match="not found"):
        check_custom_models({"MyNet": "workflow/rules/custom/missing.smk"}, REPO)


def test_architecture_builders_load_by_module_or_file(tmp_path):
    from alldag import AlldagError
    from alldag.architectures import load_builder, small_cnn

    assert load_builder("alldag.architectures:small_cnn") is small_cnn
    (tmp_path / "nets.py").write_text("def tiny(n, size, settings):\n    return (n, size)\n")
    assert load_builder(f"{tmp_path}/nets.py:tiny")(2, 32, None) == (2, 32)
    with pytest.raises(AlldagError, match="could not be loaded"):
        load_builder("alldag.architectures:nope")
    with pytest.raises(AlldagError, match="must look like"):
        load_builder("small_cnn")
