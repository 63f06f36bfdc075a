"""Honest data: manifest verification, image checks, duplicate audit, masks, leakage-free splits."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from alldag import AlldagError
from alldag.audit import AuditOutputs, AuditSettings, audit_dataset
from alldag.classes import file_prefix
from alldag.data import scan_dataset
from alldag.download import DownloadOutputs, DownloadSettings, SourceDecision, materialise_dataset
from alldag.split import SplitSettings, check_leakage, leakage, make_folds, split_counts
from alldag.synthetic import generate_dataset, image_rng, render_smear, twin_outcome
from alldag.tables import write_tsv_atomic
from alldag.verify import verification_failure, verify_folder
from conftest import checksum_manifest


@pytest.fixture
def planted(tmp_path):
    """A synthetic dataset with planted duplicates and one bad file of every kind."""
    root = tmp_path / "ALL"
    generate_dataset(root, {"Benign": 12, "Early": 6, "Pre": 6, "Pro": 14}, seed=4)
    pro = root / "Original/Pro"
    # exact duplicates: a byte copy (2 files) and a triple
    shutil.copy(pro / "WBC-Malignant-Pro-001.jpg", pro / "WBC-Malignant-Pro-101.jpg")
    for n in (102, 103):
        shutil.copy(pro / "WBC-Malignant-Pro-002.jpg", pro / f"WBC-Malignant-Pro-{n}.jpg")
    # near duplicates: re-encoded at lower quality and slightly brighter; a 3-pixel shift
    img = np.asarray(Image.open(root / "Original/Benign/WBC-Benign-003.jpg"), np.float32)
    Image.fromarray(np.clip(img * 1.04, 0, 255).astype(np.uint8)).save(
        root / "Original/Benign/WBC-Benign-103.jpg", quality=70
    )
    img = np.asarray(Image.open(root / "Original/Early/WBC-Malignant-Early-004.jpg"))
    Image.fromarray(np.roll(img, 3, axis=1)).save(root / "Original/Early/WBC-Malignant-Early-104.jpg", quality=90)
    # bad files
    bad = root / "Original/Pre"
    (bad / "WBC-Malignant-Pre-201.jpg").write_bytes(b"")
    data = (bad / "WBC-Malignant-Pre-001.jpg").read_bytes()
    (bad / "WBC-Malignant-Pre-202.jpg").write_bytes(data[: len(data) // 2])
    (bad / "WBC-Malignant-Pre-203.jpg").write_text("this is not an image\n")

    def fresh(k):  # a field that is no duplicate of any other
        return Image.fromarray(render_smear("Pre", image_rng(99, "Pre", k))[0])

    fresh(1).resize((300, 200)).save(bad / "WBC-Malignant-Pre-204.jpg")
    fresh(2).convert("L").save(bad / "WBC-Malignant-Pre-205.jpg")
    fresh(3).convert("RGBA").save(bad / "WBC-Malignant-Pre-206.png")
    fresh(4).convert("CMYK").save(bad / "WBC-Malignant-Pre-207.jpg")
    # a nearly empty Segmented mask
    Image.new("RGB", (224, 224)).save(root / "Segmented/Benign/WBC-Benign-005.jpg")
    return root


@pytest.fixture
def audited(planted, tmp_path):
    return audit_folder(planted, tmp_path)


def audit_folder(root, folder, prefix: str = "", threads: int = 1) -> tuple[dict, dict[str, pd.DataFrame]]:
    """audit_dataset of the images under root, every output written in `folder` (names prefixed): the audit
    summary and its images, quarantine and duplicates tables."""
    write_tsv_atomic(scan_dataset(root), folder / f"{prefix}dataset.tsv")
    out = {k: folder / f"{prefix}{k}.tsv" for k in ("images", "quarantine", "duplicates")}
    summary = audit_dataset(
        dataset=folder / f"{prefix}dataset.tsv",
        fixed_dir=folder / f"{prefix}fixed",
        settings=AuditSettings(image_size=224, near_threshold=0.97, mask_min_fraction=0.02),
        outputs=AuditOutputs(**out, summary=folder / f"{prefix}audit.json", masks=folder / f"{prefix}masks"),
        threads=threads,
    )
    return summary, {k: pd.read_csv(v, sep="\t", keep_default_na=False) for k, v in out.items()}


def test_bad_files_are_quarantined_with_reasons(audited):
    summary, t = audited
    reasons = dict(zip(t["quarantine"]["image_id"].str.split("/").str[1], t["quarantine"]["reason"]))
    assert reasons.keys() == {"WBC-Malignant-Pre-201.jpg", "WBC-Malignant-Pre-202.jpg", "WBC-Malignant-Pre-203.jpg"}
    assert reasons["WBC-Malignant-Pre-201.jpg"] == "zero-byte file"
    assert reasons["WBC-Malignant-Pre-202.jpg"].startswith("truncated or corrupt")
    assert reasons["WBC-Malignant-Pre-203.jpg"] == "not an image"
    assert summary["quarantined"] == 3 and summary["checked"] == summary["usable"] + 3


def test_fixable_files_are_converted_and_counted(audited):
    summary, t = audited
    images = t["images"].set_index("image_id")
    fixed = images[images["fixed"] != ""]
    assert set(fixed.index.str.split("/").str[1]) == {
        f"WBC-Malignant-Pre-{n}" + ext for n, ext in ((204, ".jpg"), (205, ".jpg"), (206, ".png"), (207, ".jpg"))
    }
    assert summary["fixed"] == 4
    assert "size 300x200 resized to 224x224" in images.loc["Pre/WBC-Malignant-Pre-204.jpg", "fixed"]
    assert "mode L converted" in images.loc["Pre/WBC-Malignant-Pre-205.jpg", "fixed"]
    assert "mode RGBA converted" in images.loc["Pre/WBC-Malignant-Pre-206.png", "fixed"]
    assert "mode CMYK converted" in images.loc["Pre/WBC-Malignant-Pre-207.jpg", "fixed"]
    for path in fixed["path"]:
        with Image.open(path) as img:
            assert img.mode == "RGB" and img.size == (224, 224)


def test_duplicate_audit_finds_all_planted_and_no_others(audited):
    summary, t = audited
    clusters = {frozenset(g["image_id"]) for _, g in t["duplicates"].groupby("cluster")}
    assert clusters == {
        frozenset({"Pro/WBC-Malignant-Pro-001.jpg", "Pro/WBC-Malignant-Pro-101.jpg"}),
        frozenset({"Pro/WBC-Malignant-Pro-002.jpg", "Pro/WBC-Malignant-Pro-102.jpg", "Pro/WBC-Malignant-Pro-103.jpg"}),
        frozenset({"Benign/WBC-Benign-003.jpg", "Benign/WBC-Benign-103.jpg"}),
        frozenset({"Early/WBC-Malignant-Early-004.jpg", "Early/WBC-Malignant-Early-104.jpg"}),
    }
    kinds = t["duplicates"].groupby("cluster")["kind"].first().to_dict()
    assert kinds["Pro/WBC-Malignant-Pro-001.jpg"] == "exact" and kinds["Benign/WBC-Benign-003.jpg"] == "near"
    assert summary["duplicate_clusters"] == 4 and summary["exact_duplicate_clusters"] == 2
    assert summary["cross_class_clusters"] == 0


def test_failed_twins_are_flagged_and_replaced_by_the_colour_mask_written_per_image(audited, tmp_path):
    summary, t = audited
    images = t["images"].set_index("image_id")
    # the generator's failed segmentations (class-dependent: nearly empty or half-failed) plus the planted black twin
    outcome = {
        f"{c}/{file_prefix(c)}-{i:03d}.jpg": twin_outcome(4, c, i)
        for c, n in {"Benign": 12, "Early": 6, "Pre": 6, "Pro": 14}.items()
        for i in range(1, n + 1)
    }
    outcome["Benign/WBC-Benign-005.jpg"] = "empty"
    failed = {k for k, v in outcome.items() if v != "good"}
    assert {k for k in failed if outcome[k] == "empty"} <= set(
        images.index[images["mask_empty"].astype(str).eq("True")]
    )
    assert (images.loc[sorted(failed), "mask_source"] == "stain").all()
    assert (images.loc[sorted(failed), "twin_state"] != "good").all()
    good = images[pd.to_numeric(images["mask_fraction"], errors="coerce") > 0.03]
    assert len(good) >= 10
    ok = good.iloc[0]
    assert ok["mask_source"] == "segmented" and ok["twin_state"] == "good"
    assert float(ok["leukocyte_fraction"]) == pytest.approx(float(ok["mask_fraction"]), abs=0.002)
    assert images.loc["Pro/WBC-Malignant-Pro-101.jpg", "mask_source"] == "stain"  # no twin: the colour mask
    assert sum(summary["mask_sources"].values()) == summary["usable"]
    # every image with a mask has its file, and the file is the mask that the columns describe
    from alldag.masks import read_mask_file

    for image_id, row in images.iterrows():
        mask = read_mask_file(row["mask_file"])
        assert (mask is None) == (row["mask_source"] == "none"), image_id
        if mask is not None:
            assert row["mask_file"].endswith(image_id.rsplit(".", 1)[0] + ".png")
            assert mask.mean() == pytest.approx(float(row["leukocyte_fraction"]))
    fallback = summary["mask_fallback"]
    assert fallback["held_out_images"] >= 10 and fallback["precision"] >= 0.7 and fallback["recall"] >= 0.8


def test_group_aware_kfold_keeps_clusters_together_and_stratifies(audited):
    _, t = audited
    subset = t["images"].assign(y=0)
    manifests = make_folds(subset, SplitSettings(3, 0.15, 0.15, seed=1))
    assert leakage(manifests).empty
    for m in manifests:
        for cluster, g in m.groupby("cluster"):
            assert g["split"].nunique() == 1, cluster
    test_counts = pd.concat([split_counts(m)["test"] for m in manifests], axis=1)
    expected = subset["label"].value_counts() / 3
    assert ((test_counts.sub(expected, axis=0)).abs() <= 1.5).all().all(), test_counts  # a 3-image cluster


def test_kfold_within_one_image_per_class_for_singletons():
    rows = [(f"{c}/x-{i:03d}.jpg", c) for c, n in (("Benign", 53), ("Early", 98), ("Pro", 80)) for i in range(1, n + 1)]
    subset = pd.DataFrame(rows, columns=["image_id", "label"]).assign(cluster=lambda d: d["image_id"])
    for seed in range(3):
        manifests = make_folds(subset, SplitSettings(5, 0.15, 0.15, seed))
        for m in manifests:
            counts = split_counts(m)
            n = subset["label"].value_counts()
            assert ((counts["test"] - n / 5).abs() <= 1).all()
            assert ((counts["val"] - 0.15 * n).abs() <= 1).all()
        tested = pd.concat([m[m["split"] == "test"] for m in manifests])
        assert sorted(tested["image_id"]) == sorted(subset["image_id"])  # each image tested exactly once


def test_block_grouping_keeps_neighbouring_file_numbers_together():
    rows = [(f"Pro/WBC-Malignant-Pro-{i:03d}.jpg", "Pro") for i in range(1, 41)] + [
        (f"Benign/WBC-Benign-{i:03d}.jpg", "Benign") for i in range(1, 41)
    ]
    subset = pd.DataFrame(rows, columns=["image_id", "label"]).assign(cluster=lambda d: d["image_id"])
    for m in make_folds(subset, SplitSettings(2, 0.2, 0.2, seed=0, block_size=10)):
        number = m["image_id"].str.extract(r"(\d+)\.jpg")[0].astype(int)
        block = m["label"] + ((number - 1) // 10).astype(str)
        assert (m.groupby(block)["split"].nunique() == 1).all()


def test_check_leakage_fails_on_a_crossing_cluster(tmp_path):
    m = pd.DataFrame(
        {
            "image_id": ["a", "b", "c"],
            "label": ["X"] * 3,
            "cluster": ["a", "a", "c"],
            "group": ["g1", "g2", "g3"],
            "split": ["train", "test", "val"],
            "fold": 0,
        }
    )
    write_tsv_atomic(m, tmp_path / "m.tsv")
    with pytest.raises(AlldagError, match="^1 cluster\\(s\\) cross train/val/test, e.g. cluster a in test,train"):
        check_leakage([tmp_path / "m.tsv"], tmp_path / "leak.tsv")
    assert len(pd.read_csv(tmp_path / "leak.tsv", sep="\t")) == 1


def test_check_leakage_fails_on_a_crossing_group_and_names_both_kinds(tmp_path):
    m = pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d"],
            "label": ["X"] * 4,
            "cluster": ["a", "a", "c", "d"],
            "group": ["X#0", "X#0", "X#1", "X#1"],
            "split": ["train", "test", "val", "test"],
            "fold": 2,
        }
    )
    write_tsv_atomic(m, tmp_path / "m.tsv")
    with pytest.raises(AlldagError) as exc:
        check_leakage([tmp_path / "m.tsv"], tmp_path / "leak.tsv")
    message = str(exc.value)
    assert "\n" not in message and "1 cluster(s), 2 group(s) cross train/val/test" in message
    assert "cluster a in test,train (fold 2)" in message and "group X#0 in test,train (fold 2)" in message
    assert sorted(pd.read_csv(tmp_path / "leak.tsv", sep="\t")["kind"]) == ["cluster", "group", "group"]


def test_a_manifest_without_groups_cannot_pass_the_leakage_check(tmp_path):
    m = pd.DataFrame(
        {"image_id": ["a", "b"], "label": ["X"] * 2, "cluster": ["a", "b"], "split": ["train", "test"], "fold": 0}
    )
    write_tsv_atomic(m, tmp_path / "m.tsv")
    with pytest.raises(AlldagError, match="has no 'group' column"):
        check_leakage([tmp_path / "m.tsv"], tmp_path / "leak.tsv")


def test_manifest_verification_lists_missing_extra_changed(tmp_path):
    root = tmp_path / "ALL"
    generate_dataset(root, {"Benign": 3, "Pro": 3}, seed=1)
    manifest = checksum_manifest(root)
    assert len(manifest) == 12 and set(verify_folder(root, manifest)["status"]) == {"ok"}
    (root / "Original/Pro/WBC-Malignant-Pro-001.jpg").unlink()
    with open(root / "Original/Benign/WBC-Benign-002.jpg", "ab") as f:
        f.write(b"\0")
    shutil.copy(root / "Original/Benign/WBC-Benign-001.jpg", root / "Original/Benign/WBC-Benign-009.jpg")
    report = verify_folder(root, manifest).set_index("path")
    assert report.loc["Original/Pro/WBC-Malignant-Pro-001.jpg", "status"] == "missing"
    assert report.loc["Original/Benign/WBC-Benign-002.jpg", "status"] == "changed"
    assert report.loc["Original/Benign/WBC-Benign-009.jpg", "status"] == "extra"
    message = verification_failure(report.reset_index())
    assert "\n" not in message and "1 missing" in message and "1 changed" in message


def _materialise(root, tmp_path, manifest, verify):
    decision = SourceDecision("local", str(root), "test", False)
    return materialise_dataset(
        settings=DownloadSettings(decision, manifest_path=manifest and str(manifest), verify=verify),
        outputs=DownloadOutputs(*(str(tmp_path / n) for n in ("dataset.tsv", "dataset.json", "verification.tsv"))),
    )


def test_local_download_verifies_against_a_fake_manifest(tmp_path):
    root = tmp_path / "ALL"
    generate_dataset(root, {"Benign": 3, "Pro": 4}, seed=1)
    checksum_manifest(root).to_csv(tmp_path / "manifest.tsv", sep="\t", index=False)
    assert _materialise(root, tmp_path, tmp_path / "manifest.tsv", "strict") == 7
    assert json.loads((tmp_path / "dataset.json").read_text())["verification"] == {"ok": 14}
    with open(root / "Original/Pro/WBC-Malignant-Pro-001.jpg", "ab") as f:
        f.write(b"tampered")
    (tmp_path / "dataset.tsv").unlink()
    with pytest.raises(AlldagError, match="does not match its manifest"):
        _materialise(root, tmp_path, tmp_path / "manifest.tsv", "strict")
    assert not (tmp_path / "dataset.tsv").exists()  # nothing half-written
    assert _materialise(root, tmp_path, tmp_path / "manifest.tsv", "warn") == 7


def test_shipped_manifest_describes_the_real_dataset():
    from workflow_helpers import REPO

    manifest = pd.read_csv(REPO / "workflow/resources/ALL-MANIFEST.tsv", sep="\t")
    original = manifest[manifest["path"].str.startswith("Original/")]
    assert original["class"].value_counts().to_dict() == {"Early": 985, "Pre": 963, "Pro": 804, "Benign": 504}
    assert len(manifest) == 2 * 3256 and manifest["sha256"].str.fullmatch("[0-9a-f]{64}").all()


def test_a_thread_pool_gives_the_same_audit_and_logs_progress(audited, planted, tmp_path, caplog):
    _, single = audited
    with caplog.at_level("INFO", logger="alldag.progress"):
        _, pooled = audit_folder(planted, tmp_path, prefix="pool_", threads=3)
    pooled["images"]["path"] = pooled["images"]["path"].str.replace("pool_fixed", "fixed")
    pooled["images"]["mask_file"] = pooled["images"]["mask_file"].str.replace("pool_masks", "masks")
    for kind in ("images", "quarantine", "duplicates"):
        pd.testing.assert_frame_equal(pooled[kind], single[kind], check_like=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "alldag.progress"]
    n = len(scan_dataset(planted))
    decoded = [line for line in lines if line.startswith("audit: decode")]
    assert f"{n}/{n} images (100%)" in decoded[-1] and "threads=3" in decoded[-1]
