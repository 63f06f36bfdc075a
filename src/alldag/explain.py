"""The `explain` stage: Grad-CAM and LIME heatmaps on test images, and how far they agree.

Agreement is measured, not eyeballed: per image, the Spearman rank correlation of the two
heatmaps, the IoU of their top-20% regions, and for each method the share of its mass inside the
leukocyte mask (from Segmented/) plus whether its peak falls inside it (the pointing game).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from alldag.data import read_tsv, write_tsv_atomic
from alldag.figures import explanation_figure, save

log = logging.getLogger(__name__)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TOP_FRACTION = 0.2  # share of pixels counted as a heatmap's "top region"


def normalise_heatmap(heat: np.ndarray) -> np.ndarray:
    """Clip negatives and scale to [0, 1]; an all-zero map stays zero."""
    heat = np.maximum(np.asarray(heat, np.float32), 0)
    peak = heat.max()
    return heat / peak if peak > 0 else heat


def resize_heatmap(heat: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a 2-D heatmap to (size, size)."""
    from PIL import Image

    return np.asarray(Image.fromarray(np.asarray(heat, np.float32), mode="F").resize((size, size), Image.BILINEAR))


def gradcam_heatmap(img_array: np.ndarray, model, last_conv_layer_name: str, pred_index: int | None = None) -> np.ndarray:
    """Grad-CAM of one image batch (1, H, W, 3) for class pred_index (default: the predicted class).

    Returns an (H, W) map in [0, 1] at the input's resolution.
    """
    import keras
    import tensorflow as tf

    grad_model = keras.Model(model.inputs[0], [model.get_layer(last_conv_layer_name).output, model.output])
    with tf.GradientTape() as tape:
        conv_out, preds = grad_model(img_array)
        if pred_index is None:
            pred_index = int(tf.argmax(preds[0]))
        class_channel = preds[:, pred_index]
    grads = tape.gradient(class_channel, conv_out)
    pooled = tf.reduce_mean(grads, axis=(0, 1, 2))
    heat = tf.squeeze(conv_out[0] @ pooled[..., tf.newaxis]).numpy()
    return normalise_heatmap(resize_heatmap(normalise_heatmap(np.atleast_2d(heat)), img_array.shape[1]))


def lime_segments_to_heatmap(segments: np.ndarray, weights: list[tuple[int, float]]) -> np.ndarray:
    """Paint LIME's per-segment weights (explanation.local_exp[label]) onto its segment map; [0, 1]."""
    heat = np.zeros(segments.shape, np.float32)
    for segment, weight in weights:
        heat[segments == segment] = weight
    return normalise_heatmap(heat)


def lime_heatmap(image: np.ndarray, predict_fn, label: int, num_samples: int, seed: int) -> np.ndarray:
    """LIME heatmap (H, W) in [0, 1] of `label` for one image (H, W, 3) in [0, 255]."""
    from lime import lime_image

    explainer = lime_image.LimeImageExplainer(random_state=seed)
    explanation = explainer.explain_instance(image.astype(np.float64), predict_fn, labels=(label,), top_labels=None,
                                             hide_color=0, num_samples=num_samples, batch_size=64,
                                             random_seed=seed)
    return lime_segments_to_heatmap(explanation.segments, explanation.local_exp[label])


def _top_region(heat: np.ndarray, fraction: float) -> np.ndarray:
    k = max(1, int(round(fraction * heat.size)))
    threshold = np.partition(heat.ravel(), -k)[-k]
    return heat >= threshold if threshold > 0 else np.zeros_like(heat, bool)


