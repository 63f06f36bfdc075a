"""The `explain` stage: the maps of every registered method (alldag.methods: Grad-CAM, Grad-CAM++ and LIME) on
a stratified sample of test images, measured (not eyeballed) with the metrics of `alldag.attribution_metrics`.

This module holds the model-calling code: the registry's compute functions, the deletion/insertion
curves and the stage's driver (`explain_model`). Every map is (H, W) in [0, 1] at image size:
positive evidence for the predicted class, peak 1.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alldag import AlldagError
from alldag.attribution_metrics import (
    ALL_CLASSES,
    CURVES,
    FILLS,
    agreement_metrics,
    attribution_order,
    auc_column,
    corner_region,
    curve_auc,
    map_metrics,
    perturbation_series,
    summarise_explanations,
    vs_random_column,
)
from alldag.figures import explanation_gallery, map_caption, save
from alldag.jobs import ModelKey
from alldag.masks import LeukocyteMask, load_leukocyte_mask, read_mask_file
from alldag.methods import METHODS, Attributions, MethodInput, method_pairs, pair_name
from alldag.progress import track
from alldag.tables import read_tsv, write_tsv_atomic

log = logging.getLogger(__name__)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

UNIFORM = "uniform"  # reference map: the same attribution everywhere (a random deletion/insertion order)
GRADCAM_BATCH = 100  # images per traced forward and backward pass: about the memory of predicting as many
GALLERY_PER_CLASS = 2  # explained images per class shown in the gallery: the best and the worst plausibility
RANDOM_ORDERS = 5  # seeded random pixel orders per image: the reference each map's AUCs are compared with
ORDERS_PER_CALL = 4  # pixel orders whose perturbed images go through the model in one call (memory bound)
RESIZE_BLOCK = 65536  # output pixels resized at a time (0.5 MiB of float64 sums): 2-3x faster than all at once
BLUR_SIGMA = 0.04  # the blurred fill's Gaussian sigma, as a share of the image side (9 px at 224 px)


@dataclass(frozen=True, kw_only=True)
class ExplainOptions:
    """The config's `explain:` keys (workflow/schemas/config.schema.yaml describes each and fills its default)."""

    images_per_class: int  # test images explained per class
    lime_num_samples: int  # LIME perturbation samples per image
    lime_batch_size: int  # images per model call (LIME, Grad-CAM, deletion/insertion curves)
    lime_kernel_size: float  # quickshift kernel size (pixels) at 224 px, scaled with the image size
    top_percent: float  # agreement between methods: IoU of their top-k % pixels; this is k
    faithfulness_steps: int  # steps of the deletion and insertion curves
    corner_fraction: float  # the scale-bar corner's side as a fraction of the image side
    gradcam_layer: str | None  # Grad-CAM's layer; None: the last spatial layer


@dataclass(frozen=True)
class ExplainSettings:
    """What an explain job needs besides its files: the model, the task's classes, the `explain` config
    (methods' settings, images per class) and the seed. The image size is the model's own."""

    key: ModelKey
    classes: tuple[str, ...]
    options: ExplainOptions
    seed: int

    @classmethod
    def from_params(cls, params, wildcards) -> ExplainSettings:
        """From the explain rule's params (classes, explain: the validated config's `explain:`, seed) and wildcards."""
        return cls(
            ModelKey.from_wildcards(wildcards),
            tuple(params.classes),
            ExplainOptions(**params.explain),
            params.seed,
        )


@dataclass(frozen=True)
class ExplainOutputs:
    """The files an explain job writes (paths)."""

    heatmaps: str  # heatmaps.npz: every map, segment and mask of the explained images
    gallery: str  # explanation_gallery.png
    explanations: str  # explanations.tsv: per image and method
    agreement: str  # agreement.tsv: per image and method pair
    explanation_summary: str  # explanation_summary.tsv: per method (or pair), class and metric, the mean with its CI


def normalise_heatmap(heat: np.ndarray) -> np.ndarray:
    """Clip negatives and scale each map (the last two axes of heat) to [0, 1]; an all-zero map stays zero."""
    heat = np.maximum(np.asarray(heat, np.float32), 0)
    peak = heat.max(axis=(-2, -1), keepdims=True)
    return np.divide(heat, peak, out=heat, where=peak > 0)


