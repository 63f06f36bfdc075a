"""alldag.data (folder scan, task subsets), alldag.download (source choice, download) and alldag.tables (TSV I/O)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from alldag import AlldagError
from alldag.classes import CLASSES, file_prefix
from alldag.data import (
    DATASET_COLUMNS,
    SubsetSettings,
    check_tasks,
    class_counts,
    scan_dataset,
    select_subset,
    write_subset,
)
from alldag.download import (
    DownloadOutputs,
    DownloadSettings,
    SourceDecision,
    decide_source,
    expected_class_counts,
    find_dataset_root,
    has_layout,
    materialise_dataset,
    resolve_source,
)
from alldag.tables import read_tsv, write_tsv_atomic
from conftest import SYNTHETIC_PER_CLASS


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert message and "\n" not in message, repr(message)
    return message


def _never_online():
    raise AssertionError("the network must not be probed here")


def _make_layout(root: Path, classes=("Benign", "Pro"), n=2) -> Path:
    for cls in classes:
        d = root / "Original" / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            (d / f"{file_prefix(cls)}-{i:03d}.jpg").write_bytes(b"jpg")
    return root


# --- scan_dataset -------------------------------------------------------------------------------


def test_scan_dataset_lists_every_image(synthetic_root):
    df = scan_dataset(synthetic_root)
    assert list(df.columns) == DATASET_COLUMNS
    assert len(df) == SYNTHETIC_PER_CLASS * len(CLASSES)
    assert df["label"].value_counts().to_dict() == {c: SYNTHETIC_PER_CLASS for c in CLASSES}
    assert list(df["image_id"]) == sorted(df["image_id"])
    assert df["image_id"].is_unique
    first = df.iloc[0]
    assert first["image_id"] == "Benign/WBC-Benign-001.jpg"
    assert first["label"] == "Benign"
    for col, folder in (("path", "Original"), ("mask_path", "Segmented")):
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in df[col])
        assert first[col] == str(synthetic_root.resolve() / folder / "Benign" / "WBC-Benign-001.jpg")
    for row in df.itertuples():
        assert row.image_id == f"{row.label}/{Path(row.path).name}"
        assert Path(row.path).parent.name == row.label


def test_scan_dataset_relative_root_gives_absolute_paths(synthetic_root, monkeypatch):
    monkeypatch.chdir(synthetic_root.parent)
    df = scan_dataset(synthetic_root.name)
    assert all(os.path.isabs(p) for p in df["path"])
    assert df["path"].iloc[0] == str(synthetic_root.resolve() / "Original" / "Benign" / "WBC-Benign-001.jpg")


def test_scan_dataset_missing_twin_and_non_images(synthetic_copy):
    (synthetic_copy / "Segmented" / "Pro" / "WBC-Malignant-Pro-002.jpg").unlink()
    shutil.rmtree(synthetic_copy / "Segmented" / "Early")
    pro = synthetic_copy / "Original" / "Pro"
    (pro / "notes.txt").write_text("not an image")
    (pro / "Thumbs.db").write_bytes(b"x")
    (pro / "subdir.jpg").mkdir()  # a folder with an image suffix is not an image
    (synthetic_copy / "Original" / "Unknown").mkdir()
    (synthetic_copy / "Original" / "Unknown" / "x.jpg").write_bytes(b"x")
    shutil.copy(pro / "WBC-Malignant-Pro-001.jpg", pro / "extra.PNG")

    df = scan_dataset(synthetic_copy).set_index("image_id")
    assert len(df) == SYNTHETIC_PER_CLASS * len(CLASSES) + 1
    assert "Pro/extra.PNG" in df.index
    assert not any(i.endswith((".txt", ".db", "subdir.jpg")) or i.startswith("Unknown/") for i in df.index)
    assert df.loc["Pro/WBC-Malignant-Pro-002.jpg", "mask_path"] == ""
    assert df.loc["Pro/WBC-Malignant-Pro-003.jpg", "mask_path"].endswith("Segmented/Pro/WBC-Malignant-Pro-003.jpg")
    assert (df[df["label"] == "Early"]["mask_path"] == "").all()
    assert (df[df["label"] == "Benign"]["mask_path"] != "").all()


def test_scan_dataset_segmented_folder(synthetic_root):
    df = scan_dataset(synthetic_root, folder="Segmented")
    assert len(df) == SYNTHETIC_PER_CLASS * len(CLASSES)
    assert all("/Segmented/" in p for p in df["path"])


def test_scan_dataset_without_original_raises(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(AlldagError) as exc:
        scan_dataset(tmp_path)
    message = _one_line(exc)
    assert "Original/" in message and str(tmp_path.resolve()) in message


def test_class_counts(synthetic_copy):
    shutil.rmtree(synthetic_copy / "Original" / "Early")
    (synthetic_copy / "Original" / "Pre" / "readme.txt").write_text("x")
    assert class_counts(synthetic_copy) == {"Benign": 8, "Early": 0, "Pre": 8, "Pro": 8}


# --- resolve_source -----------------------------------------------------------------------------


def test_resolve_synthetic():
    decision = resolve_source("synthetic", "does/not/matter", online=_never_online)
    assert (decision.kind, decision.root, decision.demo) == ("synthetic", None, False)


def test_resolve_local_missing_dir(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(AlldagError) as exc:
        resolve_source("local", str(missing), online=_never_online)
    message = _one_line(exc)
    assert "local_dir" in message and str(missing) in message


def test_resolve_local_none_dir():
    with pytest.raises(AlldagError) as exc:
        resolve_source("local", None, online=_never_online)
    assert "local_dir" in _one_line(exc)


@pytest.mark.parametrize("layout", ["empty", "no_class_folders", "flat_images"])
def test_resolve_local_bad_layout(tmp_path, layout):
    root = tmp_path / "ALL"
    root.mkdir()
    if layout == "no_class_folders":
        (root / "Original" / "benign").mkdir(parents=True)  # wrong case
    elif layout == "flat_images":
        (root / "Benign").mkdir()
        (root / "Benign" / "a.jpg").write_bytes(b"x")
    with pytest.raises(AlldagError) as exc:
        resolve_source("local", str(root), online=_never_online)
    message = _one_line(exc)
    assert "local_dir" in message and "Original" in message


def test_resolve_local_ok(synthetic_root):
    decision = resolve_source("local", str(synthetic_root), online=_never_online)
    assert decision.kind == "local"
    assert decision.root == str(synthetic_root.resolve())
    assert decision.demo is False


def test_resolve_kaggle_offline():
    with pytest.raises(AlldagError) as exc:
        resolve_source("kaggle", None, online=lambda: False)
    message = _one_line(exc)
    assert "by hand" in message
    assert "data.source: local" in message and "local_dir" in message and "Original" in message


def test_resolve_kaggle_online():
    decision = resolve_source("kaggle", None, online=lambda: True)
    assert (decision.kind, decision.root, decision.demo) == ("kaggle", None, False)


def test_resolve_auto_prefers_local(synthetic_root):
    decision = resolve_source("auto", str(synthetic_root), online=_never_online)
    assert (decision.kind, decision.root, decision.demo) == ("local", str(synthetic_root.resolve()), False)


def test_resolve_auto_kaggle_when_online(tmp_path):
    decision = resolve_source("auto", str(tmp_path / "missing"), online=lambda: True)
    assert (decision.kind, decision.demo) == ("kaggle", False)


def test_resolve_auto_falls_back_to_synthetic_demo(tmp_path):
    decision = resolve_source("auto", str(tmp_path / "missing"), online=lambda: False)
    assert (decision.kind, decision.root, decision.demo) == ("synthetic", None, True)
    assert "SYNTHETIC" in decision.reason
    assert json.loads(decision.to_json()) == {
        "kind": "synthetic",
        "root": None,
        "reason": decision.reason,
        "demo": True,
    }


def test_an_earlier_auto_decision_is_reused_without_probing_the_network(tmp_path):
    data = {"source": "auto", "local_dir": str(tmp_path / "missing")}
    provenance = tmp_path / "dataset.json"
    assert decide_source(data=data, provenance=provenance, online=lambda: True).kind == "kaggle"  # none yet: probe
    provenance.write_text(json.dumps({"requested": "auto", "source": "kaggle", "reason": "earlier", "demo": False}))
    assert decide_source(data=data, provenance=provenance, online=_never_online) == SourceDecision(
        "kaggle", None, "earlier", demo=False
    )
    explicit = data | {"source": "synthetic"}  # a changed choice is decided afresh
    assert decide_source(data=explicit, provenance=provenance, online=_never_online).kind == "synthetic"


def test_expected_class_counts_per_source(synthetic_root):
    data = {"folder": "Original", "synthetic": {"images_per_class": 7}}
    synthetic = SourceDecision("synthetic", None, "", demo=False)
    assert expected_class_counts(synthetic, data) == dict.fromkeys(CLASSES, 7)
    assert expected_class_counts(SourceDecision("kaggle", None, "", demo=False), data) is None
    local = SourceDecision("local", str(synthetic_root), "", demo=False)
    assert expected_class_counts(local, data) == class_counts(synthetic_root, "Original")


def test_resolve_unknown_source():
    with pytest.raises(AlldagError) as exc:
        resolve_source("s3", None, online=_never_online)
    assert "s3" in _one_line(exc)


def test_has_layout(tmp_path):
    assert not has_layout(tmp_path)
    (tmp_path / "Original" / "Other").mkdir(parents=True)
    assert not has_layout(tmp_path)
    (tmp_path / "Original" / "Pre").mkdir()
    assert has_layout(tmp_path)


# --- check_tasks / select_subset ----------------------------------------------------------------


def test_check_tasks_ok():
    check_tasks({"a": ["Benign", "Pro"], "b": list(CLASSES)}, {c: 5 for c in CLASSES})
    check_tasks({"a": ["Benign", "Pro"]})  # counts unknown yet


def test_check_tasks_unknown_class():
    with pytest.raises(AlldagError) as exc:
        check_tasks({"t1": ["Benign", "Malignant"]})
    message = _one_line(exc)
    assert "t1" in message and "Malignant" in message


@pytest.mark.parametrize("classes", [["Benign"], ["Pro", "Pro"]])
def test_check_tasks_needs_two_classes(classes):
    with pytest.raises(AlldagError) as exc:
        check_tasks({"solo": classes})
    assert "solo" in _one_line(exc)


def test_check_tasks_empty_class():
    with pytest.raises(AlldagError) as exc:
        check_tasks({"t": ["Benign", "Early"]}, {"Benign": 10, "Early": 0, "Pre": 3, "Pro": 3})
    message = _one_line(exc)
    assert "class(es) Early " in message and "no images" in message


def test_check_tasks_class_missing_from_counts():
    with pytest.raises(AlldagError):
        check_tasks({"t": ["Benign", "Pro"]}, {"Benign": 4})


def _dataset(n_per_class: dict[str, int]) -> pd.DataFrame:
    rows = [
        (f"{c}/{file_prefix(c)}-{i:03d}.jpg", c, f"/x/{c}/{i}.jpg", "")
        for c in CLASSES
        for i in range(1, n_per_class.get(c, 0) + 1)
    ]
    return pd.DataFrame(rows, columns=DATASET_COLUMNS)


def test_select_subset_caps_and_labels():
    data = _dataset({"Benign": 10, "Pre": 3, "Pro": 7})
    sub = select_subset(data, ["Pro", "Benign", "Pre"], max_per_class=5, seed=0)
    assert sub["label"].value_counts().to_dict() == {"Pro": 5, "Benign": 5, "Pre": 3}
    # y follows the task's class order, not the alphabet
    assert sub.groupby("label")["y"].unique().map(list).to_dict() == {"Pro": [0], "Benign": [1], "Pre": [2]}
    assert list(sub["label"].drop_duplicates()) == ["Pro", "Benign", "Pre"]
    assert list(sub.index) == list(range(len(sub)))
    assert set(sub["image_id"]) <= set(data["image_id"])
    assert sub["image_id"].is_unique
    for _, part in sub.groupby("label"):
        assert list(part["image_id"]) == sorted(part["image_id"])


def test_select_subset_is_seeded():
    data = _dataset({"Benign": 30, "Pro": 30})
    a = select_subset(data, ["Benign", "Pro"], 6, seed=1)
    b = select_subset(data, ["Benign", "Pro"], 6, seed=1)
    c = select_subset(data, ["Benign", "Pro"], 6, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["image_id"]) != set(c["image_id"])


def test_select_subset_no_cap_keeps_all():
    data = _dataset({"Benign": 4, "Early": 2})
    sub = select_subset(data, ["Early", "Benign"], None, seed=0)
    assert len(sub) == 6
    assert list(sub["y"]) == [0, 0, 1, 1, 1, 1]


def test_the_subset_stage_writes_what_its_settings_select(tmp_path):
    from types import SimpleNamespace

    write_tsv_atomic(_dataset({"Benign": 5, "Pro": 3}), tmp_path / "images.tsv")
    settings = SubsetSettings.from_params(SimpleNamespace(classes=["Pro", "Benign"], max_per_class=4, seed=0))
    written = write_subset(images=tmp_path / "images.tsv", settings=settings, out=tmp_path / "subset.tsv")
    back = read_tsv(tmp_path / "subset.tsv")
    assert back["label"].value_counts().to_dict() == {"Pro": 3, "Benign": 4}
    assert back["y"].tolist() == written["y"].tolist() == [0, 0, 0, 1, 1, 1, 1]


def test_select_subset_empty_class_raises():
    with pytest.raises(AlldagError) as exc:
        select_subset(_dataset({"Benign": 4}), ["Benign", "Pro"], None, seed=0)
    assert "Pro" in _one_line(exc)


# --- TSV ----------------------------------------------------------------------------------------


def test_tsv_roundtrip_keeps_empty_strings(tmp_path):
    df = pd.DataFrame(
        {
            "image_id": ["Pro/a.jpg", "Pro/b.jpg"],
            "label": ["Pro", "Pro"],
            "path": ["/p/a.jpg", "/p/b.jpg"],
            "mask_path": ["", "/m/b.jpg"],
            "y": [1, 0],
            "note": ["NA", "null"],
        }
    )
    out = tmp_path / "nested" / "dir" / "t.tsv"
    write_tsv_atomic(df, out)
    back = read_tsv(out)
    assert back["mask_path"].tolist() == ["", "/m/b.jpg"]
    assert back["note"].tolist() == ["NA", "null"]
    assert back["y"].tolist() == [1, 0]
    assert back.columns.tolist() == df.columns.tolist()
    assert sorted(p.name for p in out.parent.iterdir()) == ["t.tsv"]  # no temp file left
    write_tsv_atomic(df.iloc[:1], out)  # overwrite in place
    assert len(read_tsv(out)) == 1


# --- download -----------------------------------------------------------------------------------


def local_outputs(tmp_path) -> DownloadOutputs:
    """materialise_dataset's outputs, written under tmp_path."""
    return DownloadOutputs(str(tmp_path / "d.tsv"), str(tmp_path / "d.json"), str(tmp_path / "v.tsv"))


