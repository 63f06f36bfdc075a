"""alldag.split: stratified, group-aware holdout and k-fold train/val/test splits."""

from __future__ import annotations

import pandas as pd
import pytest

from alldag import AlldagError
from alldag.split import (
    PATIENT_BLOCK,
    SPLITS,
    SplitSettings,
    block_size_for,
    leakage,
    make_folds,
    split_counts,
    write_split,
)


def holdout_split(subset: pd.DataFrame, val: float, test: float, seed: int) -> pd.DataFrame:
    """make_folds with one fold: a single stratified holdout split (without the group and fold columns)."""
    return make_folds(subset, SplitSettings(1, val, test, seed))[0].drop(columns=["group", "fold"])


def _subset(sizes: dict[str, int]) -> pd.DataFrame:
    rows = [(f"{c}/{c}-{i:03d}.jpg", c, y) for y, (c, n) in enumerate(sizes.items()) for i in range(n)]
    return pd.DataFrame(rows, columns=["image_id", "label", "y"])


CASES = [
    ({"Benign": 40, "Pro": 40}, 0.15, 0.15),
    ({"Benign": 40, "Early": 25, "Pre": 17, "Pro": 60}, 0.15, 0.15),
    ({"Benign": 20, "Pro": 33}, 0.2, 0.1),
    ({"Benign": 10, "Early": 10, "Pre": 10, "Pro": 10}, 0.15, 0.15),
    ({"Benign": 4, "Pro": 4}, 0.15, 0.15),
]


@pytest.mark.parametrize("sizes,val,test", CASES)
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_every_row_gets_one_split(sizes, val, test, seed):
    subset = _subset(sizes)
    out = holdout_split(subset, val, test, seed)
    assert len(out) == len(subset)
    assert out["split"].isin(SPLITS).all()
    assert out["split"].notna().all()
    # input row order and columns are kept; the input is not modified
    pd.testing.assert_frame_equal(out.drop(columns="split"), subset)
    assert "split" not in subset.columns


@pytest.mark.parametrize("sizes,val,test", CASES)
@pytest.mark.parametrize("seed", [0, 3])
def test_split_proportions_per_class(sizes, val, test, seed):
    out = holdout_split(_subset(sizes), val, test, seed)
    counts = split_counts(out)
    for cls, n in sizes.items():
        assert abs(counts.loc[cls, "test"] - n * test) <= 1 + 1e-9, (cls, counts.loc[cls].to_dict())
        assert abs(counts.loc[cls, "val"] - n * val) <= 1 + 1e-9, (cls, counts.loc[cls].to_dict())
        assert counts.loc[cls].sum() == n
        assert min(counts.loc[cls, s] for s in SPLITS) >= 1  # every class appears in every split


def test_train_proportion_and_totals():
    sizes = {"Benign": 40, "Pro": 60}
    out = holdout_split(_subset(sizes), 0.15, 0.15, 0)
    counts = split_counts(out)
    assert counts["test"].sum() == 15  # ceil(0.15 * 100)
    assert abs(counts["val"].sum() - 15) <= 1
    for cls, n in sizes.items():
        assert abs(counts.loc[cls, "train"] - 0.7 * n) <= 1 + 1e-9, counts.loc[cls].to_dict()
    assert counts.loc["Benign", "test"] == 6 and counts.loc["Pro", "test"] == 9


def test_same_seed_same_split_and_different_seed_differs():
    subset = _subset({"Benign": 30, "Early": 30, "Pro": 30})
    a = holdout_split(subset, 0.15, 0.15, 42)
    b = holdout_split(subset, 0.15, 0.15, 42)
    c = holdout_split(subset, 0.15, 0.15, 43)
    assert a["split"].tolist() == b["split"].tolist()
    assert a["split"].tolist() != c["split"].tolist()


def test_non_default_index_is_respected():
    subset = _subset({"Benign": 10, "Pro": 10})
    subset.index = range(100, 120)
    out = holdout_split(subset, 0.2, 0.2, 0)
    assert list(out.index) == list(range(100, 120))
    assert out["split"].notna().all()
    assert split_counts(out).to_numpy().sum() == 20


