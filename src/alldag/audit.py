"""The `audit` stage: image checks, leukocyte-mask coverage and the duplicate audit, before any split."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from alldag.duplicates import THUMBNAIL, cluster_duplicates, thumbnail_feature
from alldag.masks import flag_empty_masks, leukocyte_mask_record, mask_counts
from alldag.progress import parallel_map
from alldag.quality import check_image
from alldag.tables import read_tsv, write_tsv_atomic
from alldag.verify import sha256_file

log = logging.getLogger(__name__)
QUARANTINE_COLUMNS = ["image_id", "label", "path", "reason"]


def inspect_image(row: dict, fixed_dir: str | os.PathLike, expected_size: int, mask_min_fraction: float) -> dict:
    """Everything the audit learns from one listed image (row: a dataset.tsv row as a dict).

    Decodes the file (a fixable one, wrong mode or size, is written as PNG under fixed_dir and the
    row points there), and for a usable one its sha256, leukocyte mask (alldag.masks.leukocyte_mask_record) and
    duplicate thumbnail.
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
        **leukocyte_mask_record(path, twin, mask_min_fraction),
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
            "mask_source",
            "leukocyte_fraction",
        ],
    )
    features = np.stack([r["feature"] for r in kept]) if kept else np.zeros((0, THUMBNAIL * THUMBNAIL), np.float32)
    return usable, features, pd.DataFrame(quarantined, columns=QUARANTINE_COLUMNS)


def audit_dataset(
    dataset_tsv,
    fixed_dir,
    expected_size: int,
    near_threshold: float,
    mask_min_fraction: float,
    images_out,
    quarantine_out,
    duplicates_out,
    summary_out,
    threads: int = 1,
) -> dict:
    """Run every check on the listed dataset and write the clean image table and the audit tables.

    images_out: usable images with sha256, fixed reason, mask coverage and duplicate `cluster`;
    quarantine_out: excluded files with the reason; duplicates_out: members of duplicate clusters;
    summary_out: JSON counts for the report. threads: images decoded and hashed at once.
    """
    dataset = read_tsv(dataset_tsv)
    images, features, quarantine = check_images(dataset, fixed_dir, expected_size, mask_min_fraction, threads)
    images = flag_empty_masks(images, mask_min_fraction)
    images, duplicates = cluster_duplicates(images, near_threshold, features=features)
    clusters = duplicates.groupby("cluster")
    summary = {
        "checked": int(len(dataset)),
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
    }
    write_tsv_atomic(images, images_out)
    write_tsv_atomic(quarantine, quarantine_out)
    write_tsv_atomic(duplicates, duplicates_out)
    Path(summary_out).write_text(json.dumps(summary, indent=2))
    log.info("audit: %s", summary)
    return summary
