"""Dataset ingest: where the images come from, what is in the folder, and each task's subset.

The same code reads the built-in synthetic dataset, a local copy of the real one, and the Kaggle
download: all three share the layout ``<root>/Original/<Class>/*.jpg`` with a ``Segmented/`` twin.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from alldag import AlldagError
from alldag.classes import CLASSES

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DATASET_COLUMNS = ["image_id", "label", "path", "mask_path"]


@dataclass(frozen=True)
class SourceDecision:
    """Which dataset a run uses: kind is 'synthetic', 'local' or 'kaggle'; root is set for local."""

    kind: str
    root: str | None
    reason: str
    demo: bool  # True when 'auto' fell back to synthetic data: the fast demo settings apply

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def has_layout(root: str | os.PathLike) -> bool:
    """True if root holds an Original/ folder with at least one known class folder."""
    original = Path(root) / "Original"
    return original.is_dir() and any((original / c).is_dir() for c in CLASSES)


def kaggle_endpoint() -> str:
    """The Kaggle API root kagglehub talks to (kagglesdk's choice: KAGGLE_API_ENVIRONMENT, default PROD)."""
    from kagglesdk.kaggle_env import get_endpoint, get_env

    return get_endpoint(get_env())


def kaggle_reachable(timeout_s: float = 5.0) -> bool:
    """True if the Kaggle API answers an HTTP request within timeout_s (any status: it is there).

    The probe uses requests, as kagglehub does, so HTTPS_PROXY/HTTP_PROXY/NO_PROXY and
    REQUESTS_CA_BUNDLE apply to it exactly as they will to the download.
    """
    if os.environ.get("ALLDAG_OFFLINE") == "1":
        return False
    import requests

    try:
        requests.head(kaggle_endpoint(), timeout=timeout_s, allow_redirects=False).close()
        return True
    except requests.RequestException:
        return False


def resolve_source(source: str, local_dir: str | None, online=kaggle_reachable) -> SourceDecision:
    """Decide the dataset source before any job runs.

    source: 'auto' | 'synthetic' | 'local' | 'kaggle'. 'auto' takes a local copy if local_dir
    holds one, else Kaggle if reachable, else synthetic data in demo mode. Raises AlldagError
    (one line, with the fix) when an explicit choice cannot work.
    """
    if source == "synthetic":
        return SourceDecision("synthetic", None, "data.source is 'synthetic'", demo=False)
    if source == "local":
        if not local_dir or not Path(local_dir).is_dir():
            raise AlldagError(
                f"data.source is 'local' but data.local_dir '{local_dir}' is not a folder: "
                "download the ALL dataset (Kaggle mehradaria/leukemia) and set data.local_dir to it"
            )
        if not has_layout(local_dir):
            raise AlldagError(
                f"data.local_dir '{local_dir}' is not laid out as the ALL dataset: expected "
                f"{Path(local_dir) / 'Original'}/<Class>/*.jpg with Class in {', '.join(CLASSES)}"
            )
        return SourceDecision("local", str(Path(local_dir).resolve()), "data.source is 'local'", demo=False)
    if source == "kaggle":
        if not online():
            raise AlldagError(
                f"data.source is 'kaggle' but {kaggle_endpoint()} cannot be reached (behind a proxy, set "
                "HTTPS_PROXY): download https://www.kaggle.com/datasets/mehradaria/leukemia by hand, unzip it, "
                "and set data.source: local with data.local_dir pointing at the folder holding Original/"
            )
        return SourceDecision("kaggle", None, "data.source is 'kaggle'", demo=False)
    if source != "auto":
        raise AlldagError(f"data.source '{source}' is unknown: use auto, synthetic, local or kaggle")
    if local_dir and has_layout(local_dir):
        return SourceDecision(
            "local", str(Path(local_dir).resolve()), f"auto: found a local copy in {local_dir}", demo=False
        )
    if online():
        return SourceDecision("kaggle", None, "auto: no local copy, Kaggle reachable", demo=False)
    return SourceDecision(
        "synthetic",
        None,
        f"auto: no local copy in '{local_dir}' and Kaggle unreachable, so this run uses the BUILT-IN "
        "SYNTHETIC smears with the fast demo settings; its numbers say nothing about real blood smears",
        demo=True,
    )


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


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    """Write text via a temporary file, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_tsv_atomic(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write df as TSV via a temporary file, so a crash never leaves a half-written table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, sep="\t", index=False)
    tmp.replace(path)


def read_tsv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a TSV written by this package, keeping empty strings as ''."""
    return pd.read_csv(path, sep="\t", keep_default_na=False)
