"""Pretrained weights as a DAG input: one local fetch_weights job per file a backbone starts from, the run
stopping before any job when it is offline without them, and the rule fetching from a local server under the
SLURM profile (a small fake file: no test downloads real weights, and no SLURM is needed for a local rule)."""

from __future__ import annotations

import hashlib
import re

from alldag.weights import TABLE, WeightsFile, format_weights_table
from net_stubs import FileServer
from workflow_helpers import REPO, error_lines, snakemake, write_config

VGG16 = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
MOBILENET_128 = "mobilenet_1_0_128_tf_no_top.h5"
NO_PROXY = {var: "" for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")}
CONFIG = {
    "data": {"source": "synthetic"},
    "split": {"folds": 1},
    "tasks": {"benign_vs_pro": ["Benign", "Pro"]},
    "backbones": ["VGG16", "MobileNet", "Xception"],
    "train": {"weights": "imagenet", "image_size": 96},
    "backbone_overrides": {"MobileNet": {"image_size": 128}, "Xception": {"weights": None}},
    "custom_models": {"SmallCNN": str(REPO / "workflow/rules/custom/small_cnn.smk")},
}


def _jobs(out: str, rule: str) -> list[str]:
    """The blocks of the dry run's jobs of one rule."""
    return [block for block in re.split(r"\n(?=\S)", out) if re.match(rf"(local)?rule {rule}:", block)]


def test_one_fetch_per_imagenet_file_and_training_reads_it(tmp_path):
    proc = snakemake(
        tmp_path, "-n", "--workflow-profile", str(REPO / "profiles/slurm"), config=write_config(tmp_path, CONFIG)
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    fetches = _jobs(out, "fetch_weights")
    # VGG16's file, and MobileNet's 128-px file (its override); none for Xception (null) or SmallCNN (custom)
    assert sorted(re.search(r"output: (\S+)", job).group(1) for job in fetches) == [
        f"resources/weights/{MOBILENET_128}",
        f"resources/weights/{VGG16}",
    ]
    trains = {
        re.search(r"backbone=(\w+)", job).group(1): job for job in _jobs(out, "train") + _jobs(out, "train_small_cnn")
    }
    assert sorted(trains) == ["MobileNet", "SmallCNN", "VGG16", "Xception"]
    assert (
        f"resources/weights/{VGG16}" in trains["VGG16"] and f"resources/weights/{MOBILENET_128}" in trains["MobileNet"]
    )
    assert "resources/weights" not in trains["Xception"] + trains["SmallCNN"]


def test_offline_without_the_files_stops_before_any_job_and_with_them_fetches_nothing(tmp_path):
    config = write_config(tmp_path, CONFIG)
    proc = snakemake(tmp_path, "--cores", "1", config=config)  # the workflow tests run with ALLDAG_OFFLINE=1
    lines = error_lines(proc)
    assert proc.returncode != 0 and len(lines) == 1, proc.stdout + proc.stderr[-3000:]
    assert (
        "ImageNet weights are not in resources/weights/ and https://storage.googleapis.com cannot be reached"
        in lines[0]
    )
    for name in (VGG16, MOBILENET_128):
        assert f"resources/weights/{name} (from https://storage.googleapis.com/tensorflow/" in lines[0]
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
    assert not (tmp_path / "mlflow.db").exists()  # stopped before the MLflow parent run too

    (tmp_path / "resources/weights").mkdir(parents=True)
    for name in (VGG16, MOBILENET_128):
        (tmp_path / "resources/weights" / name).write_bytes(b"copied in by hand")
    proc = snakemake(tmp_path, "-n", config=config)
    assert proc.returncode == 0 and not _jobs(proc.stdout, "fetch_weights") and _jobs(proc.stdout, "train"), proc.stderr


def test_the_slurm_profile_fetches_weights_locally(tmp_path):
    data = b"fake VGG16 weights\n" * 100
    with FileServer({f"/w/{VGG16}": data}) as server:
        row = WeightsFile("VGG16", "*", VGG16, server.url(f"/w/{VGG16}"), hashlib.md5(data).hexdigest(), "")
        table = tmp_path / "table.tsv"
        table.write_text(format_weights_table([row]))
        proc = snakemake(
            tmp_path,
            "--workflow-profile",
            str(REPO / "profiles/slurm"),
            "--slurm-init-seconds-before-status-checks",
            "1",  # no job goes to SLURM: do not wait for its first status check
            f"resources/weights/{VGG16}",
            config=write_config(tmp_path, {**CONFIG, "backbones": ["VGG16"], "backbone_overrides": {}}),
            env={**NO_PROXY, "ALLDAG_OFFLINE": "0", "ALLDAG_TEST_WEIGHTS_TABLE": str(table)},
        )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "localrule fetch_weights:" in out and "Submitted" not in out  # run where snakemake runs, not via sbatch
    assert server.requests == [("HEAD", "/"), ("GET", f"/w/{VGG16}")]  # the check before any job, then the job
    assert (tmp_path / "resources/weights" / VGG16).read_bytes() == data
    assert "downloaded (1900 bytes) and verified" in (tmp_path / "logs/fetch_weights" / f"{VGG16}.log").read_text()
    assert TABLE not in out