def test_materialise_synthetic(tmp_path):
    decision = SourceDecision("synthetic", None, "test run", demo=True)
    tsv, prov = tmp_path / "out" / "dataset.tsv", tmp_path / "dataset.json"
    n = materialise_dataset(
        settings=DownloadSettings(
            decision,
            synthetic_dir=str(tmp_path / "synthetic"),
            images_per_class={"Benign": 3, "Pro": 4},
            synthetic_seed=11,
            requested="auto",
        ),
        outputs=DownloadOutputs(str(tsv), str(prov), str(tmp_path / "verification.tsv")),
    )
    assert n == 7
    table = read_tsv(tsv)
    assert list(table.columns) == DATASET_COLUMNS
    assert table["label"].value_counts().to_dict() == {"Benign": 3, "Pro": 4}
    assert all(Path(p).is_file() for p in table["path"]) and all(Path(p).is_file() for p in table["mask_path"])
    info = json.loads(prov.read_text())
    assert {"requested", "source", "synthetic", "demo", "counts"} <= set(info)
    assert info["requested"] == "auto"
    assert info["source"] == "synthetic"
    assert info["synthetic"] is True
    assert info["demo"] is True
    assert info["counts"] == {"Benign": 3, "Pro": 4}
    assert info["root"] == str((tmp_path / "synthetic").resolve())


