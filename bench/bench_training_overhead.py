"""Benchmark: epoch time of our training job's fit (checkpoints, progress lines, seeded augmentation pipeline)
vs a bare `model.fit` on the same model, data and augmentation. The training job writes files only (the
track job logs its epochs to MLflow afterwards), so no MLflow call sits in the timed loop.

Steady-state epoch time = the median gap between consecutive epoch ends after the first epoch (ours:
after the checkpoint is written), so model building, graph tracing and the first epoch's decoding are left
out on both sides. Target (issue 4): ours within 5 %.

Usage: python bench/bench_training_overhead.py [--backbone MobileNet] [--size 96] [--images 320]
       [--epochs 5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def epoch_gaps(stamps: list[float]) -> list[float]:
    return [b - a for a, b in zip(stamps, stamps[1:])]


def bare_fit(settings, manifest, spec, epochs: int) -> list[float]:
    import keras

    from alldag.augment import build_augmenter
    from alldag.inputs import make_dataset
    from alldag.models import build_classifier

    keras.utils.set_random_seed(settings.seed)
    train = manifest[manifest["split"] == "train"]
    train_ds = make_dataset(
        train,
        settings.image_size,
        settings.batch_size,
        training=True,
        augmenter=build_augmenter(spec),
        seed=settings.seed,
    )
    val_ds = make_dataset(manifest[manifest["split"] == "val"], settings.image_size, settings.batch_size)
    model = build_classifier(
        settings.backbone, len(settings.classes), settings.image_size, None, settings.dropout, settings.bn_momentum
    )
    model.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stamps = []
    stamp = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: stamps.append(time.perf_counter()))
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=0, callbacks=[stamp])
    return epoch_gaps(stamps)


def our_fit(settings, manifest, spec, epochs: int, workdir: Path, every_s: float) -> list[float]:
    """alldag.train.fit as the training job runs it: checkpoints every `every_s` s and after the last epoch;
    timed at the end of each epoch's checkpoint callback."""
    import dataclasses

    from alldag import checkpoint
    from alldag.train import fit

    settings = dataclasses.replace(settings, epochs=epochs)
    checkpoint.clear(workdir / "ckpt")
    stamps, original = [], checkpoint.checkpoint_callback

    def timed_checkpoint_callback(*args, **kwargs):
        callback = original(*args, **kwargs)
        on_epoch_end = callback.on_epoch_end

        def stamped(epoch, logs=None):
            on_epoch_end(epoch, logs)
            stamps.append(time.perf_counter())

        callback.on_epoch_end = stamped
        return callback

    checkpoint.checkpoint_callback = timed_checkpoint_callback
    try:
        fit(settings, manifest, spec, workdir / "ckpt", checkpoint_every_s=every_s)
    finally:
        checkpoint.checkpoint_callback = original
    return epoch_gaps(stamps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="MobileNet")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--images", type=int, default=320, help="images in all (Benign and Pro)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs after the first, timed")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from alldag.augment import augmentation_spec
    from alldag.data import scan_dataset
    from alldag.split import SplitSettings, make_folds
    from alldag.synthetic import generate_dataset
    from alldag.train import TrainSettings

    settings = TrainSettings(
        args.backbone,
        "benign_vs_pro",
        0,
        ("Benign", "Pro"),
        args.size,
        1,
        16,
        1e-3,
        None,
        0.3,
        0.9,
        False,
        0,
        class_weights=False,
    )
    spec = augmentation_spec(20, 0.2, False, False, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate_dataset(tmp / "ALL", {"Benign": args.images // 2, "Pro": args.images // 2}, seed=0, size=224)
        data = scan_dataset(tmp / "ALL")
        data["y"] = (data["label"] == "Pro").astype(int)
        manifest = make_folds(data, SplitSettings(1, 0.15, 0.15, 0))[0]
        ours = {
            "alldag fit, job default (checkpoint every 2 min + last epoch)": 120.0,
            "alldag fit, checkpoint every epoch": 0.0,
        }
        results = {"bare model.fit": [], **{name: [] for name in ours}}
        for _ in range(args.repeats):  # interleaved, so drifting machine load hits all alike
            results["bare model.fit"].append(statistics.median(bare_fit(settings, manifest, spec, 1 + args.epochs)))
            for name, every_s in ours.items():
                results[name].append(
                    statistics.median(our_fit(settings, manifest, spec, 1 + args.epochs, tmp, every_s))
                )
    n_train = int((manifest["split"] == "train").sum())
    print(
        f"{args.backbone} {args.size} px, {n_train} training images, batch 16, {os.cpu_count()} CPUs; "
        f"steady-state epoch time, median of {args.repeats}"
    )
    print("| training | epoch s (each repeat) | median epoch s |\n|---|---|---|")
    for name, times in results.items():
        print(f"| {name} | {', '.join(f'{t:.2f}' for t in times)} | {statistics.median(times):.2f} |")
    bare = statistics.median(results["bare model.fit"])
    ratios = {name: statistics.median(results[name]) / bare for name in ours}
    for name, ratio in ratios.items():
        print(f"overhead of {name}: {100 * (ratio - 1):+.1f} %")
    print("target (the job's default): <= +5 %")
    return 0 if next(iter(ratios.values())) <= 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
