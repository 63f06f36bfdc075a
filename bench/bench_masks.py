"""Benchmark: leukocyte masks on the synthetic twins against the generator's exact masks.

Usage: .venv/bin/python bench/bench_masks.py [--images 30] [--seed 5]
Per class: mean and minimum IoU of the cleaned Segmented/ twin (alldag.masks.mask_from_segmented), of the
old fixed threshold (max channel > 24) on the same twin, and of the stain fallback (alldag.masks.stain_mask)
on the original; and the time per image of each. Twins carry the generator's artefacts (JPEG speckle,
faint red-cell outlines); fields have extra leukocytes at the generator's rate; every image goes through
JPEG as in the dataset. Targets (tests/unit/test_leukocyte_masks.py): cleaned >= 0.8, stain >= 0.6.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image

from alldag.classes import CLASSES
from alldag.masks import mask_from_segmented, stain_mask
from alldag.synthetic import JPEG_QUALITY, generated_field, segmented_twin, twin_rng


def _jpeg(image: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    print(f"{'class':8} {'cleaned twin':>18} {'fixed threshold':>18} {'stain fallback':>18}   (mean / min IoU)")
    times = {"cleaned": [], "stain": []}
    for cls in CLASSES:
        scores = {"cleaned": [], "plain": [], "stain": []}
        for i in range(1, args.images + 1):
            image, exact = generated_field(cls, i, args.seed)
            image = _jpeg(image)
            twin = _jpeg(segmented_twin(image, exact, twin_rng(args.seed, cls, i), failed=False))
            start = time.perf_counter()
            scores["cleaned"].append(_iou(mask_from_segmented(twin), exact))
            times["cleaned"].append(time.perf_counter() - start)
            scores["plain"].append(_iou(twin.max(axis=-1) > 24, exact))
            start = time.perf_counter()
            scores["stain"].append(_iou(stain_mask(image), exact))
            times["stain"].append(time.perf_counter() - start)
        print(f"{cls:8} " + " ".join(f"{np.mean(v):>11.3f} / {np.min(v):.3f}" for v in scores.values()))
    print(
        f"time per 224-px image: cleaned twin {1000 * np.median(times['cleaned']):.1f} ms, "
        f"stain {1000 * np.median(times['stain']):.1f} ms (medians)"
    )


if __name__ == "__main__":
    main()
