"""The SLURM profile on a real SLURM: a single-node cluster (Debian's slurmctld, slurmd, munge, no accounting
database) runs the one-model study's fold 0 up to its evaluation through `snakemake --workflow-profile
profiles/slurm`, its jobs logging to the MLflow server, and its outputs must equal the local run's
(conftest.server_run). Fold 0 alone keeps the test to one training job; test_tracking_server_run runs two at once.

Skipped, with the reason, where SLURM is missing and cannot be installed (apt as root).
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pandas as pd
import pytest

from slurm_cluster import (
    SlurmUnavailable,
    alive,
    check_system_config_free,
    ensure_installed,
    listening_addresses,
    single_node_cluster,
)
from tracking_server import CFG, SECRET_ENV, TASK, assert_no_secret, check_study_logged, written_text_files
from workflow_helpers import REPO, snakemake, write_config

pytestmark = pytest.mark.e2e
STUDY = "alldag-slurm"
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+)")
MODELS = ("MobileNet", "colour_baseline")
TARGETS = [
    f"results/evaluation/{TASK}/{model}/fold0/{name}"
    for model in MODELS
    for name in ("predictions.tsv", "metrics.json")
]
TRACKED = [f"results/mlflow/{TASK}/{model}/fold0/tracked.json" for model in MODELS]  # the track jobs log them


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
def slurm_run(cluster, mlflow_server, server_run_started, tmp_path_factory):
    """The cluster run, while the local run it is compared with runs too (the cluster run mostly waits)."""
    workdir = tmp_path_factory.mktemp("slurm_run")
    config = write_config(workdir, {**CFG, "study": STUDY, "mlflow": {"tracking_uri": mlflow_server}})
    start = time.monotonic()
    proc = snakemake(
        workdir,
        "--workflow-profile",
        str(REPO / "profiles/slurm"),
        *TARGETS,
        *TRACKED,
        # Test-only overrides of the profile, none of them about SLURM itself:
        "--slurm-init-seconds-before-status-checks",
        "2",  # poll often; MinJobAge=300 keeps squeue reliable
        "--set-threads",
        "train=1",
        "evaluate=1",
        "audit=1",  # the local run's threads: identical numbers
        "--latency-wait",
        "5",  # one machine, no shared-filesystem delay
        "--slurm-keep-successful-logs",  # the plugin deletes them; the secrets test reads them
        "--config",
        "train={require_gpu: false}",  # the test cluster's GPU is a gres stand-in: train on its CPU
        config=config,
        env={**cluster.env, **SECRET_ENV},
        timeout=900,
    )
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-8000:]
    return workdir, proc, seconds


def _slurm_job(cluster, slurm_id: str) -> str:
    """What slurmctld still knows about a job (it keeps finished ones for MinJobAge seconds), on one line."""
    return subprocess.run(
        ["scontrol", "show", "job", "--oneliner", slurm_id], env=cluster.env, capture_output=True, text=True, check=True
    ).stdout


def test_every_job_went_through_sbatch(cluster, slurm_run):
    workdir, proc, seconds = slurm_run
    print(f"SLURM run: {seconds:.0f} s")
    log = proc.stdout + proc.stderr
    submitted = dict(SUBMITTED.findall(log))
    # the profile's data-preparation group (audit ... augment), train, evaluate (which also scores the model's
    # stain probes), explain, colour_baseline and the stain probes' images and the baseline's scores on them;
    # download and the track jobs are local rules (the internet; the tracking server)
    assert len(submitted) == 7, log[-4000:]
    assert "localrule download" in log and "localrule track:" in log
    jobs = {slurm_id: _slurm_job(cluster, slurm_id) for slurm_id in submitted.values()}
    for job in jobs.values():
        assert "JobState=COMPLETED" in job, job
    train = [job for job in jobs.values() if "/rule_train/" in job]
    assert len(train) == 1 and "Partition=gpu" in train[0] and "TresPerJob=gres:gpu:1" in train[0], train
    assert sum("Partition=cpu" in job for job in jobs.values()) == 6


def test_daemons_listen_on_loopback_only(cluster):
    for port in cluster.ports:
        assert listening_addresses(port) == {"127.0.0.1"}, port


def test_outputs_equal_the_local_run(slurm_run, server_run):
    cluster_dir, local_dir = slurm_run[0], server_run[0]
    for path in TARGETS:
        if path.endswith(".tsv"):
            pd.testing.assert_frame_equal(
                pd.read_csv(cluster_dir / path, sep="\t"), pd.read_csv(local_dir / path, sep="\t")
            )
        else:
            assert json.loads((cluster_dir / path).read_text()) == json.loads((local_dir / path).read_text()), path


def test_cluster_jobs_logged_to_the_server(mlflow_server, slurm_run):
    check_study_logged(mlflow_server, STUDY, folds=[0], compared=False)


def test_no_secret_in_slurm_logs_or_mlflow(mlflow_server, slurm_run):
    workdir, proc, _ = slurm_run
    files = written_text_files(workdir)
    assert any(".snakemake/slurm_logs" in str(p) for p in files)
    assert_no_secret(mlflow_server, STUDY, proc, files)
