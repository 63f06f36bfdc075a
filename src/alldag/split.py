"""Leakage-free, stratified splits: whole groups (duplicate clusters, patient-proxy file-number blocks)
per split.

A holdout split (folds = 1) assigns every group to train, val or test; k-fold cross-validation
(folds >= 2) assigns every group to one test fold, then splits the rest of each fold into train
and val. Groups are placed greedily, largest first (ties in seeded random order), where they
bring each class's count closest to its target, so singleton groups give counts within one
image of the target per class.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alldag import AlldagError

SPLITS = ("train", "val", "test")
# Real data: 3,256 images from 89 patients (about 37 each); a block of 40 consecutive file numbers is about
# one patient, so a patient whose files are consecutive spans at most two blocks (README: Splits).
PATIENT_BLOCK = 40
LEAKAGE_KEYS = ("cluster", "group")  # a duplicate cluster or a split group must never cross splits
log = logging.getLogger(__name__)


GROUPINGS = ("appearance", "blocks", "none")  # split.grouping: what stands in for patients
APPEARANCE_FLOOR = 2.5  # the linking threshold: this many times the median nearest-neighbour stain distance


@dataclass(frozen=True)
class SplitSettings:
    """How a task's images are split (the `split` config, with the grouping resolved for the data source)."""

    folds: int  # 1: one holdout split; k >= 2: k-fold cross-validation
    val_fraction: float
    test_fraction: float  # of a holdout split (k-fold: the test fold is 1/k)
    seed: int
    block_size: int | None = None  # file-number block size (block_size_for); None: duplicate clusters only
    grouping: str = "blocks"  # one of GROUPINGS; blocks without a block_size = none
    appearance_threshold: float | None = None  # stain distance linking neighbouring files; None: from the data

    @classmethod
    def from_params(cls, params) -> SplitSettings:
        """From the split rule's params (folds, val_fraction, test_fraction, seed, group_blocks, grouping,
        appearance_threshold)."""
        return cls(
            params.folds,
            params.val_fraction,
            params.test_fraction,
            params.seed,
            params.group_blocks,
            params.grouping,
            params.appearance_threshold,
        )


def block_size_for(setting: int | str | None, synthetic: bool, fields_per_patient) -> int | None:
    """The file-number block size the split uses: `split.group_blocks` resolved for the data source.

    'auto' = PATIENT_BLOCK on real data, the generator's fields per patient on synthetic data (its files are
    numbered patient by patient: with a fixed length a block is exactly one patient; with [min, max] the mean
    length, whose blocks patients cross as real ones do); an integer as given; None = no blocks.
    """
    if setting == "auto":
        if not synthetic:
            return PATIENT_BLOCK
        return fields_per_patient if isinstance(fields_per_patient, int) else round(sum(fields_per_patient) / 2)
    return setting


def grouping_for(setting: str, synthetic: bool, fields_per_patient) -> str:
    """The grouping the split uses: `split.grouping` resolved for the data source ('auto': appearance on real data;
    on synthetic data blocks when every patient has fields_per_patient files, else appearance)."""
    if setting != "auto":
        return setting
    return "blocks" if synthetic and isinstance(fields_per_patient, int) else "appearance"


def bucket_targets(total: int, shares: list[float]) -> np.ndarray:
    """Images per bucket for a class of `total` images: rounded shares, at least one each when possible."""
    target = np.asarray(shares, float) * total
    if total >= len(shares):
        target = np.maximum(target, 1.0)
        big = int(np.argmax(target))
        target[big] -= target.sum() - total  # keep the sum at `total`
    return target


def allocate_groups(labels: np.ndarray, groups: np.ndarray, shares: list[float], seed: int) -> np.ndarray:
    """Bucket index per row, keeping each group in one bucket and each class near shares per bucket."""
    classes, y = np.unique(labels, return_inverse=True)
    group_ids, g = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(group_ids), len(classes)))
    np.add.at(counts, (g, y), 1)
    targets = np.stack([bucket_targets(int(t), shares) for t in counts.sum(axis=0)], axis=1)  # (B, C)
    current = np.zeros_like(targets)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(group_ids))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    bucket_of_group = np.empty(len(group_ids), int)
    for gi in order:
        v = counts[gi]
        cost = (v * v + 2 * v * (current - targets)).sum(axis=1)  # change in squared deviation
        b = int(np.argmin(cost))
        bucket_of_group[gi] = b
        current[b] += v
    return bucket_of_group[g]


