"""The SLURM profile on a real SLURM: a single-node cluster (Debian's slurmctld, slurmd, munge, no accounting
database) runs the one-model study through `snakemake --workflow-profile profiles/slurm`, its jobs logging to
the MLflow server, and its outputs must equal the local run's (conftest.server_run).

Skipped, with the reason, where SLURM is missing and cannot be installed (apt as root).
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pandas as pd
import pytest

from slurm_cluster import SlurmUnavailable, alive, check_system_config_free, ensure_installed, single_node_cluster
from tracking_server import CFG, SECRET_ENV, TARGET, TASK, assert_no_secret, check_study_logged, written_text_files
from workflow_helpers import REPO, snakemake, write_config

pytestmark = pytest.mark.e2e
STUDY = "alldag-slurm"
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        ensure_installed()
        check_system_config_free()
    except SlurmUnavailable as exc:
        pytest.skip(f"no SLURM here: {exc}")
    with single_node_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster
    assert not [pid for pid in cluster.pids if alive(pid)], "a SLURM daemon outlived the test"


@pytest.fixture(scope="module")
def slurm_run(cluster, mlflow_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm_run")
    config = write_config(workdir, {**CFG, "study": STUDY, "mlflow": {"tracking_uri": mlflow_server}})
    start = time.monotonic()
    proc = snakemake(
        workdir, "--workflow-profile", str(REPO / "profiles/slurm"), TARGET,
        # Test-only overrides of the profile, none of them about SLURM itself:
        "--slurm-init-seconds-before-status-checks", "3",  # poll often; MinJobAge=300 keeps squeue reliable
        "--set-threads", "train=1", "evaluate=1", "audit=1",  # the local run's threads: identical numbers
        "--latency-wait", "5",  # one machine, no shared-filesystem delay
        config=config, env={**cluster.env, **SECRET_ENV}, timeout=900)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-8000:]
    return workdir, proc, seconds


def _slurm_jobs(cluster) -> dict[str, dict]:
    """Every job slurmctld still remembers (MinJobAge), by id: state, partition, name, GPUs asked for."""
    out = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%T|%P|%j|%b"], env=cluster.env,
                         capture_output=True, text=True, check=True).stdout
    rows = (line.split("|") for line in out.splitlines() if line.strip())
    return {i: {"state": s, "partition": p, "name": n, "gres": g} for i, s, p, n, g in rows}


def test_every_job_went_through_sbatch(cluster, slurm_run):
    workdir, proc, seconds = slurm_run
    print(f"SLURM run: {seconds:.0f} s")
    log = proc.stdout + proc.stderr
    submitted = dict(SUBMITTED.findall(log))
    # all but the local download rule, the target rule-less `all` excluded: 2 folds x (train, evaluate,
    # colour_baseline) + audit, subset, split, check_leakage, augment, compare
    assert len(submitted) == 12, log[-4000:]
    jobs = _slurm_jobs(cluster)
    for slurm_id in submitted.values():
        assert jobs[slurm_id]["state"] == "COMPLETED", jobs[slurm_id]
    train_ids = [m.group(1) for m in re.finditer(r"rule train:.*?jobid: (\d+)", log, re.S)]
    assert len(train_ids) == 2
    for job_id in train_ids:
        job = jobs[submitted[job_id]]
        assert job["partition"] == "gpu" and "gpu:1" in job["gres"], job  # the profile's GPU request reached SLURM
    assert "localrule download" in log


def test_outputs_equal_the_local_run(slurm_run, server_run):
    cluster_dir, local_dir = slurm_run[0], server_run[0]
    for fold in range(CFG["split"]["folds"]):
        for model in ("MobileNet", "colour_baseline"):
            folder = f"results/evaluation/{TASK}/{model}/fold{fold}"
            pd.testing.assert_frame_equal(pd.read_csv(cluster_dir / folder / "predictions.tsv", sep="\t"),
                                          pd.read_csv(local_dir / folder / "predictions.tsv", sep="\t"))
            assert json.loads((cluster_dir / folder / "metrics.json").read_text()) == json.loads(
                (local_dir / folder / "metrics.json").read_text())
    pd.testing.assert_frame_equal(pd.read_csv(cluster_dir / TARGET, sep="\t"), pd.read_csv(local_dir / TARGET, sep="\t"))


def test_cluster_jobs_logged_to_the_server(mlflow_server, slurm_run):
    check_study_logged(mlflow_server, STUDY)


def test_no_secret_in_slurm_logs_or_mlflow(mlflow_server, slurm_run):
    workdir, proc, _ = slurm_run
    files = written_text_files(workdir)
    assert any(".snakemake/slurm_logs" in str(p) for p in files)
    assert_no_secret(mlflow_server, STUDY, proc, files)
