"""The `audit` stage: image checks, leukocyte-mask coverage and the duplicate audit, before any split."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from alldag.duplicates import THUMBNAIL, cluster_duplicates, thumbnail_feature
from alldag.masks import calibrate_colour_model, final_mask_record, flag_empty_masks, mask_counts, twin_fraction
from alldag.progress import parallel_map
from alldag.quality import check_image
from alldag.tables import read_tsv, write_tsv_atomic
from alldag.verify import sha256_file

log = logging.getLogger(__name__)
QUARANTINE_COLUMNS = ["image_id", "label", "path", "reason"]


def inspect_image(row: dict, fixed_dir: str | os.PathLike, expected_size: int, mask_min_fraction: float) -> dict:
    """Everything the audit learns from one listed image (row: a dataset.tsv row as a dict).

    Decodes the file (a fixable one, wrong mode or size, is written as PNG under fixed_dir and the
    row points there), and for a usable one its sha256, the share of the field its cleaned Segmented/ twin covers
    (mask_fraction) and its duplicate thumbnail.
    Returns {"quarantine": reason} or {"row": usable row, "feature": thumbnail}.
    """
    result = check_image(row["path"], expected_size)
    if result.status == "quarantined":
        return {"quarantine": result.reason}
    path = row["path"]
    if result.status == "fixed":
        path = str((Path(fixed_dir) / row["image_id"]).with_suffix(".png").resolve())
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(result.image).save(path)
    mask_path = row.get("mask_path")
    twin = mask_path if isinstance(mask_path, str) and mask_path else None
    usable = {
        **row,
        "path": path,
        "source_path": row["path"],
        "fixed": result.reason,
        "sha256": sha256_file(row["path"]),
        "mask_fraction": twin_fraction(twin),
    }
    return {"row": usable, "feature": thumbnail_feature(path)}


def check_images(
    dataset: pd.DataFrame, fixed_dir: str | os.PathLike, expected_size: int, mask_min_fraction: float, threads: int = 1
):
    """Inspect every image on `threads` threads, logging progress.

    Returns (usable rows with `fixed` reason, sha256 and the mask columns; their thumbnail features
    (n, 256) in the same order; the quarantine table).
    """
    rows = dataset.to_dict("records")
    results = parallel_map(
        lambda row: inspect_image(row, fixed_dir, expected_size, mask_min_fraction),
        rows,
        threads=threads,
        label=f"audit: decode, hash and fingerprint (threads={threads})",
        unit="image",
    )
    quarantined = [
        (row["image_id"], row["label"], row["path"], r["quarantine"])
        for row, r in zip(rows, results)
        if "quarantine" in r
    ]
    kept = [r for r in results if "row" in r]
    usable = pd.DataFrame(
        [r["row"] for r in kept],
        columns=[
            *dataset.columns,
            "source_path",
            "fixed",
            "sha256",
            "mask_fraction",
        ],
    )
    features = np.stack([r["feature"] for r in kept]) if kept else np.zeros((0, THUMBNAIL * THUMBNAIL), np.float32)
    return usable, features, pd.DataFrame(quarantined, columns=QUARANTINE_COLUMNS)


def leukocyte_masks(images: pd.DataFrame, masks_dir, min_fraction: float, threads: int = 1):
    """Every usable image's final leukocyte mask, written under masks_dir: the fallback colour model calibrated on
    the dataset's good twins first (alldag.masks.calibrate_colour_model). Returns (images with the mask columns
    and mask_empty, the fallback's calibration and held-out agreement for audit.json)."""
    model, fallback = calibrate_colour_model(images, min_fraction)
    records = parallel_map(
        lambda row: final_mask_record(row, model, min_fraction, masks_dir),
        images.to_dict("records"),
        threads=threads,
        label=f"audit: leukocyte masks (threads={threads})",
        unit="image",
    )
    columns = ["mask_source", "twin_state", "leukocyte_fraction", "mask_pieces", "mask_file"]
    images = (
        images.assign(**{c: [r[c] for r in records] for c in columns})
        if records
        else images.assign(**{c: [] for c in columns})
    )
    fallback["half_failed_twins"] = int((images["twin_state"] == "half").sum())
    return flag_empty_masks(images, min_fraction), fallback


@dataclass(frozen=True)
class AuditSettings:
    """How the audit checks images (the `audit` config)."""

    image_size: int  # pixels per side every image is expected to have
    near_threshold: float  # thumbnail cosine similarity from which two images are near-duplicates
    mask_min_fraction: float  # a leukocyte mask covering less of the image counts as nearly empty

    @classmethod
    def from_params(cls, params) -> AuditSettings:
        """From the audit rule's params (image_size, near_threshold, mask_min_fraction)."""
        return cls(params.image_size, params.near_threshold, params.mask_min_fraction)


@dataclass(frozen=True)
class AuditOutputs:
    """The files the audit writes (paths)."""

    images: str  # usable images with sha256, fixed reason, mask coverage and duplicate `cluster`
    quarantine: str  # excluded files with the reason
    duplicates: str  # members of duplicate clusters
    summary: str  # audit.json: counts for the report
    masks: str  # folder of every image's final leukocyte mask, <Class>/<image>.png


def audit_dataset(*, dataset, fixed_dir, settings: AuditSettings, outputs: AuditOutputs, threads: int = 1) -> dict:
    """Run every check on the images listed in `dataset` (dataset.tsv) and write the clean image table and the
    audit tables (outputs); repaired copies go to fixed_dir. threads: images decoded and hashed at once.
    Returns audit.json's counts.
    """
    near_threshold, mask_min_fraction = settings.near_threshold, settings.mask_min_fraction
    listed = read_tsv(dataset)
    images, features, quarantine = check_images(listed, fixed_dir, settings.image_size, mask_min_fraction, threads)
    images, fallback = leukocyte_masks(images, outputs.masks, mask_min_fraction, threads)
    images, duplicates = cluster_duplicates(images, near_threshold, features=features)
    clusters = duplicates.groupby("cluster")
    summary = {
        "checked": int(len(listed)),
        "usable": int(len(images)),
        "fixed": int((images["fixed"] != "").sum()),
        "quarantined": int(len(quarantine)),
        "quarantine_reasons": quarantine["reason"].str.split(" \\(").str[0].value_counts().to_dict(),
        "duplicate_clusters": int(clusters.ngroups),
        "exact_duplicate_clusters": int(clusters["kind"].apply(lambda k: (k == "exact").any()).sum()),
        "images_in_duplicate_clusters": int(len(duplicates)),
        "cross_class_clusters": int(clusters["cross_class"].any().sum()),
        "near_threshold": near_threshold,
        **mask_counts(images, mask_min_fraction),
        "mask_fallback": fallback,
    }
    write_tsv_atomic(images, outputs.images)
    write_tsv_atomic(quarantine, outputs.quarantine)
    write_tsv_atomic(duplicates, outputs.duplicates)
    Path(outputs.summary).write_text(json.dumps(summary, indent=2))
    log.info("audit: %s", summary)
    return summary
