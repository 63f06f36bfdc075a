"""The dataset's images: what is in the folder and each task's subset.

The same code reads the built-in synthetic dataset, a local copy of the real one, and the Kaggle
download: all three share the layout ``<root>/Original/<Class>/*.jpg`` with a ``Segmented/`` twin.
Where the images come from (the source decision, the Kaggle probe) is alldag.download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from alldag import AlldagError
from alldag.classes import CLASSES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DATASET_COLUMNS = ["image_id", "label", "path", "mask_path"]


def scan_dataset(root: str | os.PathLike, folder: str = "Original") -> pd.DataFrame:
    """List every image under <root>/<folder>/<Class>/ with its Segmented/ twin.

    Returns a DataFrame with columns image_id ('<Class>/<file name>'), label, path (absolute)
    and mask_path (absolute, '' when there is no Segmented/ twin), sorted by image_id.
    """
    root = Path(root).resolve()
    base = root / folder
    if not base.is_dir():
        raise AlldagError(
            f"'{root}' has no {folder}/ folder: expected {base}/<Class>/*.jpg with Class in {', '.join(CLASSES)}"
        )
    rows = []
    for cls in CLASSES:
        cls_dir = base / cls
        if not cls_dir.is_dir():
            continue
        for f in sorted(cls_dir.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES or not f.is_file():
                continue
            twin = root / "Segmented" / cls / f.name
            rows.append((f"{cls}/{f.name}", cls, str(f), str(twin) if twin.is_file() else ""))
    return pd.DataFrame(rows, columns=DATASET_COLUMNS)


def class_counts(root: str | os.PathLike, folder: str = "Original") -> dict[str, int]:
    """Number of image files per class folder (0 for a missing folder), without decoding."""
    base = Path(root) / folder
    return {
        c: sum(1 for f in (base / c).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if (base / c).is_dir() else 0
        for c in CLASSES
    }


def check_tasks(tasks: dict[str, list[str]], counts: dict[str, int] | None = None) -> None:
    """Fail with one line if a task names an unknown class, has < 2 classes, or a class has no images."""
    for task, classes in tasks.items():
        unknown = [c for c in classes if c not in CLASSES]
        if unknown:
            raise AlldagError(
                f"task '{task}' names unknown class(es) {', '.join(unknown)}: use classes from {', '.join(CLASSES)}"
            )
        if len(set(classes)) < 2:
            raise AlldagError(f"task '{task}' needs at least two distinct classes, got {classes}")
        if counts is not None:
            empty = [c for c in classes if counts.get(c, 0) == 0]
            if empty:
                raise AlldagError(
                    f"task '{task}' needs class(es) {', '.join(empty)} but the dataset "
                    f"has no images for them: add the images or remove the class from the task"
                )


@dataclass(frozen=True)
class SubsetSettings:
    """A task's subset: its classes (in label-index order), the cap per class (None: every image) and the
    seed of the capped draw."""

    classes: tuple[str, ...]
    max_per_class: int | None
    seed: int

    @classmethod
    def from_params(cls, params) -> SubsetSettings:
        """From the subset rule's params (classes, max_per_class, seed)."""
        return cls(tuple(params.classes), params.max_per_class, params.seed)


def write_subset(*, images, settings: SubsetSettings, out) -> pd.DataFrame:
    """The `subset` stage: the task's rows of the audited image list `images`, written to `out`."""
    from alldag.tables import read_tsv, write_tsv_atomic

    s = settings
    subset = select_subset(read_tsv(images), list(s.classes), max_per_class=s.max_per_class, seed=s.seed)
    write_tsv_atomic(subset, out)
    return subset


def select_subset(dataset: pd.DataFrame, classes: list[str], max_per_class: int | None, seed: int) -> pd.DataFrame:
    """The task's images: rows of `classes`, each class capped at max_per_class by a seeded draw.

    Adds column `y` (the class index in `classes` order). Raises AlldagError if a class is empty.
    """
    parts = []
    for y, cls in enumerate(classes):
        rows = dataset[dataset["label"] == cls]
        if rows.empty:
            raise AlldagError(f"class '{cls}' has no images in the dataset: add them or drop it from the task")
        if max_per_class is not None and len(rows) > max_per_class:
            rows = rows.sample(n=max_per_class, random_state=seed).sort_values("image_id")
        parts.append(rows.assign(y=y))
    return pd.concat(parts, ignore_index=True)
