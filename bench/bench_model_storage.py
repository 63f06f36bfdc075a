"""Benchmark: bytes each trained model puts on disk, before and after models were stored once and lean.

Before: the DAG's model.keras with Adam's state, plus a second full copy as the MLflow artifact.
After: one file without optimizer state (the DAG output is a hard link to the MLflow artifact).
Builds each config backbone (random weights, one Adam step so its state exists), saves it both ways and
projects the demo (2 tasks x 4 backbones x 1 fold) and the full study (x 5 folds).

Usage: python bench/bench_model_storage.py [--size 72] [--folds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def sizes(backbone: str, n_classes: int, size: int, folder: Path) -> tuple[int, int]:
    """(bytes with Adam's state, bytes lean) of one saved classifier."""
    import keras
    import numpy as np

    from alldag.logged_model import lean_copy
    from alldag.models import build_classifier

    model = build_classifier(backbone, n_classes, size, None)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    model.train_on_batch(np.zeros((2, size, size, 3), np.float32), np.zeros(2))
    full, lean = folder / f"{backbone}_full.keras", folder / f"{backbone}_lean.keras"
    model.save(full)
    lean_copy(model).save(lean)
    return full.stat().st_size, lean.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=72, help="image size (the head's size does not depend on it)")
    parser.add_argument("--folds", type=int, default=5, help="folds of the full study")
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    tasks = config["tasks"]
    before = after = 0
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in config["backbones"]:
            for task, classes in tasks.items():
                full, lean = sizes(backbone, len(classes), args.size, Path(tmp))
                before, after = before + 2 * full, after + lean  # before: DAG file + MLflow copy, both with Adam
                print(f"{backbone:10s} {task:14s} with Adam {full / 1e6:7.1f} MB   lean {lean / 1e6:7.1f} MB")
    print(
        f"demo (1 fold, {len(tasks)} tasks x {len(config['backbones'])} backbones): before {before / 1e9:.2f} GB, "
        f"now {after / 1e9:.2f} GB of models"
    )
    print(
        f"full study ({args.folds} folds): before {args.folds * before / 1e9:.2f} GB, "
        f"now {args.folds * after / 1e9:.2f} GB of models"
    )


if __name__ == "__main__":
    main()