@functools.lru_cache(maxsize=32)
def _bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's BILINEAR coefficients from in_size to out_size samples (its Resample.c precompute_coeffs):
    per output sample the input indices (out_size, taps) and their float64 weights; a sample with fewer
    taps than the widest window repeats its first index with weight 0."""
    scale = in_size / out_size
    support = max(scale, 1.0)  # the triangle filter's support (1) times the filter scale
    windows = []
    for out in range(out_size):
        centre = (out + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        row, total = [], 0.0
        for x in range(min(int(centre + support + 0.5), in_size) - first):  # Pillow's order: its float64 roundings
            distance = abs((x + first - centre + 0.5) * (1.0 / support))
            row.append(1.0 - distance if distance < 1.0 else 0.0)
            total += row[-1]
        windows.append((first, [w / total for w in row] if total != 0.0 else row))
    taps = max(len(row) for _, row in windows)
    index, weights = np.zeros((out_size, taps), np.intp), np.zeros((out_size, taps))
    for out, (first, row) in enumerate(windows):
        index[out] = [first + x if x < len(row) else first for x in range(taps)]
        weights[out, : len(row)] = row
    return index, weights


def _resample_axis(heat: np.ndarray, size: int, axis: int) -> np.ndarray:
    """One of Pillow's two resampling passes along `axis` of float32 maps: float64 sums tap by tap, then float32."""
    index, weights = _bilinear_taps(heat.shape[axis], size)
    shape = [1] * heat.ndim
    shape[axis] = size
    heat = heat.astype(np.float64)
    total = np.take(heat, index[:, 0], axis=axis) * weights[:, 0].reshape(shape)
    for tap in range(1, index.shape[1]):
        term = np.take(heat, index[:, tap], axis=axis)
        term *= weights[:, tap].reshape(shape)
        total += term
    return total.astype(np.float32)


