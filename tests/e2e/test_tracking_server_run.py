"""MLflow as a shared tracking server: the DAG logs to `mlflow server` (basic auth, 127.0.0.1), keeps secrets
out of everything it writes, and fails in seconds with one line when the server is down.

The run (conftest.server_run) is the one-model config with two folds, so two training jobs run at once and
their track jobs log to the server.
"""

from __future__ import annotations

import time

import pytest
import yaml

from slurm_cluster import free_port, listening_addresses
from tracking_server import (
    CFG,
    TARGET,
    TASK,
    assert_no_secret,
    check_study_logged,
    study_runs,
    tags,
    written_text_files,
)
from workflow_helpers import error_lines, snakemake

pytestmark = pytest.mark.e2e


def test_every_job_logged_to_the_server(mlflow_server, server_run):
    workdir, _, seconds = server_run
    print(f"local run against the server: {seconds:.0f} s")
    assert not (workdir / "results/mlflow.db").exists()  # nothing fell back to the local store
    check_study_logged(mlflow_server, CFG["study"])


def test_server_listens_on_loopback_only(mlflow_server):
    assert listening_addresses(int(mlflow_server.rsplit(":", 1)[1])) == {"127.0.0.1"}


def test_training_jobs_ran_in_parallel(mlflow_server, server_run):
    """The folds' training jobs overlap: each child run spans its training job (the start and end its run
    record holds; the track job, the run's one writer, logs the run later)."""
    _, children = study_runs(mlflow_server, CFG["study"])
    spans = [
        (int(c["info"]["start_time"]), int(c["info"]["end_time"]))
        for c in children
        if tags(c)["backbone"] == "MobileNet"
    ]
    (a_start, a_end), (b_start, b_end) = spans
    assert a_start < b_end and b_start < a_end, spans


def test_no_secret_is_written_anywhere(mlflow_server, server_run):
    workdir, proc, _ = server_run
    assert_no_secret(mlflow_server, CFG["study"], proc, written_text_files(workdir))


def test_unreachable_server_fails_in_seconds_and_keeps_results(server_run):
    workdir, _, _ = server_run
    kept = {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*") if p.is_file()}
    config = workdir / "unreachable.yaml"
    config.write_text(yaml.safe_dump({**CFG, "mlflow": {"tracking_uri": f"http://127.0.0.1:{free_port()}"}}))
    start = time.monotonic()
    proc = snakemake(workdir, "--cores", "2", "--forcerun", "train", TARGET, config=config)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert len(lines) == 1 and "is unreachable" in lines[0] and "mlflow server" in lines[0], proc.stderr[-2000:]
    assert elapsed < 30, elapsed  # Snakemake's start-up included; the probe itself gives up after 5 s
    assert {p: p.stat().st_mtime_ns for p in kept if p.exists()} == kept  # nothing ran, nothing was removed
    assert (workdir / f"results/models/{TASK}/MobileNet/fold0/model.keras").is_file()
