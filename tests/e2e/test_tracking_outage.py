"""An MLflow outage mid-run: the tracking server (basic auth, 127.0.0.1, its own) dies once training is over.
Computing goes on and keeps its outputs; only the track jobs fail, and a later run with the server back
completes MLflow, once."""

from __future__ import annotations

import time
import urllib.parse

import pytest

from slurm_cluster import free_port
from tracking_server import CFG, SECRET_ENV, TARGET, TASK, basic_auth_server, metric_history, rest, tags
from workflow_helpers import Background, snakemake, write_config

pytestmark = pytest.mark.e2e


def test_outage_mid_run_keeps_outputs_and_a_later_track_run_completes_mlflow(tmp_path):
    """The server dies once training has finished: evaluate, explain and compare still write their outputs (up to
    the tracked comparison, as the other server tests; the report is e2e/test_tiny_study's); only track jobs
    fail, and their failure removes nothing. With the server back, a plain re-run runs only the track jobs and
    MLflow holds the study, each metric step and artefact once. (That forcing the track jobs again adds
    nothing is tests/unit/test_track_stage.py's.)"""
    cfg = {**CFG, "study": "alldag-outage", "split": {"folds": 1}}
    model_dir = f"results/models/{TASK}/MobileNet/fold0"
    computed = [
        f"{model_dir}/model.keras",
        f"results/evaluation/{TASK}/MobileNet/fold0/metrics.json",
        f"results/evaluation/{TASK}/MobileNet/fold0/predictions.tsv",
        f"results/explanations/{TASK}/MobileNet/fold0/explanation_summary.tsv",
        f"results/comparison/{TASK}/comparison.tsv",
    ]
    port = free_port()
    (tmp_path / "server").mkdir()
    with basic_auth_server(tmp_path / "server", port) as url:
        config = write_config(tmp_path, {**cfg, "mlflow": {"tracking_uri": url}})
        run = Background(tmp_path, "--cores", "2", "--keep-going", TARGET, config=config, env=SECRET_ENV)
        deadline = time.monotonic() + 600
        while not (tmp_path / model_dir / "mlflow_run.json").is_file():  # train's last output: training is over
            assert run.proc.poll() is None and time.monotonic() < deadline, run.err.read_text()[-3000:]
            time.sleep(0.5)
    proc, _ = run.wait()  # the server is down from here on
    assert proc.returncode != 0
    for path in computed:
        assert (tmp_path / path).is_file(), path  # computed while MLflow was down, and kept
    assert not (tmp_path / f"results/mlflow/{TASK}/MobileNet/fold0/tracked.json").exists()
    track_log = (tmp_path / f"logs/track/{TASK}/MobileNet/fold0.log").read_text()
    assert "is unreachable" in track_log, track_log[-2000:]
    assert "Traceback" not in proc.stderr.split("Exiting because a job execution failed")[-1]  # a warning, no more
    kept = {p: (tmp_path / p).stat().st_mtime_ns for p in computed}
    with basic_auth_server(tmp_path / "server", port) as url:  # the same server, back
        proc = snakemake(tmp_path, "--cores", "2", TARGET, config=config, env=SECRET_ENV)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert {p: (tmp_path / p).stat().st_mtime_ns for p in computed} == kept  # only tracking ran
        check_tracked_once(url, cfg)


def check_tracked_once(url: str, cfg: dict) -> None:
    """Assert one finished child run per model, with its test metrics once, each epoch step once and its
    predictions among its artefacts."""
    experiment = rest(url, "experiments/get-by-name?" + urllib.parse.urlencode({"experiment_name": cfg["study"]}))
    runs = rest(
        url, "runs/search", {"experiment_ids": [experiment["experiment"]["experiment_id"]], "max_results": 100}
    )["runs"]
    children = {tags(r)["backbone"]: r for r in runs if "mlflow.parentRunId" in tags(r)}
    assert len(children) == len([r for r in runs if "mlflow.parentRunId" in tags(r)]) == 2, runs
    for model, child in children.items():
        assert child["info"]["status"] == "FINISHED"
        metrics = {m["key"] for m in child["data"]["metrics"]}
        assert {"test_accuracy", "test_roc_auc"} <= metrics, (model, metrics)
        if model == "MobileNet":
            assert sorted(m["step"] for m in metric_history(url, child, "val_loss")) == list(
                range(cfg["train"]["epochs"])
            )
            assert len(metric_history(url, child, "test_accuracy")) == 1
        artefacts = sorted(
            a["path"]
            for folder in ("figures", "evaluation", "explanation")
            for a in rest(
                url, "artifacts/list?" + urllib.parse.urlencode({"run_id": child["info"]["run_id"], "path": folder})
            ).get("files", [])
        )
        assert "evaluation/predictions.tsv" in artefacts
