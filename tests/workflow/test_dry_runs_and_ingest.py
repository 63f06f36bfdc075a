"""The workflow's static checks and its one-line errors on bad input (dry runs, no training)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pandas as pd
import pytest

from alldag.synthetic import generate_dataset
from workflow_helpers import REPO, SNAKEMAKE, error_lines, snakemake, workflow_env, write_config


@pytest.mark.parametrize(
    "extra", [[], ["--config", f"custom_models={{SmallCNN: {REPO}/workflow/rules/custom/small_cnn.smk}}"]]
)
def test_lint_is_clean(extra):
    proc = subprocess.run(
        [SNAKEMAKE, "--lint", "-s", str(REPO / "Snakefile"), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=workflow_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


def test_snakefmt_is_clean():
    snakefmt = str(REPO / ".venv/bin/snakefmt") if (REPO / ".venv/bin/snakefmt").exists() else shutil.which("snakefmt")
    files = [str(REPO / "Snakefile"), *map(str, sorted((REPO / "workflow/rules").rglob("*.smk")))]
    proc = subprocess.run([snakefmt, "--check", *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_default_config_dry_run_plans_every_stage(tmp_path):
    proc = snakemake(tmp_path, "-n", config=REPO / "config.yaml")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "BUILT-IN SYNTHETIC" in out  # offline, auto falls back loudly
    for rule, count in {
        "download": 1,
        "audit": 1,
        "subset": 2,
        "split": 2,
        "check_leakage": 2,
        "augment": 2,
        "train": 8,
        "evaluate": 8,
        "explain": 8,
        "report": 1,
    }.items():
        assert any(line.split() == [rule, str(count)] for line in out.splitlines()), (rule, out)
    assert not (tmp_path / "results").exists()


BAD_CONFIGS = {
    "unknown backbone": ({"backbones": ["VGG17"]}, "unknown backbone 'VGG17'"),
    "unknown class": ({"tasks": {"t": ["Benign", "Blast"]}}, "unknown class(es) Blast"),
    "one class": ({"tasks": {"t": ["Benign"]}}, "tasks.t"),
    "typo'd key": ({"train": {"epochz": 3}}, "'epochz' was unexpected"),
    "bad value": ({"train": {"epochs": 0}}, "train.epochs"),
    "small image": ({"backbones": ["Xception"], "train": {"image_size": 64}}, "at least 71 px"),
    "local missing": ({"data": {"source": "local", "local_dir": "/nonexistent/ALL"}}, "is not a folder"),
    "kaggle offline": ({"data": {"source": "kaggle"}}, "cannot be reached"),
    "override of untrained backbone": (
        {"backbones": ["VGG16"], "backbone_overrides": {"VGG19": {"epochs": 2}}},
        "not in backbones",
    ),
    "bad override value": ({"backbone_overrides": {"VGG19": {"epochs": -1}}}, "backbone_overrides.VGG19"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_fails_with_one_line_before_any_job(tmp_path, name):
    overrides, expected = BAD_CONFIGS[name]
    proc = snakemake(tmp_path, "-n", config=write_config(tmp_path, {"data": {"source": "synthetic"}, **overrides}))
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert len(lines) == 1 and expected in lines[0], proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_local_folder_without_original_layout_fails(tmp_path):
    data = tmp_path / "ALL"
    (data / "Benign").mkdir(parents=True)  # class folders directly under the root: wrong layout
    proc = snakemake(
        tmp_path, "-n", config=write_config(tmp_path, {"data": {"source": "local", "local_dir": str(data)}})
    )
    lines = error_lines(proc)
    assert proc.returncode != 0 and len(lines) == 1 and "not laid out as the ALL dataset" in lines[0]


def test_local_class_with_zero_images_fails(tmp_path):
    generate_dataset(tmp_path / "ALL", {"Benign": 4, "Pro": 4}, seed=1)  # no Early/Pre folders at all
    for f in (tmp_path / "ALL/Original/Pro").iterdir():
        f.unlink()
    cfg = {
        "data": {"source": "local", "local_dir": str(tmp_path / "ALL")},
        "tasks": {"benign_vs_pro": ["Benign", "Pro"]},
    }
    proc = snakemake(tmp_path, "-n", config=write_config(tmp_path, cfg))
    lines = error_lines(proc)
    assert proc.returncode != 0 and len(lines) == 1 and "has no images for them" in lines[0], proc.stderr


def _local_fake(tmp_path, counts, seed=2):
    """A local copy of the dataset made of synthetic images, with a matching checksum manifest."""
    from conftest import checksum_manifest

    generate_dataset(tmp_path / "ALL", counts, seed=seed)
    checksum_manifest(tmp_path / "ALL").to_csv(tmp_path / "manifest.tsv", sep="\t", index=False)
    return {"source": "local", "local_dir": str(tmp_path / "ALL"), "manifest": str(tmp_path / "manifest.tsv")}


def test_local_dataset_runs_download_audit_and_kfold_split(tmp_path):
    """The real ingest path on a local fake of the dataset: verification, audit, 3-fold split, leakage check."""
    data = _local_fake(tmp_path, {"Benign": 10, "Early": 6, "Pre": 6, "Pro": 12})
    cfg = {"data": data, "seed": 5, "split": {"folds": 3, "grouping": "blocks", "group_blocks": 2}}
    target = "results/split/benign_vs_pro/leakage_check.tsv"
    proc = snakemake(tmp_path, "--cores", "1", target, config=write_config(tmp_path, cfg))
    assert proc.returncode == 0, proc.stderr
    prov = json.loads((tmp_path / "results/data/dataset.json").read_text())
    assert prov["source"] == "local" and prov["synthetic"] is False
    assert prov["counts"] == {"Benign": 10, "Early": 6, "Pre": 6, "Pro": 12}
    assert prov["verification"] == {"ok": 68}
    tested = []
    for fold in range(3):
        manifest = pd.read_csv(tmp_path / f"results/split/benign_vs_pro/fold{fold}/split_manifest.tsv", sep="\t")
        assert manifest.groupby("label").size().to_dict() == {"Benign": 10, "Pro": 12}
        assert set(manifest["split"]) == {"train", "val", "test"}
        assert manifest["path"].str.startswith(str(tmp_path / "ALL/Original")).all()
        tested += list(manifest.loc[manifest["split"] == "test", "image_id"])
        assert (manifest.groupby("group")["split"].nunique() == 1).all()  # patient-proxy blocks of 2 files
        assert manifest.groupby("group").size().max() == 2 and "Benign#0" in set(manifest["group"])
    assert sorted(tested) == sorted(set(tested)) and len(tested) == 22
    assert not (tmp_path / "results/data/synthetic").exists()  # local data are read in place
    # the default blocks (40 files, about one patient) leave one Benign group: that split cannot be made honestly
    del cfg["split"]["group_blocks"]
    proc = snakemake(tmp_path, "--cores", "1", target, config=write_config(tmp_path, cfg))
    assert proc.returncode != 0
    errors = [
        line for line in (tmp_path / "logs/split/benign_vs_pro.log").read_text().splitlines() if "ERROR alldag:" in line
    ]
    assert len(errors) == 1 and "benign_vs_pro: fold 0 would have no " in errors[0], proc.stderr[-3000:]
    assert "use fewer folds (split.folds) or smaller blocks (split.group_blocks, now 40)" in errors[0]


def test_local_dataset_that_does_not_match_the_manifest_fails_clearly(tmp_path):
    data = _local_fake(tmp_path, {"Benign": 5, "Pro": 5})
    with open(tmp_path / "ALL/Original/Pro/WBC-Malignant-Pro-002.jpg", "ab") as f:
        f.write(b"tampered")
    cfg = {"data": data, "split": {"folds": 1}, "tasks": {"benign_vs_pro": ["Benign", "Pro"]}}
    proc = snakemake(tmp_path, "--cores", "1", "results/data/dataset.tsv", config=write_config(tmp_path, cfg))
    assert proc.returncode != 0
    log = (tmp_path / "logs/download.log").read_text()
    errors = [line for line in log.splitlines() if "ERROR alldag:" in line]
    assert len(errors) == 1 and "does not match its manifest (1 changed" in errors[0], log[-2000:]
    assert "WBC-Malignant-Pro-002.jpg" in log
    assert not (tmp_path / "results/data/dataset.tsv").exists()
