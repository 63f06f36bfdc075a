"""The whole DAG survives SIGKILL: on tests/configs/tiny.yaml, kill the process group of a running
`snakemake` (Snakemake and all its jobs) during the audit, during training, during an explanation and during
the report; after each kill `--unlock` and restart with `--rerun-incomplete`. The final predictions, metrics,
comparison tables and summary.json equal the uninterrupted session run's (conftest.e2e_run, same config), and
MLflow holds exactly one child run per model and fold with each epoch step once: the track jobs alone write
those runs, so a job killed anywhere (even right after training, before Snakemake recorded it) leaves none
behind to duplicate.

The training kill comes once a training job has checkpointed an epoch before its last (tiny.yaml checkpoints
every epoch), so the restarted job resumes from that checkpoint: its seeding per (seed, epoch) makes the
resumed model bit-identical to one trained without a break. The killed training job never made a run: the
model's one run is made later, from the resumed job's record, under a later invocation's parent run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from alldag.config import train_settings_for, trained_models
from alldag.layout import PARENT_RUN_FILE
from workflow_helpers import REPO, _command, snakemake

pytestmark = pytest.mark.e2e
CONFIG = REPO / "tests/configs/tiny.yaml"
CFG = yaml.safe_load(CONFIG.read_text())
TASK = "benign_vs_pro"
TRAINED = trained_models(CFG)
MODELS = [*TRAINED, "colour_baseline"]
EPOCHS = {m: train_settings_for(CFG, m)["epochs"] for m in TRAINED}
COMPARED = [
    f"results/evaluation/{TASK}/{m}/fold0/{name}" for m in MODELS for name in ("predictions.tsv", "metrics.json")
]
COMPARED += [f"results/comparison/{TASK}/comparison.tsv", f"results/comparison/{TASK}/paired_tests.tsv"]
EXTERNAL_FOLD0 = f"results/external/{next(iter(CFG['external']))}/{TASK}/{{model}}/fold0.json"  # its MLflow metrics


def _started(workdir: Path, pattern: str, since: float) -> bool:
    """A log matching pattern was written by this attempt (logs of earlier attempts are older)."""
    return any(p.stat().st_mtime >= since for p in workdir.glob(pattern))


def _training_checkpointed_midway(workdir: Path, since: float) -> bool:
    """A training job of this attempt has checkpointed an epoch and has more to train."""
    for model in TRAINED:
        state = workdir / f"results/models/{TASK}/{model}/fold0/checkpoint/state.json"
        try:
            epoch = json.loads(state.read_text())["epoch"]
            if state.stat().st_mtime >= since and 1 <= epoch < EPOCHS[model]:
                return True
        except (OSError, ValueError, KeyError):  # not there yet, or replaced while read
            continue
    return False


KILL_POINTS = {  # name: is it now?
    "audit": lambda w, t: _started(w, "logs/audit.log", t),
    "training": _training_checkpointed_midway,
    "explain": lambda w, t: _started(w, "logs/explain/*/*/fold0.log", t),
    "report": lambda w, t: _started(w, "logs/report.log", t),
}


def _run_until(workdir: Path, args: list[str], now, timeout: float = 900) -> bool:
    """Start snakemake in its own process group; SIGKILL the group once now(workdir, start) holds.
    Returns whether it was killed (False: it finished first)."""
    cmd, env = _command(workdir, ["--cores", "2", *args], CONFIG, None)
    start = time.time() - 1  # file times have coarse resolution on some file systems
    with open(workdir / "attempts.log", "a") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=out, start_new_session=True)
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if now(workdir, start):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            assert time.monotonic() < deadline, "snakemake did not reach the kill point in time"
            time.sleep(0.1)
    assert proc.returncode == 0, (workdir / "attempts.log").read_text()[-4000:]
    return False


def test_dag_killed_at_every_stage_ends_as_an_uninterrupted_run(request, tmp_path):
    start = time.monotonic()
    killed, parents = [], {}
    for name, now in KILL_POINTS.items():
        if _run_until(tmp_path, ["--rerun-incomplete"], now):
            killed.append(name)
        parents[name] = json.loads((tmp_path / PARENT_RUN_FILE).read_text())["run_id"]  # this invocation's
        proc = snakemake(tmp_path, "--unlock", config=CONFIG)
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert killed == list(KILL_POINTS), killed  # every kill point was met
    proc = snakemake(tmp_path, "--cores", "2", "--rerun-incomplete", config=CONFIG)
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"killed at {killed}; {time.monotonic() - start:.0f} s in all")
    e2e_run = request.getfixturevalue("e2e_run")  # only now: another xdist worker may be making it meanwhile
    for path in COMPARED:
        if path.endswith(".tsv"):
            pd.testing.assert_frame_equal(pd.read_csv(tmp_path / path, sep="\t"), pd.read_csv(e2e_run / path, sep="\t"))
        else:
            assert json.loads((tmp_path / path).read_text()) == json.loads((e2e_run / path).read_text()), path
    summaries = [json.loads((d / "results/summary.json").read_text()) for d in (tmp_path, e2e_run)]
    for summary in summaries:
        summary.pop("mlflow")  # run ids differ between the two studies
    assert summaries[0] == summaries[1]
    _check_mlflow_once(tmp_path)
    _check_a_resumed_training_job(tmp_path, parents["training"])


def _check_a_resumed_training_job(workdir: Path, killed_parent: str) -> None:
    """A training job killed after a checkpointed epoch resumed from it; its model's one MLflow run is the resumed
    job's record's (its record id), made by a track job of a later invocation than the one killed in training."""
    resumed = [m for m in TRAINED if "resuming from the checkpoint after epoch" in _train_log(workdir, m)]
    assert resumed, "no training job resumed from a checkpoint"
    client = mlflow.MlflowClient(f"sqlite:///{workdir / 'results/mlflow.db'}")
    for model in resumed:
        record = json.loads((workdir / f"results/models/{TASK}/{model}/fold0/mlflow_run.json").read_text())
        assert record["run_id"] is None, model  # training makes no run
        run_id = json.loads((workdir / f"results/mlflow/{TASK}/{model}/fold0/tracked.json").read_text())["run_id"]
        tags = client.get_run(run_id).data.tags
        assert tags["alldag.record"] == record["record"], model
        earlier = tags.get("alldag.previous_parent_run_ids", "").split(",")
        assert killed_parent not in [tags["mlflow.parentRunId"], *earlier], model


def _train_log(workdir: Path, model: str) -> str:
    return (workdir / f"logs/train/{TASK}/{model}/fold0.log").read_text()


def _check_mlflow_once(workdir: Path) -> None:
    """Exactly one child run per model and fold, finished, with each epoch step of val_loss once and each score on
    another lab's images once, wherever the kills fell among the external_validation and track jobs."""
    client = mlflow.MlflowClient(f"sqlite:///{workdir / 'results/mlflow.db'}")
    experiment = client.get_experiment_by_name(CFG["study"])
    children = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    runs_per_model = Counter((r.data.tags["backbone"], r.data.tags["fold"]) for r in children)
    assert runs_per_model == Counter((model, "0") for model in MODELS), runs_per_model  # exactly one each
    for child in children:
        assert child.info.status == "FINISHED", child.data.tags["backbone"]
        assert "test_balanced_accuracy" in child.data.metrics
        external = json.loads((workdir / EXTERNAL_FOLD0.format(model=child.data.tags["backbone"])).read_text())
        assert external and all(len(client.get_metric_history(child.info.run_id, k)) == 1 for k in external)
        if child.data.tags["backbone"] != "colour_baseline":
            steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_loss")]
            assert sorted(steps) == list(range(EPOCHS[child.data.tags["backbone"]])), child.data.tags["backbone"]