def test_materialise_local_requested_defaults_to_kind(tmp_path, synthetic_root):
    decision = resolve_source("local", str(synthetic_root), online=_never_online)
    n = materialise_dataset(
        settings=DownloadSettings(decision, "Segmented", str(tmp_path / "unused"), verify="off"),
        outputs=local_outputs(tmp_path),
    )
    assert n == SYNTHETIC_PER_CLASS * len(CLASSES)
    info = json.loads((tmp_path / "d.json").read_text())
    assert (info["requested"], info["source"], info["synthetic"], info["demo"]) == ("local", "local", False, False)
    assert info["counts"] == {c: SYNTHETIC_PER_CLASS for c in CLASSES}
    assert not (tmp_path / "unused").exists()


def test_materialise_empty_local_raises(tmp_path):
    root = tmp_path / "ALL"
    (root / "Original" / "Pro").mkdir(parents=True)
    decision = SourceDecision("local", str(root), "test", demo=False)
    with pytest.raises(AlldagError) as exc:
        materialise_dataset(settings=DownloadSettings(decision, verify="off"), outputs=local_outputs(tmp_path))
    _one_line(exc)
    assert not (tmp_path / "d.tsv").exists()


def test_find_dataset_root_nested(tmp_path):
    top = tmp_path / "download"
    inner = _make_layout(top / "versions" / "1")
    (top / "aaa").mkdir()  # a sibling without the layout is skipped
    assert find_dataset_root(top) == inner


def test_find_dataset_root_top_level(tmp_path):
    top = _make_layout(tmp_path / "download")
    assert find_dataset_root(top) == top


def test_find_dataset_root_missing(tmp_path):
    top = tmp_path / "download"
    (top / "versions" / "1" / "images").mkdir(parents=True)
    with pytest.raises(AlldagError) as exc:
        find_dataset_root(top)
    assert str(top) in _one_line(exc)


def test_find_dataset_root_too_deep(tmp_path):
    top = tmp_path / "download"
    _make_layout(top / "a" / "b" / "c" / "d")
    with pytest.raises(AlldagError):
        find_dataset_root(top)
