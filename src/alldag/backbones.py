"""Backbone registry: every `keras.applications` model by name, with its own preprocessing.

The table is static so that the workflow can validate config names without importing
TensorFlow (a 3-5 s import); tests check that it matches `keras.applications`.
"""

from __future__ import annotations

from dataclasses import dataclass

from alldag import AlldagError


@dataclass(frozen=True)
class Backbone:
    """A keras.applications model: constructor name, module with preprocess_input, input sizes."""

    name: str
    module: str  # keras.applications.<module>.preprocess_input
    default_size: int
    min_size: int


def _family(module: str, default_size: int, min_size: int, *names: str) -> dict[str, Backbone]:
    return {n: Backbone(n, module, default_size, min_size) for n in names}


REGISTRY: dict[str, Backbone] = {
    **_family("xception", 299, 71, "Xception"),
    **_family("vgg16", 224, 32, "VGG16"),
    **_family("vgg19", 224, 32, "VGG19"),
    **_family("mobilenet", 224, 32, "MobileNet"),
    **_family("mobilenet_v2", 224, 32, "MobileNetV2"),
    **_family("mobilenet_v3", 224, 32, "MobileNetV3Small", "MobileNetV3Large"),
    **_family("resnet", 224, 32, "ResNet50", "ResNet101", "ResNet152"),
    **_family("resnet_v2", 224, 32, "ResNet50V2", "ResNet101V2", "ResNet152V2"),
    **_family("densenet", 224, 32, "DenseNet121", "DenseNet169", "DenseNet201"),
    **_family("inception_v3", 299, 75, "InceptionV3"),
    **_family("inception_resnet_v2", 299, 75, "InceptionResNetV2"),
    **_family("nasnet", 224, 32, "NASNetMobile", "NASNetLarge"),
    **_family("efficientnet", 224, 32, *(f"EfficientNetB{i}" for i in range(8))),
    **_family(
        "efficientnet_v2",
        224,
        32,
        "EfficientNetV2B0",
        "EfficientNetV2B1",
        "EfficientNetV2B2",
        "EfficientNetV2B3",
        "EfficientNetV2S",
        "EfficientNetV2M",
        "EfficientNetV2L",
    ),
    **_family("convnext", 224, 32, "ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge"),
}


# What each family's preprocess_input does to raw RGB in [0, 255] (keras.applications.imagenet_utils):
# "tf" scales to [-1, 1], "caffe" flips to BGR and subtracts the ImageNet mean, "torch" scales to [0, 1]
# and standardises per channel, "none" leaves it to the model (it has its own rescaling layers).
PREPROCESS_MODES = {
    "xception": "tf",
    "vgg16": "caffe",
    "vgg19": "caffe",
    "mobilenet": "tf",
    "mobilenet_v2": "tf",
    "mobilenet_v3": "none",
    "resnet": "caffe",
    "resnet_v2": "tf",
    "densenet": "torch",
    "inception_v3": "tf",
    "inception_resnet_v2": "tf",
    "nasnet": "tf",
    "efficientnet": "none",
    "efficientnet_v2": "none",
    "convnext": "none",
}


def preprocess_affine(name: str):
    """(kernel 3x3, bias 3) with rgb @ kernel + bias == the backbone's preprocess_input, or None for identity.

    Lets a saved model carry its preprocessing as a built-in, frozen Dense layer: it loads anywhere Keras
    does, with no alldag code.
    """
    import numpy as np

    mode = PREPROCESS_MODES[get_backbone(name).module]
    if mode == "none":
        return None
    if mode == "tf":
        return np.eye(3) / 127.5, -np.ones(3)
    if mode == "caffe":
        bgr_mean = np.array([103.939, 116.779, 123.68])
        return np.eye(3)[:, ::-1], -bgr_mean  # column j of the output takes input channel 2 - j
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return np.diag(1 / (255 * std)), -mean / std


def get_backbone(name: str) -> Backbone:
    """Registry entry for `name`; raises AlldagError naming close alternatives."""
    try:
        return REGISTRY[name]
    except KeyError:
        close = [n for n in REGISTRY if n.lower().startswith(name.lower()[:3])] or sorted(REGISTRY)[:6]
        raise AlldagError(
            f"unknown backbone '{name}': use a keras.applications name such as "
            f"{', '.join(close)} (names are case-sensitive)"
        ) from None


def check_backbones(image_sizes: dict[str, int]) -> None:
    """Fail with one line on an unknown backbone or an image size below its minimum.

    image_sizes maps each backbone name to the input size it will be trained at.
    """
    for name, image_size in image_sizes.items():
        bb = get_backbone(name)
        if image_size < bb.min_size:
            raise AlldagError(
                f"backbone {name} needs images of at least {bb.min_size} px but "
                f"train.image_size is {image_size}: raise train.image_size"
            )


def preprocess_fn(name: str):
    """The backbone's own keras.applications.<module>.preprocess_input (imports Keras)."""
    import importlib

    return importlib.import_module(f"keras.applications.{get_backbone(name).module}").preprocess_input


def constructor(name: str):
    """The keras.applications model constructor for `name` (imports Keras)."""
    import keras

    return getattr(keras.applications, get_backbone(name).name)
