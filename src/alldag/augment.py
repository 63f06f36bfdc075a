"""Augmentation spec (the study's rotation and brightness, plus optional flips) and its Keras layers."""

from __future__ import annotations

import json
import os
from pathlib import Path


def augmentation_spec(rotation_degrees: float, brightness: float, horizontal_flip: bool,
                      vertical_flip: bool, seed: int, hue: float = 0.0, saturation: float = 0.0,
                      contrast: float = 0.0) -> dict:
    """The augmentation the trainer applies, as plain data (written to the DAG, logged to MLflow)."""
    return {"rotation_degrees": float(rotation_degrees), "brightness": float(brightness),
            "horizontal_flip": bool(horizontal_flip), "vertical_flip": bool(vertical_flip),
            "hue": float(hue), "saturation": float(saturation), "contrast": float(contrast), "seed": int(seed)}


def write_spec(spec: dict, path: str | os.PathLike) -> None:
    Path(path).write_text(json.dumps(spec, indent=2, sort_keys=True))


def read_spec(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())


def build_augmenter(spec: dict):
    """A keras.Sequential applying spec to float RGB batches in [0, 255]; seeded, train-time only.

    Returns None when the spec turns every augmentation off.
    """
    import keras

    seed = spec["seed"]
    layers = []
    flip = {(True, True): "horizontal_and_vertical", (True, False): "horizontal",
            (False, True): "vertical"}.get((spec["horizontal_flip"], spec["vertical_flip"]))
    if flip:
        layers.append(keras.layers.RandomFlip(flip, seed=seed))
    if spec["rotation_degrees"] > 0:
        layers.append(keras.layers.RandomRotation(spec["rotation_degrees"] / 360.0, fill_mode="reflect",
                                                  seed=seed + 1))
    if spec["brightness"] > 0:
        layers.append(keras.layers.RandomBrightness(spec["brightness"], value_range=(0.0, 255.0), seed=seed + 2))
    # stain jitter: smears differ in hue and saturation from lab to lab and day to day
    if spec.get("hue", 0) > 0:
        layers.append(keras.layers.RandomHue(spec["hue"], value_range=(0.0, 255.0), seed=seed + 3))
    if spec.get("saturation", 0) > 0:
        s = spec["saturation"] / 2  # RandomSaturation's factor: 0.5 = unchanged
        layers.append(keras.layers.RandomSaturation((0.5 - s, 0.5 + s), value_range=(0.0, 255.0), seed=seed + 4))
    if spec.get("contrast", 0) > 0:
        layers.append(keras.layers.RandomContrast(spec["contrast"], value_range=(0.0, 255.0), seed=seed + 5))
    return keras.Sequential(layers, name="augmentation") if layers else None


def augmentation_preview(manifest_rows, spec: dict, image_size: int, out_png, n_images: int = 6) -> None:
    """Figure: n_images training images, each shown raw and after one augmentation draw."""
    import numpy as np

    from alldag.figures import image_grid_figure, save
    from alldag.inputs import load_images

    rows = manifest_rows.sort_values("image_id").groupby("label").head(max(1, n_images // 2)).head(n_images)
    raw = load_images(rows["path"], image_size)
    augmenter = build_augmenter(spec)
    augmented = np.asarray(augmenter(raw, training=True)) if augmenter is not None else raw
    images = np.concatenate([raw, augmented])
    titles = [f"{lbl}" for lbl in rows["label"]] + [f"{lbl} (augmented)" for lbl in rows["label"]]
    save(image_grid_figure(images, titles, "Training augmentation", ncols=len(rows)), out_png)


def write_augmentation(manifest_tsv, augment: dict, seed: int, image_size: int, spec_out, preview_out) -> dict:
    """The `augment` stage: write the spec the trainer applies and a preview of it on training images."""
    from alldag.data import read_tsv

    spec = augmentation_spec(seed=seed, **augment)
    write_spec(spec, spec_out)
    manifest = read_tsv(manifest_tsv)
    augmentation_preview(manifest[manifest["split"] == "train"], spec, image_size, preview_out)
    return spec