def file_number(image_id: str) -> int | None:
    """The trailing number of a dataset file name ('Pro/WBC-Malignant-Pro-012.jpg' -> 12)."""
    match = re.search(r"(\d+)\.[A-Za-z]+$", image_id)
    return int(match.group(1)) if match else None


def block_key(label: str, image_id: str, block_size: int) -> str:
    """The file-number block of an image: files 1..block_size of a class are block 0, and so on."""
    n = file_number(image_id)
    return f"{label}#{(n - 1) // block_size}" if n is not None else f"{label}#{image_id}"


APPEARANCE_LAGS = 3  # a file is compared with the next 3 files of its class (Pre-B alternates between two looks)


def appearance_threshold(distances: np.ndarray, nearest: np.ndarray) -> float:
    """The stain distance below which two neighbouring files count as one patient or session: APPEARANCE_FLOOR
    times the median of each file's nearest-neighbour distance (mostly a within-patient distance: patient
    boundaries are jumps), at most the largest distance (a class without jumps stays whole)."""
    return float(min(APPEARANCE_FLOOR * np.median(nearest), distances.max()))


def appearance_groups(subset: pd.DataFrame, threshold: float | None = None, threads: int = 1) -> np.ndarray:
    """Group label per row: within each class, runs of files that look alike: each file is linked to the next
    APPEARANCE_LAGS files (by file number) whose stain statistics (alldag.colour_stats.stain_statistics) lie
    within `threshold` (None: appearance_threshold of the class's neighbour distances); groups are the connected
    pieces ('Pro~3'). A proxy for staining session and patient that follows real file order: patients own runs of
    files, sessions may alternate."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from alldag.colour_stats import STAIN_VIEWS, stain_statistics_of_file
    from alldag.progress import parallel_map

    stats = np.stack(
        parallel_map(stain_statistics_of_file, subset["path"], threads=threads, label="split: stain", unit="image")
    )
    numbers = np.array([file_number(i) or 0 for i in subset["image_id"]])
    labels = subset["label"].to_numpy(str)
    out = np.empty(len(subset), dtype=object)
    for cls in np.unique(labels):
        rows = np.flatnonzero(labels == cls)
        rows = rows[np.argsort(numbers[rows], kind="stable")]
        pairs = [(a, a + lag) for lag in range(1, APPEARANCE_LAGS + 1) for a in range(len(rows) - lag)]
        if not pairs:
            out[rows] = f"{cls}~0"
            continue
        a, b = np.array(pairs).T
        scaled = []  # each view's distance in units of its own threshold
        for view in STAIN_VIEWS:
            distance = np.linalg.norm(stats[rows[a], view] - stats[rows[b], view], axis=1)
            nearest = np.full(len(rows), np.inf)
            np.minimum.at(nearest, a, distance)
            np.minimum.at(nearest, b, distance)
            scaled.append(distance / (threshold or appearance_threshold(distance, nearest)))
        scaled = np.stack(scaled)
        linked = scaled.min(axis=0) <= 1  # alike in either view: content moves one view at a time
        graph = coo_matrix((np.ones(linked.sum()), (a[linked], b[linked])), shape=(len(rows), len(rows)))
        _, piece = connected_components(graph, directed=False)
        out[rows] = [f"{cls}~{p}" for p in piece]
    return out.astype(str)


def _merged(clusters: np.ndarray, keys: list[str]) -> np.ndarray:
    """Connected components of duplicate clusters and scheme keys, each named after its first key ('Pro#3')."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    index = pd.Index(np.unique(np.concatenate([clusters, keys])))
    a, b = index.get_indexer(clusters), index.get_indexer(keys)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(index), len(index)))
    _, component = connected_components(graph, directed=False)
    return pd.Series(keys).groupby(component[a]).transform("min").to_numpy(str)


