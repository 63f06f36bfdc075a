"""alldag.backbones: the static registry agrees with keras.applications."""

from __future__ import annotations

import importlib

import pytest

from alldag import AlldagError
from alldag.backbones import REGISTRY, check_backbones, get_backbone

keras = pytest.importorskip("keras")


def _keras_model_names() -> set[str]:
    return {n for n in dir(keras.applications) if n[:1].isupper() and callable(getattr(keras.applications, n))}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_entry_exists_in_keras(name):
    bb = REGISTRY[name]
    assert bb.name == name
    assert callable(getattr(keras.applications, name))
    module = importlib.import_module(f"keras.applications.{bb.module}")
    assert callable(module.preprocess_input)
    # the module is the model's own family, so preprocess_input is the right one
    assert getattr(keras.applications, name).__module__.rsplit(".", 1)[-1] == bb.module
    assert 32 <= bb.min_size <= bb.default_size


def test_every_keras_model_is_registered():
    names = _keras_model_names()
    assert len(names) >= 30
    assert names - set(REGISTRY) == set()
    assert set(REGISTRY) - names == set()


def test_get_backbone():
    bb = get_backbone("Xception")
    assert (bb.module, bb.default_size, bb.min_size) == ("xception", 299, 71)
    assert get_backbone("MobileNetV3Small").module == "mobilenet_v3"


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(AlldagError) as exc:
        get_backbone("vgg16")
    message = str(exc.value)
    assert "\n" not in message
    assert "'vgg16'" in message and "VGG16" in message and "case-sensitive" in message


def test_unknown_backbone_without_close_name():
    with pytest.raises(AlldagError) as exc:
        get_backbone("Zzz")
    message = str(exc.value)
    assert "\n" not in message and any(n in message for n in REGISTRY)


def test_check_backbones_min_size():
    with pytest.raises(AlldagError) as exc:
        check_backbones({"Xception": 64})
    message = str(exc.value)
    assert "\n" not in message and "Xception" in message and "71" in message and "64" in message
    check_backbones({"VGG16": 64})
    check_backbones({"Xception": 71, "VGG16": 32, "MobileNet": 224})
    with pytest.raises(AlldagError):
        check_backbones({"InceptionV3": 72})
    with pytest.raises(AlldagError):
        check_backbones({"VGG16": 64, "mobilenet": 64})
