"""The `audit` stage: image checks, leukocyte-mask coverage and the duplicate audit, before any split."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pandas as pd
from PIL import Image

from alldag.data import read_tsv, write_tsv_atomic
from alldag.duplicates import cluster_duplicates
from alldag.masks import SOURCES, leukocyte_mask, read_rgb
from alldag.quality import check_image
from alldag.verify import sha256_file

log = logging.getLogger(__name__)
QUARANTINE_COLUMNS = ["image_id", "label", "path", "reason"]


def check_images(dataset: pd.DataFrame, fixed_dir: str | os.PathLike, expected_size: int):
    """Decode every image: returns (usable rows with `fixed` reasons, quarantine table).

    Fixable images (wrong mode or size) are written as PNG under fixed_dir and their rows point there.
    """
    usable, quarantined = [], []
    for row in dataset.itertuples(index=False):
        result = check_image(row.path, expected_size)
        if result.status == "quarantined":
            quarantined.append((row.image_id, row.label, row.path, result.reason))
            continue
        path = row.path
        if result.status == "fixed":
            path = str((Path(fixed_dir) / row.image_id).with_suffix(".png").resolve())
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(result.image).save(path)
        usable.append({**row._asdict(), "path": path, "source_path": row.path, "fixed": result.reason})
    return pd.DataFrame(usable), pd.DataFrame(quarantined, columns=QUARANTINE_COLUMNS)


def leukocyte_mask_record(image_path, twin_path, min_fraction: float) -> dict:
    """One image's mask columns: mask_fraction (share of the cleaned Segmented/ twin; NaN without one),
    mask_source (segmented / stain / none: see alldag.masks) and leukocyte_fraction (share of the mask
    used; NaN for none)."""
    image, twin = read_rgb(image_path), read_rgb(twin_path)
    if image is None:
        return {"mask_fraction": float("nan"), "mask_source": "none", "leukocyte_fraction": float("nan")}
    found = leukocyte_mask(image, twin, min_fraction)
    return {"mask_fraction": found.twin_fraction, "mask_source": found.source,
            "leukocyte_fraction": float(found.mask.mean()) if found.mask is not None else float("nan")}


def add_mask_coverage(images: pd.DataFrame, min_fraction: float) -> pd.DataFrame:
    """Add leukocyte_mask_record's columns and mask_empty (the twin is nearly empty or missing)."""
    records = pd.DataFrame([leukocyte_mask_record(path, twin, min_fraction)
                            for path, twin in zip(images["path"], images["mask_path"])], index=images.index,
                           columns=["mask_fraction", "mask_source", "leukocyte_fraction"])
    return images.assign(**records, mask_empty=~(records["mask_fraction"] >= min_fraction))


def audit_dataset(dataset_tsv, fixed_dir, expected_size: int, near_threshold: float, mask_min_fraction: float,
                  images_out, quarantine_out, duplicates_out, summary_out) -> dict:
    """Run every check on the listed dataset and write the clean image table and the audit tables.

    images_out: usable images with sha256, fixed reason, mask coverage and duplicate `cluster`;
    quarantine_out: excluded files with the reason; duplicates_out: members of duplicate clusters;
    summary_out: JSON counts for the report.
    """
    dataset = read_tsv(dataset_tsv)
    images, quarantine = check_images(dataset, fixed_dir, expected_size)
    images["sha256"] = [sha256_file(p) for p in images["source_path"]]
    images = add_mask_coverage(images, mask_min_fraction)
    images, duplicates = cluster_duplicates(images, near_threshold)
    clusters = duplicates.groupby("cluster")
    summary = {
        "checked": int(len(dataset)), "usable": int(len(images)),
        "fixed": int((images["fixed"] != "").sum()), "quarantined": int(len(quarantine)),
        "quarantine_reasons": quarantine["reason"].str.split(" \\(").str[0].value_counts().to_dict(),
        "duplicate_clusters": int(clusters.ngroups),
        "exact_duplicate_clusters": int(clusters["kind"].apply(lambda k: (k == "exact").any()).sum()),
        "images_in_duplicate_clusters": int(len(duplicates)),
        "cross_class_clusters": int(clusters["cross_class"].any().sum()),
        "near_threshold": near_threshold,
        "masks_missing": int(images["mask_fraction"].isna().sum()),
        "masks_nearly_empty": int((images["mask_empty"] & images["mask_fraction"].notna()).sum()),
        "mask_min_fraction": mask_min_fraction,
        "mask_sources": {s: int((images["mask_source"] == s).sum()) for s in SOURCES},
    }
    write_tsv_atomic(images, images_out)
    write_tsv_atomic(quarantine, quarantine_out)
    write_tsv_atomic(duplicates, duplicates_out)
    Path(summary_out).write_text(json.dumps(summary, indent=2))
    log.info("audit: %s", summary)
    return summary
