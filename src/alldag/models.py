"""Classifier construction on a keras.applications backbone, and Grad-CAM layer lookup."""

from __future__ import annotations

import re

import keras
import numpy as np

from alldag import AlldagError
from alldag.backbones import constructor, get_backbone, preprocess_affine, preprocess_fn

PREPROCESS_LAYER = "preprocess"


@keras.saving.register_keras_serializable(package="alldag")
class BackbonePreprocess(keras.layers.Layer):
    """The backbone's preprocess_input as a custom layer: only so models saved before `preprocess_layer`
    existed still load (they need alldag installed; new models do not)."""

    def __init__(self, backbone: str, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self._fn = preprocess_fn(backbone)

    def call(self, inputs):
        return self._fn(inputs)

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


def preprocess_layer(backbone: str):
    """The backbone's own preprocess_input as a frozen built-in Dense layer on the channel axis (None if the
    backbone preprocesses inside itself), so a saved model takes raw RGB in [0, 255] and needs only Keras."""
    affine = preprocess_affine(backbone)
    if affine is None:
        return None
    layer = keras.layers.Dense(3, name=PREPROCESS_LAYER, trainable=False, dtype="float32")
    layer.build((None, None, None, 3))
    layer.set_weights([w.astype("float32") for w in affine])
    return layer


def _weights_error(name: str, exc: Exception) -> AlldagError:
    url = re.search(r"https?://\S+", str(exc))
    where = f" ({url.group(0).rstrip('.:')})" if url else ""
    return AlldagError(
        f"ImageNet weights for {name} could not be fetched{where}: put that file in "
        f"~/.keras/models/, set train.weights to a local weights file, or set train.weights: null"
    )


LSUV = "lsuv"  # train.kernel_initializer: he_normal, then unit variance per layer on training images


def build_classifier(
    backbone: str,
    n_classes: int,
    image_size: int,
    weights: str | None,
    dropout: float = 0.3,
    bn_momentum: float | None = None,
    kernel_initializer: str | None = None,
    seed: int = 0,
) -> keras.Model:
    """A flat functional model: raw RGB -> backbone preprocess -> backbone -> GAP -> dropout -> softmax.

    weights: 'imagenet', None (random init) or a path to a weights file for the backbone.
    bn_momentum: if set, overrides BatchNormalization momentum (0.9 suits short from-scratch runs).
    kernel_initializer: with random init only, re-draw every convolution kernel with this Keras initializer
    (seeded from `seed`, one seed per layer); "lsuv" draws he_normal here, and the trainer then scales the
    kernels on its images (unit_variance_kernels).
    """
    get_backbone(backbone)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    preprocess = preprocess_layer(backbone)
    x = preprocess(inputs) if preprocess is not None else inputs
    base = constructor(backbone)(include_top=False, weights=None, input_tensor=x)
    if weights is not None:
        load_backbone_weights(base, backbone, image_size, weights)
    elif kernel_initializer is not None:
        reinitialise_kernels(base, "he_normal" if kernel_initializer == LSUV else kernel_initializer, seed)
    if bn_momentum is not None:
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = bn_momentum
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
    features = keras.layers.Dropout(dropout, name="head_dropout")(features)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="predictions", dtype="float32")(features)
    return keras.Model(inputs, outputs, name=f"{backbone}_classifier")


def reinitialise_kernels(base: keras.Model, initializer: str, seed: int) -> None:
    """Re-draw the kernel of every convolution of `base` with the Keras initializer named `initializer`.

    keras.applications draws kernels with glorot_uniform, which shrinks the signal of a deep plain ReLU
    stack (VGG19 from scratch stays at chance in a short run); he_normal (He et al. 2015) keeps it."""
    kind = type(keras.initializers.get(initializer))
    convolutions = [layer for layer in base.layers if isinstance(layer, keras.layers.Conv2D)]
    for i, layer in enumerate(convolutions):
        layer.kernel.assign(kind(seed=seed + i)(layer.kernel.shape, layer.kernel.dtype))


def unit_variance_kernels(model: keras.Model, images, tolerance: float = 0.05, rounds: int = 5) -> list[float]:
    """Layer-sequential unit-variance init (LSUV, Mishkin & Matas 2016): scale each convolution kernel, first
    to last, until its pre-activation output on `images` (raw RGB, the model's input) has standard deviation 1.

    He init keeps the signal's scale through a plain ReLU stack but not its size: the VGGs' caffe preprocessing
    feeds 0-255 pixels minus the ImageNet mean (the first convolution's output SD was about 150 on the demo's
    smears), and from scratch their first loss is about 100. Returns each layer's output SD
    before scaling."""
    found = []
    for layer in [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]:
        activation, layer.activation = layer.activation, keras.activations.linear
        probe = keras.Model(model.input, layer.output)
        for round_ in range(rounds):
            sd = float(keras.ops.std(probe(images, training=False)))
            found += [sd] if round_ == 0 else []
            if sd == 0 or abs(sd - 1) < tolerance:
                break
            layer.kernel.assign(layer.kernel / sd)
            if layer.use_bias:
                layer.bias.assign(layer.bias / sd)
        layer.activation = activation
    return found


