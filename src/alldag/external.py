"""External validation: every model scored on another lab's images (config `external:`).

A set is a folder with one subfolder per label (<folder>/<label>/*.jpg), a map from those labels to this
study's classes (one class is allowed, e.g. benign lymphocytes only) and an optional checksum manifest
(TSV: path relative to the folder, sha256). A `synthetic:` set is drawn by the generator with another lab's
palette, magnification and JPEG quality instead (alldag.synthetic.generate_external_set). The images pass
the audit's checks (quarantine, resize, duplicate clusters) before any model sees them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alldag import AlldagError
from alldag.data import IMAGE_SUFFIXES
from alldag.tables import read_tsv, write_tsv_atomic

log = logging.getLogger(__name__)
ENSEMBLE = "ensemble"  # the fold models' mean probability: the headline score on another lab's images
SUMMARY_COLUMNS = [
    "model",
    "metric",
    "n_images",
    "n_groups",
    "external",
    "ci_low",
    "ci_high",
    "in_domain",
    "drop",
    "drop_ci_low",
    "drop_ci_high",
    "fold_min",
    "fold_max",
]


def synthetic_folder(name: str) -> str:
    """Where the generator writes a synthetic external set (its `folder`)."""
    return f"results/external/{name}/images"


def set_folder(name: str, spec: dict) -> str:
    """The folder of images of external set `name` (config entry `spec`)."""
    return synthetic_folder(name) if spec.get("synthetic") else spec["folder"]


def label_folders(folder) -> dict[str, list[Path]]:
    """label -> image files of <folder>/<label>/ (any depth below the label), sorted."""
    root = Path(folder)
    return {
        d.name: sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        for d in sorted(root.iterdir())
        if d.is_dir()
    }


def check_external(external: dict) -> None:
    """Stop with one line when an external set cannot be scored: no folder, no images, or a label folder its
    class map lacks. Synthetic sets are checked by their generator."""
    for name, spec in external.items():
        where = f"external.{name}"
        if spec.get("synthetic"):
            continue
        if not spec.get("folder"):
            raise AlldagError(f"{where}: give a folder of images (<folder>/<label>/*.jpg) or a synthetic: block")
        folder = Path(spec["folder"])
        if not folder.is_dir():
            raise AlldagError(f"{where}: folder '{folder}' does not exist: fix external.{name}.folder")
        labels = label_folders(folder)
        if not any(labels.values()):
            raise AlldagError(
                f"{where}: folder '{folder}' has no images in label subfolders (<folder>/<label>/*.jpg): "
                "add images or remove the set"
            )
        unmapped = sorted(label for label, files in labels.items() if files and label not in spec["classes"])
        if unmapped:
            raise AlldagError(
                f"{where}: label folder(s) {', '.join(unmapped)} not in its classes map: add them, e.g. "
                f"classes: {{{unmapped[0]}: Benign}}, or move them out of '{folder}'"
            )


def list_external(folder, classes: dict[str, str]) -> pd.DataFrame:
    """The set's images as dataset.tsv rows (image_id '<label>/<file>', label = the study's class, path,
    mask_path '') plus source_label (the folder's own label name)."""
    rows = [
        (f"{label}/{path.relative_to(Path(folder) / label).as_posix()}", classes[label], str(path.resolve()), "", label)
        for label, files in label_folders(folder).items()
        if label in classes
        for path in files
    ]
    return pd.DataFrame(rows, columns=["image_id", "label", "path", "mask_path", "source_label"])


def verify_external(folder, manifest) -> None:
    """Fail with one line unless every file of the checksum manifest (path, sha256) is there, unchanged."""
    from alldag.verify import sha256_file

    table = pd.read_csv(manifest, sep="\t", dtype=str)
    bad = [
        p
        for p, h in zip(table["path"], table["sha256"])
        if not (Path(folder) / p).is_file() or sha256_file(Path(folder) / p) != h
    ]
    if bad:
        raise AlldagError(
            f"external set '{folder}' does not match its manifest ({len(bad)} missing or changed, e.g. {bad[0]}): "
            "restore the files or update the manifest"
        )


@dataclass(frozen=True)
class ExternalAuditSettings:
    """How one external set is read and checked (its config entry and the `audit` config)."""

    name: str
    classes: dict  # label folder -> class
    image_size: int
    near_threshold: float
    manifest: str | None = None


@dataclass(frozen=True)
class ExternalAuditOutputs:
    """The files external_audit writes (paths), as the audit's."""

    images: str
    quarantine: str
    duplicates: str
    summary: str


def audit_external(*, folder, fixed_dir, settings: ExternalAuditSettings, outputs: ExternalAuditOutputs) -> dict:
    """The audit's checks on an external set: verify its manifest (if any), quarantine bad files, resize odd
    sizes, cluster duplicates; write the usable images (with `group`: the duplicate cluster) and the tables."""
    from alldag.audit import check_images
    from alldag.duplicates import cluster_duplicates

    if settings.manifest:
        verify_external(folder, settings.manifest)
    listed = list_external(folder, dict(settings.classes))
    images, features, quarantine = check_images(listed, fixed_dir, settings.image_size, 0.0)
    images, duplicates = cluster_duplicates(images, settings.near_threshold, features=features)
    images = images.assign(group=images["cluster"].astype(str))  # no patients known: duplicates stay together
    summary = {
        "name": settings.name,
        "checked": int(len(listed)),
        "usable": int(len(images)),
        "fixed": int((images["fixed"] != "").sum()),
        "quarantined": int(len(quarantine)),
        "duplicate_clusters": int(duplicates["cluster"].nunique()) if len(duplicates) else 0,
        "per_class": images["label"].value_counts().to_dict(),
    }
    write_tsv_atomic(images, outputs.images)
    write_tsv_atomic(quarantine, outputs.quarantine)
    write_tsv_atomic(duplicates, outputs.duplicates)
    Path(outputs.summary).write_text(json.dumps(summary, indent=2))
    log.info("external set %s: %s", settings.name, summary)
    return summary


@dataclass(frozen=True)
class ExternalOutputs:
    """The files external_validation writes for one model of one task."""

    predictions: str  # predictions.tsv: one row per image and fold, plus the ensemble's rows
    metrics: str  # metrics.json: balanced accuracy (or the one class's recall) per fold and of the ensemble
    fold_metrics: list  # one JSON per fold, of flat MLflow metrics for that fold's run


def task_images(images: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """The external images of a task's classes, with y (index in the task's classes)."""
    rows = images[images["label"].isin(classes)].reset_index(drop=True)
    return rows.assign(y=rows["label"].map({c: i for i, c in enumerate(classes)}).astype(int))


def score_external(*, models: list, manifests: list, images, name: str, settings, outputs: ExternalOutputs) -> dict:
    """Score every fold's model (models[i] the .keras file of fold i, or None: the colour baseline fitted on
    manifests[i]'s training images) on the set's images of the task's classes, and the folds' mean
    probability (ENSEMBLE). settings: alldag.stress.ScoringSettings (its fold is ignored)."""
    from alldag.stress import balanced_accuracy, prediction_rows, predictor

    classes = list(settings.classes)
    rows = task_images(read_tsv(images), classes)
    keep = ["image_id", "label", "y", "group"]
    frames, probas = [], []
    for fold, (model, manifest) in enumerate(zip(models, manifests)):
        proba = (
            predictor(model=model, manifest=read_tsv(manifest), settings=settings)(rows)
            if len(rows)
            else np.zeros((0, len(classes)))
        )
        probas.append(proba)
        frames.append(prediction_rows(rows, proba, classes, keep).assign(fold=str(fold)))
    mean = np.mean(probas, axis=0) if probas else np.zeros((0, len(classes)))
    frames.append(prediction_rows(rows, mean, classes, keep).assign(fold=ENSEMBLE))
    table = pd.concat(frames, ignore_index=True)
    scores = {f: balanced_accuracy(part) for f, part in table.groupby("fold", sort=False)}
    present = sorted(rows["label"].unique(), key=classes.index)
    metric = "balanced_accuracy" if len(present) > 1 else f"recall_{present[0]}" if present else "none"
    metrics = {"metric": metric, "classes_present": present, "n_images": len(rows), "scores": scores}
    write_tsv_atomic(table, outputs.predictions)
    Path(outputs.metrics).write_text(json.dumps(metrics, indent=2))
    for fold, path in enumerate(outputs.fold_metrics):
        value = scores.get(str(fold), float("nan"))
        Path(path).write_text(json.dumps({} if np.isnan(value) else {f"external_{name}_{metric}": value}))
    log.info("%s on external set %s: %s %s", settings.key.task, name, metric, scores)
    return metrics


def _bootstrap_ba(frame: pd.DataFrame, n_boot: int, seed: int) -> np.ndarray:
    """Group-bootstrap draws (n_boot,) of balanced accuracy over the classes present (frame: y, correct, group)."""
    from alldag.stats import group_bootstrap_weights, weighted_balanced_accuracy

    present, y = np.unique(frame["y"].to_numpy(int), return_inverse=True)
    weights = group_bootstrap_weights(y, frame["group"].to_numpy(str), n_boot, seed)
    return weighted_balanced_accuracy(weights, y, frame["correct"].to_numpy(bool), len(present))


def external_row(model: str, scored: pd.DataFrame, in_domain: pd.DataFrame, *, n_boot: int, seed: int) -> dict:
    """One model's line: the ensemble's score on the set (balanced accuracy, or the recall of its one class)
    with a group-aware interval, the same score in-domain (pooled out-of-fold test predictions, on the classes
    the set has), and the drop with an interval from independent group bootstraps of the two image sets."""
    from alldag.stats import percentile_interval
    from alldag.stress import balanced_accuracy, interval

    ensemble = scored[scored["fold"] == ENSEMBLE]
    folds = scored[scored["fold"] != ENSEMBLE].groupby("fold")
    fold_scores = [balanced_accuracy(part) for _, part in folds]
    present = sorted(ensemble["y"].unique())
    home = in_domain[in_domain["y"].isin(present)]
    low, high = interval(ensemble, n_boot, seed)
    row = {
        "model": model,
        "metric": "balanced_accuracy" if len(present) > 1 else f"recall_{ensemble['label'].iloc[0]}",
        "n_images": len(ensemble),
        "n_groups": int(ensemble["group"].nunique()),
        "external": balanced_accuracy(ensemble),
        "ci_low": low,
        "ci_high": high,
        "in_domain": balanced_accuracy(home),
        "fold_min": min(fold_scores, default=float("nan")),
        "fold_max": max(fold_scores, default=float("nan")),
    }
    row["drop"] = row["in_domain"] - row["external"]
    if len(ensemble) and len(home):
        draws = _bootstrap_ba(home, n_boot, seed) - _bootstrap_ba(ensemble, n_boot, seed + 1)
        row["drop_ci_low"], row["drop_ci_high"] = percentile_interval(draws)
    return row


def _read_scored(path) -> pd.DataFrame:
    frame = read_tsv(path)
    return frame.assign(
        correct=frame["correct"].astype(str).str.lower().eq("true"),
        group=frame["group"].astype(str),
        fold=frame["fold"].astype(str) if "fold" in frame else "",
    )


def summarise_external(*, scored: dict, in_domain: dict, settings, output) -> pd.DataFrame:
    """The set's table for one task (SUMMARY_COLUMNS), one row per model: scored (model -> predictions.tsv of
    external_validation), in_domain (model -> fold -> evaluation predictions.tsv); settings:
    alldag.stress.SummarySettings. Written to `output`."""
    rows = []
    for model, path in scored.items():
        home = pd.concat([_read_scored(p).assign(fold=str(f)) for f, p in in_domain[model].items()], ignore_index=True)
        rows.append(
            external_row(model, _read_scored(path), home, n_boot=settings.bootstrap_samples, seed=settings.seed)
        )
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    write_tsv_atomic(table, output)
    return table