def heatmap_agreement(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Agreement of two same-size heatmaps, and (if mask is given) how each falls on the mask.

    Returns spearman (rank correlation, NaN if a map is constant), top_iou (IoU of the top-20%
    regions), and with a mask: a_in_mask / b_in_mask (share of mass inside) and
    a_pointing / b_pointing (1.0 if the peak lies inside the mask).
    """
    flat_a, flat_b = a.ravel(), b.ravel()
    constant = np.ptp(flat_a) == 0 or np.ptp(flat_b) == 0
    out = {"spearman": float("nan") if constant else float(spearmanr(flat_a, flat_b).statistic)}
    ta, tb = _top_region(a, TOP_FRACTION), _top_region(b, TOP_FRACTION)
    union = (ta | tb).sum()
    out["top_iou"] = float((ta & tb).sum() / union) if union else float("nan")
    if mask is not None and mask.any():
        for name, heat in (("a", a), ("b", b)):
            total = heat.sum()
            out[f"{name}_in_mask"] = float(heat[mask].sum() / total) if total > 0 else float("nan")
            out[f"{name}_pointing"] = float(mask.ravel()[int(np.argmax(heat))]) if total > 0 else float("nan")
    return out


def choose_images(test: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """The first `per_class` test images of each class, by image_id (deterministic)."""
    return (test.sort_values("image_id").groupby("label", sort=False).head(per_class)
            .sort_values(["y", "image_id"]).reset_index(drop=True))


def load_mask(mask_path: str, size: int) -> np.ndarray | None:
    """Leukocyte mask at (size, size) from a Segmented/ image, or None when there is none."""
    if not mask_path or not Path(mask_path).is_file():
        return None
    from PIL import Image

    from alldag.synthetic import mask_from_segmented

    seg = np.asarray(Image.open(mask_path).convert("RGB").resize((size, size), Image.NEAREST))
    return mask_from_segmented(seg)


def explain_model(model_path, split_manifest, run_json, classes: list[str], image_size: int, label: str,
                  per_class: int, lime_samples: int, seed: int, gradcam_layer: str | None,
                  heatmaps_out, figure_out, agreement_out) -> pd.DataFrame:
    """Explain a few test images per class with Grad-CAM and LIME; write heatmaps, figure, agreement."""
    from alldag.inputs import load_images
    from alldag.models import last_conv_layer_name, load_classifier
    from alldag.tracking import log_artifact, log_metrics, resume_run

    model = load_classifier(model_path)
    layer = gradcam_layer or last_conv_layer_name(model)
    manifest = read_tsv(split_manifest)
    chosen = choose_images(manifest[manifest["split"] == "test"], per_class)
    images = load_images(chosen["path"], image_size)
    proba = model.predict(images, verbose=0)
    predicted = proba.argmax(axis=1)

    def predict_fn(batch):
        return model.predict(np.asarray(batch, np.float32), verbose=0)

    gradcams, limes, rows = [], [], []
    for i, row in chosen.iterrows():
        gc = gradcam_heatmap(images[i:i + 1], model, layer, int(predicted[i]))
        lm = lime_heatmap(images[i], predict_fn, int(predicted[i]), lime_samples, seed)
        mask = load_mask(row["mask_path"], image_size)
        agreement = heatmap_agreement(gc, lm, mask)
        rows.append({"image_id": row["image_id"], "label": row["label"], "predicted": classes[predicted[i]],
                     "confidence": float(proba[i].max()),
                     **{k.replace("a_", "gradcam_").replace("b_", "lime_"): v for k, v in agreement.items()}})
        gradcams.append(gc)
        limes.append(lm)
    agreement_table = pd.DataFrame(rows)
    np.savez_compressed(heatmaps_out, image_id=chosen["image_id"].to_numpy(str), gradcam=np.stack(gradcams),
                        lime=np.stack(limes), layer=np.array(layer))
    titles = [f"{r.label} -> {r.predicted} ({r.confidence:.2f})" for r in agreement_table.itertuples()]
    save(explanation_figure(images, np.stack(gradcams), np.stack(limes), titles, f"{label}: Grad-CAM vs LIME"),
         figure_out)
    write_tsv_atomic(agreement_table, agreement_out)
    summary = agreement_table.drop(columns=["image_id", "label", "predicted"]).mean(numeric_only=True)
    run = json.loads(Path(run_json).read_text())
    with resume_run(run["tracking_uri"], run["run_id"]):
        log_metrics({f"explain_{k}": v for k, v in summary.items() if not np.isnan(v)})
        log_artifact(figure_out, "figures")
        log_artifact(agreement_out, "explanation")
    log.info("%s explanation agreement (means): %s", label, summary.round(3).to_dict())
    return agreement_table