def resize_heatmap(heat: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of heatmaps (..., h, w) to (..., size, size), all at once.

    The same numbers as Pillow's `Image.resize(BILINEAR)` of each map as a float32 ("F") image: its
    coefficients, its horizontal then vertical pass, double sums stored as float32 after each pass.
    """
    heat = np.asarray(heat, np.float32)
    maps = heat.reshape(-1, *heat.shape[-2:])
    out = np.empty((len(maps), size, size), np.float32)
    step = max(1, RESIZE_BLOCK // (size * size))  # maps per block: its float64 sums stay in cache
    for start in range(0, len(maps), step):
        out[start : start + step] = _resample_axis(_resample_axis(maps[start : start + step], size, -1), size, -2)
    return out.reshape(*heat.shape[:-2], size, size)


def batched_predict(model, batch_size: int):
    """A function images (n, H, W, 3) in [0, 255] -> class probabilities (n, k), calling the model
    `batch_size` images at a time (predict_on_batch: no per-call dataset overhead)."""

    def predict(images) -> np.ndarray:
        images = np.asarray(images)
        if images.dtype != np.uint8:  # uint8 goes in as it is: the model casts it to float32 itself, exactly
            images = images.astype(np.float32, copy=False)
        return np.concatenate(
            [
                np.asarray(model.predict_on_batch(images[i : i + batch_size]), np.float32)
                for i in range(0, len(images), batch_size)
            ]
        )

    return predict


def _class_score_model(model, layer_name: str):
    """A function images -> (activations of layer_name, class scores).

    Scores are the centred logits (logit minus the mean logit: softmax ignores a shift common to
    all logits, so a raw logit's gradient is arbitrary) when the model ends in a softmax Dense
    layer, as build_classifier's do; else the model's outputs.
    """
    import keras

    head = model.layers[-1]
    conv = model.get_layer(layer_name).output
    if isinstance(head, keras.layers.Dense) and head.activation is keras.activations.softmax:
        features = keras.Model(model.inputs[0], [conv, head.input])

        def scores(images):
            conv_out, feats = features(images, training=False)
            logits = feats @ head.kernel + head.bias
            return conv_out, logits - keras.ops.mean(logits, axis=1, keepdims=True)

        return scores
    features = keras.Model(model.inputs[0], [conv, model.output])
    return lambda images: features(images, training=False)


def gradient_cam_fn(model, layer_name: str, *, batch_size: int = GRADCAM_BATCH):
    """A function (images (n, H, W, 3), class_index (n,)) -> {"gradcam", "gradcam_pp"}: (n, H, W) maps.

    Both come from one traced forward and backward pass to `layer_name` per `batch_size` images (A: its
    activations, g: the gradient of the class score, see _class_score_model). Grad-CAM weighs each channel by
    the mean of g; Grad-CAM++ (Chattopadhyay et al. 2018, exponential score) by sum(alpha * relu(g)) with
    alpha = g^2 / (2 g^2 + sum(A) g^3). Maps are normalised, resized to H x W and normalised again, all at once.
    """
    import tensorflow as tf

    scores_of = _class_score_model(model, layer_name)

    @tf.function  # one trace per batch shape: a shape-relaxed retrace computes the same maps a few ulps apart
    def cams(images, class_index):
        with tf.GradientTape() as tape:
            conv, scores = scores_of(images)
            score = tf.gather(scores, class_index, axis=1, batch_dims=1)
        grads = tape.gradient(score, conv)  # images are independent: d(sum)/dA_i = d(score_i)/dA_i
        gradcam = tf.einsum("nhwc,nc->nhw", conv, tf.reduce_mean(grads, axis=(1, 2)))
        g2 = grads * grads
        denom = 2 * g2 + tf.reduce_sum(conv, axis=(1, 2), keepdims=True) * g2 * grads
        alpha = tf.math.divide_no_nan(g2, denom)
        weights = tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2))
        return tf.stack([gradcam, tf.einsum("nhwc,nc->nhw", conv, weights)])  # one copy back per batch

    def run(images, class_index) -> dict[str, np.ndarray]:
        images, class_index = np.asarray(images, np.float32), np.asarray(class_index, np.int32)
        grids = np.concatenate(
            [
                cams(images[i : i + batch_size], class_index[i : i + batch_size]).numpy()
                for i in range(0, len(images), batch_size)
            ],
            axis=1,
        )
        maps = normalise_heatmap(resize_heatmap(normalise_heatmap(grids), images.shape[1]))
        return dict(zip(("gradcam", "gradcam_pp"), maps))

    return run


def lime_segments_to_heatmap(segments: np.ndarray, weights: list[tuple[int, float]]) -> np.ndarray:
    """Paint LIME's per-segment weights (explanation.local_exp[label]) onto its segment map; [0, 1]."""
    table = np.zeros(segments.max() + 1, np.float32)
    for segment, weight in weights:
        table[segment] = weight
    return normalise_heatmap(table[segments])


def perturbed_batches(image: np.ndarray, fill: np.ndarray, segments: np.ndarray, keep: np.ndarray, batch_size: int):
    """LIME's perturbed images, `batch_size` at a time: in image i superpixel s shows `image` where keep[i, s]
    is 1 and `fill` where it is 0 (lime's own rule, built per batch rather than per sample).

    image, fill: uint8 (H, W, 3); segments: (H, W) superpixel labels 0..n-1; keep: (samples, n) of 0 and 1.
    Yields (b, H, W, 3) uint8 views of one buffer reused for every batch (a batch is overwritten by the next).
    Each byte is fill + keep * (image - fill) in uint8's arithmetic modulo 256: exactly image or fill.
    """
    if image.dtype != np.uint8 or fill.dtype != np.uint8:
        raise AlldagError(f"LIME perturbs uint8 images, got {image.dtype} and {fill.dtype}: pass uint8 pixels")
    rows = np.asarray(keep, np.uint8)
    channels = image.reshape(-1).size // segments.size
    per_byte = np.repeat(segments.reshape(-1), channels)  # every byte's superpixel: one lookup table per row
    difference, base = (image - fill).reshape(-1), fill.reshape(-1)
    buffer = np.empty((min(batch_size, len(rows)), *image.shape), np.uint8)
    flat = buffer.reshape(len(buffer), -1)
    for start in range(0, len(rows), batch_size):
        out = flat[: len(rows[start : start + batch_size])]
        np.take(rows[start : start + batch_size], per_byte, axis=1, out=out)
        np.multiply(out, difference, out=out)
        np.add(out, base, out=out)
        yield buffer[: len(out)]


def _lime_explainer(seed: int):
    """lime's LimeImageExplainer with its per-sample Python perturbation loop replaced by perturbed_batches.

    Draws the same random on/off matrix from the same random state as lime, so explanations
    are identical to lime's own `data_labels`.
    """
    from lime import lime_image

    class VectorisedLimeImageExplainer(lime_image.LimeImageExplainer):
        def data_labels(self, image, fudged_image, segments, classifier_fn, num_samples, batch_size=10):
            n_features = np.unique(segments).shape[0]
            data = self.random_state.randint(0, 2, num_samples * n_features).reshape((num_samples, n_features))
            data[0, :] = 1
            batches = perturbed_batches(image, fudged_image, segments, data, batch_size)
            return data, np.concatenate([classifier_fn(batch) for batch in batches])

    return VectorisedLimeImageExplainer(random_state=seed)


def quickshift_kernel(kernel_at_224: float, size: int) -> float:
    """Quickshift kernel size for a `size`-px image, so superpixels cover the same share of the image
    (at least 1, quickshift's minimum)."""
    return max(1.0, kernel_at_224 * size / 224)


def lime_explanation(
    image: np.ndarray, predict, label: int, num_samples: int, batch_size: int, seed: int, kernel_size: float
) -> tuple[np.ndarray, np.ndarray]:
    """LIME map (H, W) in [0, 1] of `label` for one image (H, W, 3) in [0, 255], and its segments.

    Quickshift superpixels on the uint8 image (kernel_size in pixels); a switched-off superpixel
    is painted in the background fill (lime's default, its own mean colour, leaves a dark nucleus
    dark, and a black fill leaves a black scale bar in place); `predict` is called `batch_size`
    perturbed images at a time.
    """
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
    segmenter = SegmentationAlgorithm("quickshift", kernel_size=kernel_size, max_dist=200, ratio=0.2, random_seed=seed)
    explanation = _lime_explainer(seed).explain_instance(
        pixels,
        predict,
        labels=(label,),
        top_labels=None,
        hide_color=background_fill(pixels)[0, 0],
        num_samples=num_samples,
        batch_size=batch_size,
        segmentation_fn=segmenter,
        random_seed=seed,
    )
    return lime_segments_to_heatmap(explanation.segments, explanation.local_exp[label]), explanation.segments


def background_fill(image: np.ndarray) -> np.ndarray:
    """The image's per-channel median colour, as a constant image: what a removed pixel becomes.

    On a smear the median is the plasma background, so filling removes a cell or a scale bar
    (black or white) alike; LIME hides superpixels with the same colour.
    """
    return np.broadcast_to(np.median(image, axis=(0, 1)), image.shape).astype(np.float32)


def blurred_fill(image: np.ndarray) -> np.ndarray:
    """A Gaussian-blurred copy of the image (sigma BLUR_SIGMA of its side): removes detail (chromatin, edges,
    a thin bar) but keeps each region's colour, so it does not share LIME's fill."""
    from scipy.ndimage import gaussian_filter

    sigma = BLUR_SIGMA * image.shape[0]
    return gaussian_filter(np.asarray(image, np.float32), (sigma, sigma, 0), mode="nearest")


def _orders_aucs(predict, image, label, orders: list, steps: int, ends: dict) -> list[dict[str, float]]:
    """Per pixel order, its deletion and insertion AUC with every fill of FILLS, ORDERS_PER_CALL orders per
    model call (the perturbed images of one call are held in memory at once).

    ends: "image", the image's p(label); "fills", the filled images; "filled", per fill its p(label)."""
    curves = [(fill, curve) for fill in FILLS for curve in CURVES]
    out = []
    for start in range(0, len(orders), ORDERS_PER_CALL):
        batch = orders[start : start + ORDERS_PER_CALL]
        series = [
            perturbation_series(image, ends["fills"][fill], order, steps, curve == "insertion")[1:-1]
            for order in batch
            for fill, curve in curves
        ]
        inner = predict(np.concatenate(series))[:, label].reshape(len(batch), len(curves), steps - 1)
        for rows in inner:
            aucs = {}
            for (fill, curve), row in zip(curves, rows):
                whole, filled = ends["image"], ends["filled"][fill]
                points = np.r_[filled, row, whole] if curve == "insertion" else np.r_[whole, row, filled]
                aucs[auc_column(curve, fill)] = curve_auc(points, reference=whole)
            out.append(aucs)
    return out


def faithfulness(
    predict,
    image: np.ndarray,
    label: int,
    maps: dict[str, np.ndarray],
    steps: int,
    rng: np.random.Generator,
    random_orders: int = RANDOM_ORDERS,
) -> dict[str, dict[str, float]]:
    """Deletion and insertion AUC of each map with each fill of FILLS, and each minus the mean AUC of
    `random_orders` seeded random pixel orders of the same image (negative deletion and positive insertion
    differences beat random).

    In attribution order (ties at random, the same order for every fill), pixels are replaced by the fill
    (deletion) or restored into it (insertion) in `steps` steps, tracking p(label); each AUC is divided by
    p(label) of the image. Returns {name: {"deletion_auc_<fill>": ..., "insertion_auc_<fill>": ...,
    "deletion_auc_<fill>_vs_random": ..., ...}}.
    """
    fills = {"blur": blurred_fill(image), "median": background_fill(image)}
    # every curve starts and ends at the image or a fill: those go through the model once
    probs = predict(np.stack([image, *(fills[fill] for fill in FILLS)]))[:, label]
    ends = {"image": probs[0], "fills": fills, "filled": dict(zip(FILLS, probs[1:]))}
    orders = [attribution_order(heat, rng) for heat in maps.values()]
    orders += [rng.permutation(image.shape[0] * image.shape[1]) for _ in range(random_orders)]
    aucs = _orders_aucs(predict, image, label, orders, steps, ends)
    random = {column: np.mean([a[column] for a in aucs[len(maps) :]]) for column in aucs[0]}
    return {
        name: found
        | {
            vs_random_column(curve, fill): found[auc_column(curve, fill)] - random[auc_column(curve, fill)]
            for fill in FILLS
            for curve in CURVES
        }
        for name, found in zip(maps, aucs)
    }


def choose_images(test: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """A stratified random sample of up to `per_class` test images per class (seeded), in class order."""
    sample = test.sample(frac=1, random_state=seed).groupby("label", sort=False).head(per_class)
    return sample.sort_values(["y", "image_id"]).reset_index(drop=True)


def _recorded_mask(path, source: str, size: int) -> LeukocyteMask:
    """The audit's mask file of one image (empty path: no usable mask) and its recorded source."""
    if not isinstance(path, str) or not path:
        return LeukocyteMask(None, "none")
    mask = read_mask_file(path, size)
    if mask is None:
        raise AlldagError(
            f"mask file {path} listed in the split manifest is missing: rerun the audit (snakemake --forcerun audit)"
        )
    return LeukocyteMask(mask, source)


def load_masks(chosen: pd.DataFrame, size: int) -> list[LeukocyteMask]:
    """The leukocyte mask (alldag.masks) of each chosen image at (size, size) and its source: the audit's mask
    file (`mask_file`, source `mask_source`) when the manifest has one; in older manifests decided afresh from the
    image and its Segmented/ twin (alldag.masks.load_leukocyte_mask)."""
    if "mask_file" in chosen:
        return [_recorded_mask(p, s, size) for p, s in zip(chosen["mask_file"], chosen["mask_source"])]
    return [load_leukocyte_mask(path, twin, size) for path, twin in zip(chosen["path"], chosen["mask_path"])]


def gradient_cams(job: MethodInput) -> Attributions:
    """The registry's Grad-CAM and Grad-CAM++ maps (gradient_cam_fn) of every image, from one traced pass per
    batch to the configured layer (explain.gradcam_layer; default the last spatial layer)."""
    from alldag.models import last_conv_layer_name

    layer = job.options.gradcam_layer or last_conv_layer_name(job.model)
    return Attributions(
        gradient_cam_fn(job.model, layer, batch_size=job.options.lime_batch_size)(job.images, job.predicted)
    )


def lime_maps(job: MethodInput) -> Attributions:
    """The registry's LIME maps (lime_explanation) of every image, with their quickshift superpixels."""
    options, size = job.options, job.images.shape[1]
    found = [
        lime_explanation(
            img,
            job.predict,
            int(c),
            options.lime_num_samples,
            options.lime_batch_size,
            job.seed,
            quickshift_kernel(options.lime_kernel_size, size),
        )
        for img, c in track(zip(job.images, job.predicted), f"{job.label}: LIME", total=len(job.images), unit="image")
    ]
    return Attributions({"lime": np.stack([heat for heat, _ in found])}, np.stack([seg for _, seg in found]))


def compute_maps(job: MethodInput) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every registered method's maps {method: (n, H, W)}, in registry order, each compute function called
    once for all the methods it computes; and the superpixels (n, H, W) of the first method that has them
    (the agreement's per-superpixel Spearman; one superpixel when no method has any)."""
    computed, segments = {}, None
    for method in METHODS.values():
        if method.name not in computed:
            found = method.compute_function()(job)
            computed |= found.maps
            segments = found.segments if segments is None else segments
    if segments is None:
        segments = np.zeros(job.images.shape[:3], np.int32)
    return {name: computed[name] for name in METHODS}, segments


def explain_images(
    model, images: np.ndarray, masks: list, options: ExplainOptions, seed: int, *, label: str = "explain"
):
    """Attribution maps of every registered method (alldag.methods) and their metrics for a batch of images
    (n, H, W, 3) in [0, 255].

    masks: per image a bool (H, W) leukocyte mask or None; options: the config's `explain:` keys.
    label: the job's name in progress lines.
    Returns (maps {method: (n, H, W)}, segments (n, H, W), predicted (n,), probabilities (n, k),
    per-image-and-method rows, per-image-and-pair rows); row dicts carry an `index` into images.
    """
    size = images.shape[1]
    predict = batched_predict(model, options.lime_batch_size)
    proba = predict(images)
    predicted = proba.argmax(axis=1)
    maps, segments = compute_maps(MethodInput(model, images, predicted, predict, options, seed, label))
    corner = corner_region(size, options.corner_fraction)
    rng = np.random.default_rng(seed)
    method_rows, pair_rows = [], []
    for i in track(range(len(images)), f"{label}: deletion and insertion curves", unit="image"):
        per_image = {m: maps[m][i] for m in maps} | {UNIFORM: np.ones((size, size), np.float32)}
        aucs = faithfulness(predict, images[i], int(predicted[i]), per_image, options.faithfulness_steps, rng)
        for method, heat in per_image.items():
            method_rows.append({"index": i, "method": method, **map_metrics(heat, masks[i], corner), **aucs[method]})
        for a, b in method_pairs():
            pair_rows.append(
                {
                    "index": i,
                    "pair": pair_name(a, b),
                    **agreement_metrics(maps[a][i], maps[b][i], segments[i], options.top_percent, rng),
                }
            )
    return maps, segments, predicted, proba, method_rows, pair_rows


def _with_image_columns(
    rows: list[dict], chosen: pd.DataFrame, classes, predicted, proba, sources: list[str]
) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    i = table.pop("index").to_numpy()
    table.insert(0, "image_id", chosen["image_id"].to_numpy()[i])
    table.insert(1, "label", chosen["label"].to_numpy()[i])
    table.insert(2, "predicted", np.asarray(classes)[predicted[i]])
    table.insert(3, "confidence", proba[i, predicted[i]])
    table.insert(4, "mask_source", np.asarray(sources)[i])
    return table


def gallery_choice(per_image: pd.DataFrame, chosen: pd.DataFrame) -> np.ndarray:
    """Positions in `chosen` of the gallery's images: per class the best and the worst plausibility (mean
    mask_ratio over METHODS), GALLERY_PER_CLASS in all; images without a mask only when a class has too few."""
    plausibility = (
        per_image[per_image["method"].isin(list(METHODS))]
        .groupby("image_id")["mask_ratio"]
        .mean()
        .reindex(chosen["image_id"])
        .to_numpy()
    )
    picked = []
    for _, rows in chosen.groupby("label", sort=False):
        positions = rows.index.to_numpy()
        scored = positions[~np.isnan(plausibility[positions])]
        ranked = scored[np.argsort(-plausibility[scored], kind="stable")]
        ends = [*ranked[:1], *ranked[1:][-1:]] if len(ranked) else []
        ends += [p for p in positions if p not in ends][: max(0, GALLERY_PER_CLASS - len(ends))]
        picked += ends[:GALLERY_PER_CLASS]
    return np.array(picked, int)


def explain_model(*, model, manifest, settings: ExplainSettings, outputs: ExplainOutputs) -> pd.DataFrame:
    """The rule's work: explain a stratified test sample of `manifest` with the Keras model in file `model`,
    write maps, gallery, tables (files only).

    Returns the explanation means (method or method pair, class, metric, n, mean, sd, 95% CI).
    """
    from alldag.images import load_images
    from alldag.models import input_size, load_classifier

    classes, options, seed, label = list(settings.classes), settings.options, settings.seed, settings.key.label
    classifier = load_classifier(model)
    image_size = input_size(classifier)
    rows = read_tsv(manifest)
    chosen = choose_images(rows[rows["split"] == "test"], options.images_per_class, seed)
    images = load_images(chosen["path"], image_size)
    found = load_masks(chosen, image_size)
    masks, sources = [f.mask for f in found], [f.source for f in found]
    maps, segments, predicted, proba, method_rows, pair_rows = explain_images(
        classifier, images, masks, options, seed, label=f"explain {label}"
    )
    per_image = _with_image_columns(method_rows, chosen, classes, predicted, proba, sources)
    agreement = _with_image_columns(pair_rows, chosen, classes, predicted, proba, sources)
    means = summarise_explanations(per_image, agreement)
    write_tsv_atomic(per_image, outputs.explanations)
    write_tsv_atomic(agreement, outputs.agreement)
    write_tsv_atomic(means, outputs.explanation_summary)
    no_mask = np.zeros((image_size, image_size), bool)
    np.savez_compressed(
        outputs.heatmaps,
        image_id=chosen["image_id"].to_numpy(str),
        segments=segments.astype(np.int32),
        masks=np.stack([no_mask if m is None else m for m in masks]),
        has_mask=np.array([m is not None for m in masks]),
        mask_source=np.array(sources, str),
        **maps,
    )
    shown = gallery_choice(per_image, chosen)
    metrics = per_image.set_index(["image_id", "method"])
    notes = {m: [map_caption(metrics.loc[(chosen.at[i, "image_id"], m)]) for i in shown] for m in METHODS}
    titles = [f"{chosen.at[i, 'label']} -> {classes[predicted[i]]} ({proba[i].max():.2f})" for i in shown]
    save(
        explanation_gallery(
            images[shown],
            {m: maps[m][shown] for m in METHODS},
            notes,
            segments[shown],
            [masks[i] for i in shown],
            [sources[i] for i in shown],
            corner_region(image_size, options.corner_fraction),
            titles,
            f"{label}: explanations ({len(chosen)} test images measured; per class the best "
            f"and the worst on the leukocytes)",
        ),
        outputs.gallery,
    )
    overall = means[means["label"] == ALL_CLASSES]
    table = overall.pivot(index="method", columns="metric", values="mean").round(3)
    maps_only = table.index.isin([*METHODS, UNIFORM])
    log.info(
        "%s explanation means (masks: %s):\n%s\n%s",
        label,
        pd.Series(sources).value_counts().to_dict(),
        table[maps_only].dropna(axis=1, how="all").to_string(),
        table[~maps_only].dropna(axis=1, how="all").to_string(),
    )
    return means
