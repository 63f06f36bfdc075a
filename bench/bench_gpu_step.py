"""Benchmark: training-step throughput of each backbone at the study's settings (224 px, batch 32).

Runs on any Keras 3 backend (KERAS_BACKEND=jax on a GPU box without TensorFlow; tensorflow here),
with random images and random initial weights, and extrapolates the full study's training time:
2 tasks x 25 epochs over the study's training images (70 % of 3256 for four_class, of 1308 for
benign_vs_pro). Also checks that precise-BN recalibration runs on this backend.

Usage: KERAS_BACKEND=jax python bench/bench_gpu_step.py [--steps 30] [--backbones VGG16 ...] [--mixed]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

TRAIN_IMAGES = {"four_class": int(0.7 * 3256), "benign_vs_pro": int(0.7 * (504 + 804))}
EPOCHS = 25


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--backbones", nargs="+", default=["Xception", "VGG16", "VGG19", "MobileNet"])
    parser.add_argument("--mixed", action="store_true", help="mixed_float16 (as on a GPU)")
    args = parser.parse_args()

    import keras

    from alldag.models import build_classifier, recalibrate_batchnorm

    if args.mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, policy "
        f"{keras.mixed_precision.global_policy().name}",
        flush=True,
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 4, args.batch)
    total = 0.0
    for name in args.backbones:
        model = build_classifier(name, 4, args.size, None)
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
        model.train_on_batch(x, y)  # compile / warm up
        model.train_on_batch(x, y)
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = model.train_on_batch(x, y)
        float(np.asarray(loss))  # wait for the device
        step = (time.perf_counter() - start) / args.steps
        images_s = args.batch / step
        study_s = sum(EPOCHS * n / images_s for n in TRAIN_IMAGES.values())
        total += study_s
        bn = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        before = [np.asarray(layer.moving_mean).copy() for layer in bn]
        n_bn = recalibrate_batchnorm(model, [(x, y), (x[::-1], y)])
        changed = sum(not np.allclose(b, np.asarray(layer.moving_mean)) for b, layer in zip(before, bn))
        print(
            f"{name:10s} {step * 1000:8.1f} ms/step  {images_s:8.0f} images/s  "
            f"study training (2 tasks x {EPOCHS} epochs) ~ {study_s / 60:6.1f} min  "
            f"precise BN: {changed}/{n_bn} layers updated",
            flush=True,
        )
    print(f"all backbones: ~ {total / 60:.1f} min of training for the full study (one device, jobs in sequence)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