def split_groups(subset: pd.DataFrame, block_size: int | None, settings: SplitSettings | None = None) -> np.ndarray:
    """Group label per row: the duplicate cluster, merged with the grouping's patient proxy: file-number blocks
    (files (n-1)//block_size within a class, when block_size is set), or appearance clusters
    (settings.grouping 'appearance'), or nothing ('none').
    """
    clusters = subset["cluster"].to_numpy(str) if "cluster" in subset else subset["image_id"].to_numpy(str)
    grouping = settings.grouping if settings else "blocks"
    if grouping == "appearance":
        return _merged(clusters, list(appearance_groups(subset, settings.appearance_threshold)))
    if grouping == "none" or not block_size:
        return clusters
    return _merged(clusters, [block_key(lbl, i, block_size) for lbl, i in zip(subset["label"], subset["image_id"])])


def patient_leakage(manifest: pd.DataFrame, patients: pd.Series) -> float:
    """Share of test images with an image of the same patient in train (patients: patient id per image_id,
    known for synthetic data)."""
    patient = manifest["image_id"].map(patients)
    trained = set(patient[manifest["split"] == "train"])
    test = patient[manifest["split"] == "test"]
    return float(test.isin(trained).mean()) if len(test) else float("nan")


def no_room_error(
    task: str, fold: int, cls: str, split: str, n_groups: int, folds: int, block_size: int | None
) -> AlldagError:
    """The one-line error for a split that would leave class `cls` without images in `split` of `fold`."""
    fix = (
        "use fewer folds (split.folds)"
        + (f" or smaller blocks (split.group_blocks, now {block_size})" if block_size else "")
        + " or add images of that class"
    )
    return AlldagError(
        f"{task}: fold {fold} would have no {cls} image in {split} ({cls} has {n_groups} group(s) "
        f"to share among {folds} fold(s) x train/val/test): {fix}"
    )


def check_every_class_in_every_split(manifests: list[pd.DataFrame], task: str, block_size: int | None) -> None:
    """Raise AlldagError (one line naming the task, fold, class and split) unless every class has at least one
    image in train, val and test of every fold."""
    for m in manifests:
        counts = split_counts(m)
        for cls in counts.index:
            for split in SPLITS:
                if counts.loc[cls, split] == 0:
                    raise no_room_error(
                        task,
                        int(m["fold"].iloc[0]),
                        cls,
                        split,
                        m.loc[m["label"] == cls, "group"].nunique(),
                        len(manifests),
                        block_size,
                    )


def make_folds(subset: pd.DataFrame, settings: SplitSettings, *, task: str = "split") -> list[pd.DataFrame]:
    """One manifest per fold: subset plus `group` and `split` (train / val / test) columns.

    settings.folds = 1 gives one holdout split with the given fractions; folds >= 2 gives k-fold
    cross-validation (test = one fold in turn; val_fraction of all images drawn from the rest).
    Raises AlldagError (one line) when a class is too small, or has too few groups, for every split of every
    fold to hold it; `task` names the task in that message.
    """
    folds, val_fraction, test_fraction, seed, block_size = (
        settings.folds,
        settings.val_fraction,
        settings.test_fraction,
        settings.seed,
        settings.block_size,
    )
    counts = subset["label"].value_counts()
    need = 3 if folds == 1 else folds + 1
    small = counts[counts < need]
    if not small.empty:
        listed = ", ".join(f"{c} ({n})" for c, n in small.items())
        raise AlldagError(
            f"{task}: class(es) {listed} have too few images for "
            f"{folds} fold(s) with train/val/test (need {need}): add images, raise "
            "data.max_images_per_class or lower split.folds"
        )
    labels = subset["label"].to_numpy()
    groups = split_groups(subset, block_size, settings)
    base = subset.assign(group=groups)
    if folds == 1:
        bucket = allocate_groups(labels, groups, [1 - val_fraction - test_fraction, val_fraction, test_fraction], seed)
        manifests = [base.assign(split=np.asarray(SPLITS)[bucket], fold=0)]
        check_every_class_in_every_split(manifests, task, block_size)
        return manifests
    test_fold = allocate_groups(labels, groups, [1.0 / folds] * folds, seed)
    manifests = []
    for f in range(folds):
        rest = test_fold != f
        for cls in np.unique(labels):  # test images, and two groups left for train and val, of every class
            mine = labels == cls
            left = len(np.unique(groups[mine & rest]))
            if left < 2 or not (mine & ~rest).any():
                raise no_room_error(
                    task,
                    f,
                    cls,
                    "val" if (mine & ~rest).any() else "test",
                    len(np.unique(groups[mine])),
                    folds,
                    block_size,
                )
        val_share = min(val_fraction / (1 - 1.0 / folds), 0.5)
        inner = allocate_groups(labels[rest], groups[rest], [1 - val_share, val_share], seed + 1 + f)
        split = np.full(len(subset), "test", dtype=object)
        split[np.flatnonzero(rest)] = np.where(inner == 0, "train", "val")
        manifests.append(base.assign(split=split, fold=f))
    check_every_class_in_every_split(manifests, task, block_size)
    return manifests


