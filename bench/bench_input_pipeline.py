"""Benchmark: images/s of our tf.data input pipeline vs Keras' ImageDataGenerator, same augmentations.

Both read the same JPEG files (the synthetic generator's, 224 px) and apply the study's train-time
augmentation: random rotation up to 20 degrees and brightness +-20 %, then batch. ImageDataGenerator
is the study's tool (Keras 3 keeps it as keras.src.legacy.preprocessing.image). Each pipeline runs
`--epochs` passes over the files; the first pass of tf.data also decodes (into its uint8 cache) and
compiles the rotation (later passes read the cache). 1,000 images is about the size of the study's
binary task (1,308). Targets (issue 29): tf.data >= 10x the images/s of ImageDataGenerator on the
mean over the epochs, and >= 4x in the first epoch.

Usage: python bench/bench_input_pipeline.py [--images 1000] [--epochs 3] [--size 224] [--batch 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def tf_data_images_per_s(rows, size: int, batch: int, epochs: int) -> list[float]:
    from alldag.augment import augmentation_spec, build_augmenter
    from alldag.inputs import make_dataset

    spec = augmentation_spec(20, 0.2, False, False, seed=0)
    ds = make_dataset(rows, size, batch, training=True, augmenter=build_augmenter(spec), seed=0)
    rates = []
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        for images, _ in ds:
            n += int(images.shape[0])
        rates.append(n / (time.perf_counter() - start))
    return rates


def image_data_generator_images_per_s(rows, size: int, batch: int, epochs: int) -> list[float]:
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    generator = ImageDataGenerator(rotation_range=20, brightness_range=(0.8, 1.2), fill_mode="reflect")
    flow = generator.flow_from_dataframe(
        rows.assign(label=rows["label"].astype(str)),
        x_col="path",
        y_col="label",
        target_size=(size, size),
        batch_size=batch,
        class_mode="sparse",
        shuffle=True,
        seed=0,
    )
    rates = []
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        for i in range(len(flow)):
            images, _ = flow[i]
            n += len(images)
        flow.on_epoch_end()
        rates.append(n / (time.perf_counter() - start))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="images in all (4 classes)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    from alldag.classes import CLASSES
    from alldag.data import scan_dataset
    from alldag.synthetic import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(Path(tmp) / "ALL", {c: args.images // len(CLASSES) for c in CLASSES}, seed=0, size=224)
        rows = scan_dataset(Path(tmp) / "ALL")
        rows["y"] = rows["label"].map({c: i for i, c in enumerate(CLASSES)})
        ours = tf_data_images_per_s(rows, args.size, args.batch, args.epochs)
        theirs = image_data_generator_images_per_s(rows, args.size, args.batch, args.epochs)
    print(
        f"{len(rows)} JPEGs, {args.size} px, batch {args.batch}, rotation 20 deg + brightness 0.2, "
        f"{os.cpu_count()} CPUs"
    )
    print("| pipeline | " + " | ".join(f"epoch {i + 1} img/s" for i in range(args.epochs)) + " | mean img/s |")
    print("|---|" + "---|" * (args.epochs + 1))
    for name, rates in (("tf.data (alldag.inputs)", ours), ("ImageDataGenerator", theirs)):
        print(f"| {name} | " + " | ".join(f"{r:.0f}" for r in rates) + f" | {sum(rates) / len(rates):.0f} |")
    speedup = (sum(ours) / len(ours)) / (sum(theirs) / len(theirs))
    first = ours[0] / theirs[0]
    print(f"speed-up: {speedup:.1f}x mean over epochs (target >= 10x); {first:.1f}x in the first epoch (target >= 4x)")
    return 0 if speedup >= 10 and first >= 4 else 1


if __name__ == "__main__":
    sys.exit(main())