@pytest.mark.parametrize("small", [1, 2])
def test_class_with_fewer_than_three_images_raises(small):
    with pytest.raises(AlldagError) as exc:
        holdout_split(_subset({"Benign": 20, "Pro": small}), 0.15, 0.15, 0)
    message = str(exc.value)
    assert "\n" not in message and "Pro" in message and "Benign" not in message


def test_three_images_per_class_give_one_per_split():
    out = holdout_split(_subset({"Benign": 3, "Pro": 3}), 0.15, 0.15, 0)
    assert (split_counts(out) == 1).all().all()


def test_small_class_appears_in_every_split():
    out = holdout_split(_subset({"Benign": 3, "Pro": 100}), 0.15, 0.15, 0)
    assert split_counts(out).loc["Benign"].to_dict() == {"train": 1, "val": 1, "test": 1}


@pytest.mark.parametrize("folds", [1, 2])
def test_classes_of_three_images_in_large_blocks_stop_with_one_line(folds):
    subset = _subset({"Benign": 3, "Pro": 3})
    with pytest.raises(AlldagError) as exc:
        make_folds(subset, SplitSettings(folds, 0.15, 0.15, 0, block_size=10), task="benign_vs_pro")
    message = str(exc.value)
    assert "\n" not in message and message.startswith("benign_vs_pro: fold 0 would have no ")
    assert "fewer folds (split.folds)" in message and "smaller blocks (split.group_blocks, now 10)" in message


def test_grouped_kfold_with_too_few_blocks_of_a_class_stops_instead_of_an_empty_test_fold():
    subset = _subset({"Benign": 20, "Pro": 100})  # Benign: files 0-19, three blocks of 10 for five test folds
    with pytest.raises(
        AlldagError,
        match=r"^four: fold \d+ would have no Benign image in (test|val|train) "
        r"\(Benign has 3 group\(s\)",
    ):
        make_folds(subset, SplitSettings(5, 0.15, 0.15, 0, block_size=10), task="four")
    for m in make_folds(subset, SplitSettings(5, 0.15, 0.15, 0, block_size=2), task="four"):  # smaller blocks: possible
        assert (split_counts(m) >= 1).all().all()


@pytest.mark.parametrize("folds", [2, 3, 5])
def test_one_block_per_class_stops_with_one_line_not_a_crash(folds):
    with pytest.raises(
        AlldagError,
        match=r"^t: fold \d would have no (Benign|Pro) image in (test|val) "
        r"\((Benign|Pro) has 1 group\(s\) to share among",
    ):
        make_folds(
            _subset({"Benign": 10, "Pro": 12}).assign(image_id=lambda d: d["image_id"].str.replace("-0", "-1")),
            SplitSettings(folds, 0.15, 0.15, 0, block_size=40),
            task="t",
        )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_fold_has_every_class_in_every_split_with_patient_blocks(seed):
    subset = _subset({"Benign": 60, "Early": 45, "Pro": 100})
    subset["cluster"] = subset["image_id"]
    manifests = make_folds(subset, SplitSettings(5, 0.15, 0.15, seed, block_size=5))
    for m in manifests:
        assert (split_counts(m) >= 1).all().all()
        assert (m.groupby("group")["split"].nunique() == 1).all()
    assert leakage(manifests).empty


def test_block_size_for_resolves_auto_per_data_source():
    assert block_size_for("auto", synthetic=False, fields_per_patient=4) == PATIENT_BLOCK == 40
    assert block_size_for("auto", synthetic=True, fields_per_patient=4) == 4
    assert block_size_for(12, synthetic=True, fields_per_patient=4) == 12
    assert block_size_for(None, synthetic=False, fields_per_patient=4) is None


def test_split_counts_shape_and_columns():
    manifest = pd.DataFrame(
        {"label": ["A", "A", "A", "B", "B", "C"], "split": ["train", "test", "train", "val", "train", "train"]}
    )
    counts = split_counts(manifest)
    assert list(counts.columns) == ["train", "val", "test"]
    assert list(counts.index) == ["A", "B", "C"]
    assert counts.shape == (3, 3)
    assert counts.to_dict(orient="index") == {
        "A": {"train": 2, "val": 0, "test": 1},
        "B": {"train": 1, "val": 1, "test": 0},
        "C": {"train": 1, "val": 0, "test": 0},
    }


