"""Benchmark: leukocyte masks on the synthetic smears (real colours) against the generator's exact masks.

Usage: .venv/bin/python bench/bench_masks.py [--images 30] [--seed 5]
Per class: IoU of the cleaned good Segmented/ twin (alldag.masks.mask_from_segmented) and of the old fixed
threshold (max channel > 24) on the same twin; pixel precision and recall of the fallback colour model
(alldag.masks.colour_mask), calibrated as on the real data on good twins of Benign, Early and Pre-B only (other
images than those scored; Pro-B twins fail), and of DEFAULT_COLOUR_MODEL; time per image. Every image goes
through JPEG as in the dataset. Targets (tests/unit/test_leukocyte_masks.py): cleaned twin >= 0.75 IoU;
fallback precision >= 0.7 and recall >= 0.8 for every class.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image

from alldag.classes import CLASSES
from alldag.masks import DEFAULT_COLOUR_MODEL, colour_mask, fit_colour_model, mask_from_segmented, mask_overlap
from alldag.synthetic import JPEG_QUALITY, generated_field, segmented_twin, twin_rng


def _jpeg(image: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return np.asarray(Image.open(buffer).convert("RGB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    fields = {
        c: [
            (_jpeg(img), exact)
            for img, exact in (generated_field(c, i, args.seed) for i in range(1, 2 * args.images + 1))
        ]
        for c in CLASSES
    }
    calibration = [f for c in ("Benign", "Early", "Pre") for f in fields[c][args.images :]]
    twins = [
        mask_from_segmented(_jpeg(segmented_twin(i, m, twin_rng(args.seed, "Pre", k), "good")))
        for k, (i, m) in enumerate(calibration)
    ]
    start = time.perf_counter()
    model = fit_colour_model([i for i, _ in calibration], twins, seed=0)
    fit_s = time.perf_counter() - start
    print(f"colour model calibrated on {len(calibration)} good twins in {fit_s:.1f} s: {model}")
    print(f"{'class':8} {'cleaned twin IoU':>18} {'fixed threshold':>16} {'fallback P / R':>16} {'default P / R':>16}")
    times = {"cleaned": [], "colour": []}
    for cls in CLASSES:
        cleaned, plain, fitted, default = [], [], [], []
        for i, (image, exact) in enumerate(fields[cls][: args.images], start=1):
            twin = _jpeg(segmented_twin(image, exact, twin_rng(args.seed, cls, i), "good"))
            start = time.perf_counter()
            cleaned.append(mask_overlap(mask_from_segmented(twin), exact)["iou"])
            times["cleaned"].append(time.perf_counter() - start)
            plain.append(mask_overlap(twin.max(axis=-1) > 24, exact)["iou"])
            start = time.perf_counter()
            fitted.append(mask_overlap(colour_mask(image, model), exact))
            times["colour"].append(time.perf_counter() - start)
            default.append(mask_overlap(colour_mask(image, DEFAULT_COLOUR_MODEL), exact))
        pr = [
            f"{np.mean([s['precision'] for s in v]):.3f} / {np.mean([s['recall'] for s in v]):.3f}"
            for v in (fitted, default)
        ]
        print(f"{cls:8} {np.mean(cleaned):>18.3f} {np.mean(plain):>16.3f} {pr[0]:>16} {pr[1]:>16}")
    print(
        f"time per 224-px image: cleaned twin {1000 * np.median(times['cleaned']):.1f} ms, "
        f"colour model {1000 * np.median(times['colour']):.1f} ms (medians)"
    )


if __name__ == "__main__":
    main()