def split_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per class (rows) and split (columns), for logs and the report."""
    return (
        manifest.groupby(["label", "split"])
        .size()
        .unstack("split", fill_value=0)
        .reindex(columns=list(SPLITS), fill_value=0)
    )


def leakage(manifests: list[pd.DataFrame], keys: tuple[str, ...] = LEAKAGE_KEYS) -> pd.DataFrame:
    """Rows (fold, kind, key, splits) for every duplicate cluster or split group found in more than one split
    of a fold. Raises AlldagError when a manifest lacks one of the key columns (it cannot be checked)."""
    rows = []
    for m in manifests:
        fold = int(m["fold"].iloc[0]) if "fold" in m else 0
        for kind in keys:
            if kind not in m:
                raise AlldagError(
                    f"split manifest of fold {fold} has no '{kind}' column, so leakage cannot be "
                    "checked: rerun the split (snakemake --forcerun split)"
                )
            spread = m.groupby(m[kind].astype(str))["split"].agg(lambda s: ",".join(sorted(set(s))))
            rows += [(fold, kind, k, splits) for k, splits in spread[spread.str.contains(",")].items()]
    return pd.DataFrame(rows, columns=["fold", "kind", "key", "splits"])


def write_split(*, subset, manifests: list[str], settings: SplitSettings, task: str = "split") -> list[pd.DataFrame]:
    """Split the subset table (file `subset`) and write one manifest TSV per fold to the paths `manifests`;
    returns the manifest tables."""
    from alldag.tables import read_tsv, write_tsv_atomic

    tables = make_folds(read_tsv(subset), settings, task=task)
    if len(tables) != len(manifests):
        raise AlldagError(f"{len(tables)} folds made but {len(manifests)} manifest paths given")
    for table, path in zip(tables, manifests):
        write_tsv_atomic(table, path)
        log.info("fold %s split counts:\n%s", table["fold"].iloc[0], split_counts(table))
    return tables


def check_leakage(manifest_paths: list[str], report_tsv) -> None:
    """Write the leakage report; raise AlldagError (one line naming the crossing cluster and/or group) if any
    duplicate cluster or split group crosses splits."""
    from alldag.tables import read_tsv, write_tsv_atomic

    found = leakage([read_tsv(p) for p in manifest_paths])
    write_tsv_atomic(found, report_tsv)
    if not found.empty:
        examples = "; ".join(
            f"{kind} {row.key} in {row.splits} (fold {row.fold})"
            for kind, rows in found.groupby("kind", sort=False)
            for row in rows.head(1).itertuples()
        )
        counts = ", ".join(f"{n} {kind}(s)" for kind, n in found["kind"].value_counts(sort=False).items())
        raise AlldagError(
            f"{counts} cross train/val/test, e.g. {examples}: a manifest was changed after the split; "
            "rerun it (snakemake --forcerun split)"
        )
