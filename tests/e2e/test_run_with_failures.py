"""A study run in which two things go wrong, as they do: one model's rule is broken (a custom architecture whose
builder does not exist) and the MLflow tracking server (basic auth, 127.0.0.1, its own) dies once training is
over. With --keep-going the DAG computes and keeps everything it can, and its report marks what is missing;
with the same server back, a run of the track jobs completes MLflow, once.

One run (module fixture, tests/configs/one_model.yaml plus the broken rule) feeds both tests. The comparison
needs every model, so here it stays missing; tests/e2e/test_tracking_server_run.py tracks a full comparison.
The custom-architecture rule's normal path and a kill mid-training are checked on the session's tiny study
(e2e/test_tiny_study.py, e2e/test_dag_killed_and_restarted.py).
"""

from __future__ import annotations

import json
import time
import urllib.parse

import pandas as pd
import pytest
import yaml

from slurm_cluster import free_port
from tracking_server import SECRET_ENV, basic_auth_server, metric_history, rest, tags
from workflow_helpers import REPO, Background, snakemake, write_config

pytestmark = pytest.mark.e2e
TASK = "benign_vs_pro"
CFG = {**yaml.safe_load((REPO / "tests/configs/one_model.yaml").read_text()), "study": "alldag-failures"}
MODEL_DIR = f"results/models/{TASK}/MobileNet/fold0"
COMPUTED = [  # MobileNet's outputs, computed while MLflow was down
    f"{MODEL_DIR}/model.keras",
    f"results/evaluation/{TASK}/MobileNet/fold0/metrics.json",
    f"results/evaluation/{TASK}/MobileNet/fold0/predictions.tsv",
    f"results/explanations/{TASK}/MobileNet/fold0/explanation_summary.tsv",
]
TRACKED = [f"results/mlflow/{TASK}/{model}/fold0/tracked.json" for model in ("MobileNet", "colour_baseline")]


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """(workdir, the finished first run, its config, the server's port): the whole DAG with --keep-going, the
    server stopped once MobileNet's training job wrote its last output. The server's stores stay in workdir."""
    workdir = tmp_path_factory.mktemp("failures")
    example = (REPO / "workflow/rules/custom/small_cnn.smk").read_text()
    broken = (
        example.replace("SmallCNN", "BrokenNet")
        .replace("train_small_cnn", "train_broken_net")
        .replace("alldag.architectures:small_cnn", "alldag.architectures:no_such_builder")
    )  # the copy lives in another folder and works there as it is: the parent's paths are absolute
    (workdir / "broken_net.smk").write_text(broken)
    port = free_port()
    (workdir / "server").mkdir()
    with basic_auth_server(workdir / "server", port) as url:
        cfg = {**CFG, "custom_models": {"BrokenNet": str(workdir / "broken_net.smk")}, "mlflow": {"tracking_uri": url}}
        config = write_config(workdir, cfg)
        run = Background(workdir, "--cores", "2", "--keep-going", config=config, env=SECRET_ENV)
        deadline = time.monotonic() + 600
        while not (workdir / MODEL_DIR / "mlflow_run.json").is_file():  # train's last output: training is over
            assert run.proc.poll() is None and time.monotonic() < deadline, run.err.read_text()[-3000:]
            time.sleep(0.5)
    proc, _ = run.wait()  # the server is down from here on
    assert proc.returncode != 0
    return workdir, proc, config, port


def test_keep_going_after_a_failed_model_writes_a_report_that_marks_it_missing(failed_run):
    from browser import body_attribute, rendered_dom

    workdir, proc, _, _ = failed_run
    assert "alldag: wrote a partial report marking the missing results" in proc.stderr
    assert "could not be loaded" in (workdir / f"logs/train/{TASK}/BrokenNet/fold0.log").read_text()
    summary = json.loads((workdir / "results/summary.json").read_text())
    assert summary["missing"] and all("BrokenNet" in m or "comparison" in m for m in summary["missing"])
    page = (workdir / "results/report.html").read_text()
    assert 'id="missing-banner"' in page and "BrokenNet" in page
    assert f'alt="{TASK} / MobileNet: ROC" src="data:image/png;base64,' in page  # what ran is shown
    table = pd.read_csv(workdir / "results/results_table.tsv", sep="\t").set_index("backbone")
    assert table.loc["MobileNet", "status"] == "ok" and table.loc["BrokenNet", "status"].startswith("MISSING")
    assert body_attribute(rendered_dom(workdir / "results/report.html"), "data-broken-images") == "0"


def test_outage_mid_run_keeps_outputs_and_a_later_track_run_completes_mlflow(failed_run):
    """Evaluate and explain still wrote their outputs while the server was down; MobileNet's track job failed,
    and its failure removed nothing. With the server back, a run of the track targets runs only track jobs, and
    MLflow holds each metric step and artefact once. (That
    forcing the track jobs again adds nothing is tests/unit/test_track_stage.py's.)"""
    workdir, proc, config, port = failed_run
    for path in COMPUTED:
        assert (workdir / path).is_file(), path
    assert not (workdir / TRACKED[0]).exists()
    track_log = (workdir / f"logs/track/{TASK}/MobileNet/fold0.log").read_text()
    assert "is unreachable" in track_log, track_log[-2000:]
    assert "Traceback" not in proc.stderr  # the failed jobs and the parent run left down: warnings, no more
    assert "WARNING: parent run not marked FAILED: MLflow server" in proc.stderr  # one probe, not HTTP retries
    kept = {p: (workdir / p).stat().st_mtime_ns for p in COMPUTED}
    with basic_auth_server(workdir / "server", port) as url:  # the same server, back
        proc = snakemake(workdir, "--cores", "2", *TRACKED, config=config, env=SECRET_ENV)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert {p: (workdir / p).stat().st_mtime_ns for p in COMPUTED} == kept  # only tracking ran
        check_tracked_once(url)


def check_tracked_once(url: str) -> None:
    """Assert one finished child run per tracked model, with its test metrics once, each epoch step once and
    its predictions among its artefacts; the broken model, never trained, has no run (training makes none)."""
    experiment = rest(url, "experiments/get-by-name?" + urllib.parse.urlencode({"experiment_name": CFG["study"]}))
    runs = rest(
        url, "runs/search", {"experiment_ids": [experiment["experiment"]["experiment_id"]], "max_results": 100}
    )["runs"]
    children = [r for r in runs if "mlflow.parentRunId" in tags(r)]
    assert sorted(tags(r)["backbone"] for r in children) == ["MobileNet", "colour_baseline"], children  # one each
    for child in children:
        model = tags(child)["backbone"]
        assert child["info"]["status"] == "FINISHED"
        metrics = {m["key"] for m in child["data"]["metrics"]}
        assert {"test_accuracy", "test_roc_auc"} <= metrics, (model, metrics)
        if model == "MobileNet":
            assert sorted(m["step"] for m in metric_history(url, child, "val_loss")) == list(
                range(CFG["train"]["epochs"])
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