def load_backbone_weights(base: keras.Model, backbone: str, image_size: int, weights: str) -> None:
    """Copy pretrained weights into base, layer by layer in order, from the backbone built standalone.

    base is built on the preprocessing layer's output, so it contains that layer (whose weights the file lacks):
    loading the file into base directly would fail or, for legacy .h5 files, shift every layer by one.
    """
    try:
        trained = constructor(backbone)(include_top=False, weights=weights, input_shape=(image_size, image_size, 3))
    except Exception as exc:
        if weights == "imagenet" and ("fetch" in str(exc).lower() or isinstance(exc, OSError)):
            raise _weights_error(backbone, exc) from None
        raise
    targets = [layer for layer in base.layers if layer.weights and not _is_preprocess(layer)]
    sources = [layer for layer in trained.layers if layer.weights]
    for target, source in zip(targets, sources, strict=True):
        target.set_weights(source.get_weights())


HEAD_LAYERS = ("avg_pool", "head_dropout", "predictions")


def backbone_layers(model: keras.Model) -> list:
    """The backbone's layers of a build_classifier model (everything but input, preprocessing and head)."""
    return [
        layer
        for layer in model.layers
        if layer.name not in HEAD_LAYERS
        and not _is_preprocess(layer)
        and not isinstance(layer, keras.layers.InputLayer)
    ]


def _is_preprocess(layer) -> bool:
    return layer.name == PREPROCESS_LAYER or isinstance(layer, BackbonePreprocess)


def set_backbone_trainable(model: keras.Model, top_layers: int | None) -> int:
    """Freeze the backbone except its top `top_layers` layers (BatchNormalization stays frozen).

    top_layers = 0 freezes the whole backbone (train the head only); None unfreezes all of it.
    Returns the number of backbone layers left trainable. Recompile the model afterwards.
    """
    layers = backbone_layers(model)
    cut = 0 if top_layers is None else len(layers) - min(top_layers, len(layers))
    for i, layer in enumerate(layers):
        # Frozen BatchNormalization runs in inference mode: fine-tuning keeps pretrained statistics.
        layer.trainable = i >= cut and not isinstance(layer, keras.layers.BatchNormalization)
    return sum(layer.trainable for layer in layers)


def last_conv_layer_name(model: keras.Model) -> str:
    """Name of the last layer with a 4-D (spatial) output that is not pooling: the Grad-CAM target."""
    for layer in reversed(model.layers):
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        if (
            shape is not None
            and len(shape) == 4
            and "pool" not in type(layer).__name__.lower()
            and not _is_preprocess(layer)
        ):
            return layer.name
    raise AlldagError(f"model {model.name} has no spatial layer for Grad-CAM: set explain.gradcam_layer")


def input_size(model: keras.Model) -> int:
    """The side in pixels of the square images a model takes (what it was trained at)."""
    return int(model.input_shape[1])


def load_classifier(path) -> keras.Model:
    """Load a model saved by the train stage."""
    return keras.saving.load_model(path, compile=False)


def recalibrate_batchnorm(model: keras.Model, batches) -> tuple[int, int]:
    """Replace BatchNormalization moving statistics by their average over `batches` ("precise BN").

    Short from-scratch runs leave the moving statistics far behind the weights, so inference-mode
    predictions collapse to one class; averaging fresh batch statistics of the final weights fixes
    that without touching any trained weight. Frozen (non-trainable) BatchNormalization layers run in
    inference mode and keep their statistics (two-phase fine-tuning keeps the pretrained ones): they are
    skipped. batches yields (images, labels). Returns (layers whose statistics changed, frozen layers skipped).
    """
    bn_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    live = [layer for layer in bn_layers if layer.trainable]
    frozen = len(bn_layers) - len(live)
    if not live:
        return 0, frozen
    before = [(np.array(layer.moving_mean), np.array(layer.moving_variance)) for layer in live]
    saved = [layer.momentum for layer in live]
    for i, (images, _) in enumerate(batches):
        for layer in live:
            layer.momentum = i / (i + 1)  # running mean of per-batch statistics
        model(images, training=True)
    for layer, momentum in zip(live, saved):
        layer.momentum = momentum
    changed = sum(
        not (np.array_equal(mean, layer.moving_mean) and np.array_equal(var, layer.moving_variance))
        for layer, (mean, var) in zip(live, before)
    )
    return changed, frozen
