"""Stratified train/validation/test split, written as a manifest."""

from __future__ import annotations

import logging

import pandas as pd
from sklearn.model_selection import train_test_split

from alldag import AlldagError

SPLITS = ("train", "val", "test")


def stratified_split(subset: pd.DataFrame, val_fraction: float, test_fraction: float,
                     seed: int) -> pd.DataFrame:
    """Assign each row of `subset` to train, val or test, stratified by `label`, with a fixed seed.

    Returns a copy with a `split` column, in the input's row order. Raises AlldagError when a class
    is too small to appear in every split.
    """
    counts = subset["label"].value_counts()
    too_small = counts[counts < 3]
    if not too_small.empty:
        raise AlldagError(f"class(es) {', '.join(too_small.index)} have fewer than 3 images, too few "
                          "for train/val/test: add images or raise data.max_images_per_class")
    idx = subset.index.to_numpy()
    labels = subset["label"].to_numpy()
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(rest, test_size=val_share, stratify=subset.loc[rest, "label"],
                                  random_state=seed)
    out = subset.copy()
    out.loc[train, "split"] = "train"
    out.loc[val, "split"] = "val"
    out.loc[test, "split"] = "test"
    return out


def split_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per class (rows) and split (columns), for logs and the report."""
    return (manifest.groupby(["label", "split"]).size().unstack("split", fill_value=0)
            .reindex(columns=list(SPLITS), fill_value=0))


def write_split(subset_tsv, manifest_tsv, val_fraction: float, test_fraction: float, seed: int) -> pd.DataFrame:
    """Split the subset table and write the split manifest TSV; returns the manifest."""
    from alldag.data import read_tsv, write_tsv_atomic

    manifest = stratified_split(read_tsv(subset_tsv), val_fraction, test_fraction, seed)
    write_tsv_atomic(manifest, manifest_tsv)
    logging.getLogger(__name__).info("split counts:\n%s", split_counts(manifest))
    return manifest
