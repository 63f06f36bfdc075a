"""Stratified train/validation/test split, written as a manifest."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from alldag import AlldagError

SPLITS = ("train", "val", "test")


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) image counts for a class of n images: rounded shares, at least one each."""
    n_test = max(1, round(test_fraction * n))
    n_val = max(1, round(val_fraction * n))
    return n - n_val - n_test, n_val, n_test


def stratified_split(subset: pd.DataFrame, val_fraction: float, test_fraction: float,
                     seed: int) -> pd.DataFrame:
    """Assign each row of `subset` to train, val or test, stratified by `label`, with a fixed seed.

    Each class is shuffled (seeded) and cut at its rounded shares, so every class is within half
    an image of the requested fractions and appears in every split. Returns a copy with a `split`
    column, in the input's row order. Raises AlldagError when a class is too small for that.
    """
    rng = np.random.default_rng(seed)
    out = subset.copy()
    out["split"] = ""
    for label in sorted(subset["label"].unique()):
        idx = subset.index[subset["label"] == label].to_numpy()
        n_train, n_val, n_test = split_sizes(len(idx), val_fraction, test_fraction)
        if n_train < 1:
            raise AlldagError(f"class '{label}' has {len(idx)} images, too few for train/val/test: "
                              "add images, raise data.max_images_per_class or lower the split fractions")
        order = rng.permutation(idx)
        out.loc[order[:n_test], "split"] = "test"
        out.loc[order[n_test:n_test + n_val], "split"] = "val"
        out.loc[order[n_test + n_val:], "split"] = "train"
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