def test_write_split_roundtrip(tmp_path):
    from alldag.tables import read_tsv, write_tsv_atomic

    subset = _subset({"Benign": 12, "Pro": 12}).assign(mask_path="")
    write_tsv_atomic(subset, tmp_path / "subset.tsv")
    [manifest] = write_split(
        subset=tmp_path / "subset.tsv", manifests=[tmp_path / "split.tsv"], settings=SplitSettings(1, 0.25, 0.25, 5)
    )
    back = read_tsv(tmp_path / "split.tsv")
    assert back["split"].tolist() == manifest["split"].tolist()
    assert (back["fold"] == 0).all() and back["group"].tolist() == subset["image_id"].tolist()
    assert back["mask_path"].tolist() == [""] * 24
    assert split_counts(back).loc["Benign"].to_dict() == {"train": 6, "val": 3, "test": 3}


def test_equal_fractions_give_val_and_test_within_one_image():
    out = holdout_split(_subset({"Benign": 50, "Pro": 40}), 0.15, 0.15, 0)
    counts = split_counts(out)
    assert ((counts["val"] - counts["test"]).abs() <= 1).all()
    assert counts.loc["Pro"].to_dict() == {"train": 28, "val": 6, "test": 6}
    assert abs(counts.loc["Benign", "val"] - 7.5) <= 0.5 and counts.loc["Benign", "train"] == 35


def test_grouping_for_resolves_auto_per_data_source():
    from alldag.split import grouping_for

    assert grouping_for("auto", synthetic=False, fields_per_patient=4) == "appearance"
    assert grouping_for("auto", synthetic=True, fields_per_patient=4) == "blocks"  # blocks are its patients
    assert grouping_for("auto", synthetic=True, fields_per_patient=[10, 60]) == "appearance"
    assert grouping_for("none", synthetic=False, fields_per_patient=4) == "none"


@pytest.fixture(scope="module")
def real_like_patients(tmp_path_factory):
    """Benign and Pre-B files with real-like patients (10-60 fields, Pre-B's two sessions alternating), their
    patient ids by image_id."""
    from PIL import Image

    from alldag.classes import file_prefix
    from alldag.synthetic import generated_field, patient_of

    folder, rows = tmp_path_factory.mktemp("patients"), []
    for cls, n in (("Benign", 130), ("Pre", 150)):
        for i in range(1, n + 1):
            name = f"{cls}/{file_prefix(cls)}-{i:03d}.jpg"
            path = folder / name.replace("/", "-")
            Image.fromarray(generated_field(cls, i, 7, fields_per_patient=(10, 60))[0]).save(path, quality=92)
            rows.append((name, cls, str(path), patient_of(cls, i, 7, (10, 60))))
    table = pd.DataFrame(rows, columns=["image_id", "label", "path", "patient"])
    return table.drop(columns="patient"), table.set_index("image_id")["patient"]


def test_appearance_grouping_keeps_patients_whole_where_blocks_cut_them(real_like_patients):
    from alldag.split import appearance_groups, patient_leakage

    subset, patients = real_like_patients
    groups = pd.Series(appearance_groups(subset), index=subset["image_id"])
    pieces = groups.groupby(patients).nunique()
    assert (pieces == 1).mean() >= 0.8, pieces[pieces > 1]  # (almost) no patient in two groups
    assert (groups.groupby(subset.set_index("image_id")["label"]).nunique() >= 3).all()  # still groups to split
    settings = {"folds": 1, "val_fraction": 0.2, "test_fraction": 0.3, "seed": 0}
    by_appearance = make_folds(subset, SplitSettings(**settings, grouping="appearance"))
    by_blocks = make_folds(subset, SplitSettings(**settings, block_size=40, grouping="blocks"))
    assert max(patient_leakage(m, patients) for m in by_appearance) <= 0.05
    assert max(patient_leakage(m, patients) for m in by_blocks) > 0.2  # patients cross blocks; Pre-B alternates
