"""Benchmark: the cost of explaining one image, against the model's own forward passes.

Usage: .venv/bin/python bench/bench_explain.py [--backbone MobileNet] [--sizes 72 224] [--samples 1000]
       [--batch-size 100] [--images 3]
Targets: LIME per image <= 1.10 x the time of `samples` forward passes at the same batch size (LIME's
own overhead < 10 %); Grad-CAM with Grad-CAM++ (one traced pass) per image <= 1.5 x one forward pass
batched (`batch-size` images), <= 3 x at batch size 1. Random-weight model, synthetic smears; LIME times
are medians over the images, Grad-CAM and forward times medians of interleaved calls.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from alldag.explain import (  # noqa: E402
    _lime_explainer,
    background_fill,
    batched_predict,
    gradient_cam_fn,
    lime_explanation,
    quickshift_kernel,
)
from alldag.models import build_classifier, last_conv_layer_name  # noqa: E402
from alldag.synthetic import image_rng, render_smear  # noqa: E402

LIME_TARGET, GRADCAM_TARGET, GRADCAM_ONE_TARGET = 1.10, 1.5, 3.0


def timed(fn, repeat: int = 1) -> float:
    """Median seconds of `repeat` calls of fn()."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def interleaved(first, second, repeat: int = 5) -> tuple[float, float]:
    """Median seconds of first() and of second(), called in turn: load from other processes hits both alike."""
    pairs = [(timed(first), timed(second)) for _ in range(repeat)]
    return tuple(float(np.median(times)) for times in zip(*pairs))


def lime_parts(image, samples: int, batch: int, kernel: float) -> dict:
    """Seconds spent in quickshift, in building the perturbed images, and in the rest of LIME."""
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    pixels = image.astype(np.uint8)
    segments = SegmentationAlgorithm("quickshift", kernel_size=kernel, max_dist=200, ratio=0.2, random_seed=0)(pixels)
    no_model = lambda imgs: np.zeros((len(imgs), 2))  # noqa: E731
    fill = background_fill(pixels).astype(np.uint8)
    return {
        "quickshift": timed(
            lambda: SegmentationAlgorithm("quickshift", kernel_size=kernel, max_dist=200, ratio=0.2, random_seed=0)(
                pixels
            ),
            3,
        ),
        "perturb": timed(lambda: _lime_explainer(0).data_labels(pixels, fill, segments, no_model, samples, batch), 3),
        "segments": int(segments.max() + 1),
    }


def bench_size(backbone: str, size: int, samples: int, batch: int, n_images: int) -> tuple[list[str], bool]:
    """Table lines for one image size, and whether every target was met."""
    model = build_classifier(backbone, 2, size, None)
    predict = batched_predict(model, batch)
    images = np.stack([render_smear("Pro", image_rng(0, "Pro", i), size)[0] for i in range(n_images)])
    images = images.astype(np.float32)
    probe = np.repeat(images[:1], samples, axis=0)
    kernel = quickshift_kernel(4.0, size)  # the config default
    in_model = []

    def counting_predict(batch_images):
        start = time.perf_counter()
        out = predict(batch_images)
        in_model.append(time.perf_counter() - start)
        return out

    predict(probe)  # warm-up: trace every batch shape
    lime_explanation(images[0], predict, 0, samples, batch, 0, kernel)
    forwards, limes, overheads = [], [], []
    for img in images:  # reference forward passes just before and after each LIME: load from other processes hits both
        before = timed(lambda: predict(probe))
        in_model.clear()
        limes.append(timed(lambda img=img: lime_explanation(img, counting_predict, 0, samples, batch, 0, kernel)))
        overheads.append(limes[-1] - sum(in_model))
        forwards.append((before + timed(lambda: predict(probe))) / 2)
    forward, lime, overhead = (float(np.median(v)) for v in (forwards, limes, overheads))
    parts = lime_parts(images[0], samples, batch, kernel)
    cams = gradient_cam_fn(model, last_conv_layer_name(model), batch_size=batch)
    rows, met = [], lime / forward <= LIME_TARGET
    for n, target in ((1, GRADCAM_ONE_TARGET), (batch, GRADCAM_TARGET)):
        x, classes = np.repeat(images[:1], n, axis=0), np.zeros(n, int)
        cams(x, classes)
        model.predict_on_batch(x)
        one, cam = (
            t / n for t in interleaved(lambda x=x: model.predict_on_batch(x), lambda x=x, c=classes: cams(x, c))
        )
        met &= cam / one <= target
        rows.append(
            f"{backbone} {size:>3} px | Grad-CAM+Grad-CAM++ batch {n:>3}: {cam * 1e3:8.2f} ms/image, forward "
            f"{one * 1e3:7.2f} ms/image, ratio {cam / one:4.2f} (target <= {target})"
        )
    return [
        f"{backbone} {size:>3} px | LIME {samples} samples, batch {batch}: {lime:6.2f} s/image, {samples} forward "
        f"passes {forward:6.2f} s, ratio {lime / forward:4.2f} (target <= {LIME_TARGET}); outside the model "
        f"{overhead:5.2f} s = {overhead / forward:.0%} of the forward passes; quickshift "
        f"{parts['quickshift'] * 1e3:.0f} ms ({parts['segments']} superpixels), perturbation "
        f"{parts['perturb'] * 1e3:.0f} ms",
        *rows,
    ], met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", default="MobileNet")
    parser.add_argument("--sizes", type=int, nargs="+", default=[72, 224])
    parser.add_argument("--samples", type=int, default=1000, help="LIME num_samples")
    parser.add_argument("--batch-size", type=int, default=100, help="LIME / forward batch size")
    parser.add_argument("--images", type=int, default=3, help="images explained per size (median)")
    args = parser.parse_args()
    ok = True
    for size in args.sizes:
        lines, met = bench_size(args.backbone, size, args.samples, args.batch_size, args.images)
        ok &= met
        print("\n".join(lines), flush=True)
    print(f"targets: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
