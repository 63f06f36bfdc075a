"""A real MLflow tracking server for tests: `mlflow server --app-name basic-auth` on 127.0.0.1 in a scratch folder,
with its REST API as the tests' view of what was logged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from base64 import b64encode
from contextlib import contextmanager
from pathlib import Path

import yaml

from slurm_cluster import free_port
from workflow_helpers import REPO

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
USER = "admin"
SECRET = f"sekrit-{uuid.uuid4().hex}"  # the admin password and the Kaggle key: must never be written anywhere
# One model, two folds: two training jobs run at once. Up to the comparison (explanations and the report
# are covered by e2e/test_tiny_study; here they would only add minutes).
CFG = {**yaml.safe_load((REPO / "tests/configs/one_model.yaml").read_text()), "split": {"folds": 2}}
TASK = "benign_vs_pro"
TARGET = f"results/mlflow/{TASK}/comparison_tracked.json"  # the comparison, tracked (so every model is too)
SECRET_ENV = {
    "MLFLOW_TRACKING_USERNAME": USER,
    "MLFLOW_TRACKING_PASSWORD": SECRET,
    "KAGGLE_USERNAME": "alldag-test",
    "KAGGLE_KEY": SECRET,
}


@contextmanager
def basic_auth_server(root: Path, port: int | None = None):
    """Start the server with SQLite stores under root (on port, or a free one); yields its URL; stops it on exit.

    Started again on the same root and port, it is the same server back after an outage."""
    (root / "basic_auth.ini").write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{root}/basic_auth.db\nadmin_username = {USER}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 600\n"  # a password hash costs 0.1 s of CPU: once per client, not per request
    )
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": SECRET,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
    }  # CSRF key, shared by the server's workers
    with open(root / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [
                MLFLOW,
                "server",
                "--app-name",
                "basic-auth",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "2",
                "--backend-store-uri",
                f"sqlite:///{root}/mlflow.db",
                "--artifacts-destination",
                str(root / "artifacts"),
            ],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "mlflow server did not start:\n" + (root / "server.log").read_text()[-3000:]
                    ) from None
                time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def rest(url: str, path: str, body: dict | None = None) -> dict:
    """One authenticated call of MLflow's REST API (GET, or POST with a JSON body)."""
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode() if body else None,
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + b64encode(f"{USER}:{SECRET}".encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def tags(run: dict) -> dict:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def study_runs(url: str, study: str) -> tuple[dict, list[dict]]:
    """(the one parent run, its child runs) of experiment `study`."""
    experiment = rest(url, "experiments/get-by-name?" + urllib.parse.urlencode({"experiment_name": study}))
    runs = rest(
        url, "runs/search", {"experiment_ids": [experiment["experiment"]["experiment_id"]], "max_results": 100}
    )["runs"]
    parents = [r for r in runs if "mlflow.parentRunId" not in tags(r)]
    assert len(parents) == 1, runs
    return parents[0], [r for r in runs if "mlflow.parentRunId" in tags(r)]


def metric_history(url: str, run: dict, key: str) -> list[dict]:
    query = urllib.parse.urlencode({"run_id": run["info"]["run_id"], "metric_key": key})
    return rest(url, f"metrics/get-history?{query}")["metrics"]


def check_study_logged(url: str, study: str, folds=range(CFG["split"]["folds"]), compared: bool = True) -> None:
    """Assert the parent run finished and holds one child per (model, fold) with its metrics and model,
    and (if compared) the comparison's metrics."""
    parent, children = study_runs(url, study)
    assert parent["info"]["status"] == "FINISHED"
    assert sorted((tags(c)["backbone"], tags(c)["fold"]) for c in children) == sorted(
        (model, str(fold)) for model in ("MobileNet", "colour_baseline") for fold in folds
    )
    for child in children:
        assert tags(child)["mlflow.parentRunId"] == parent["info"]["run_id"]
        assert child["info"]["status"] == "FINISHED"
        assert child["info"]["artifact_uri"].startswith("mlflow-artifacts:")  # stored by the server, not the client
    for child in (c for c in children if tags(c)["backbone"] == "MobileNet"):
        assert {"test_accuracy", "test_roc_auc", "best_val_accuracy"} <= {m["key"] for m in child["data"]["metrics"]}
        assert sorted(m["step"] for m in metric_history(url, child, "val_loss")) == list(range(CFG["train"]["epochs"]))
    for child in children:  # data lineage: the fold's split as three datasets
        contexts = [
            t["value"]
            for i in child.get("inputs", {}).get("dataset_inputs", [])
            for t in i.get("tags", [])
            if t["key"] == "mlflow.data.context"
        ]
        assert sorted(contexts) == ["test", "train", "val"], child["info"]["run_name"]
    if compared:
        assert f"{TASK}.MobileNet.accuracy" in {m["key"] for m in parent["data"]["metrics"]}
        assert (
            tags(rest(url, f"runs/get?run_id={parent['info']['run_id']}")["run"])["alldag.data_verified"] == "skipped"
        )
        model = rest(url, "registered-models/get?" + urllib.parse.urlencode({"name": f"alldag-{TASK}"}))
        aliases = {a["alias"] for a in model["registered_model"].get("aliases", [])}
        assert aliases in ({"champion"}, {"challenger"}), aliases  # the one model of this config, best fold


def assert_no_secret(url: str, study: str, proc: subprocess.CompletedProcess, files: list[Path]) -> None:
    """SECRET is in no MLflow param, tag or metric of the study, not in the run's output, not in any of files."""
    assert SECRET not in proc.stdout + proc.stderr
    parent, children = study_runs(url, study)
    for run in [parent, *children]:
        data = run["data"]
        for entry in data.get("params", []) + data.get("tags", []) + data.get("metrics", []):
            assert SECRET not in json.dumps(entry), (run["info"]["run_id"], entry)
    assert files
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


def written_text_files(workdir: Path) -> list[Path]:
    """Logs, Snakemake's own logs and every text output of a run."""
    logs = [p for d in ("logs", ".snakemake/log", ".snakemake/slurm_logs") for p in (workdir / d).rglob("*")]
    text = [p for p in (workdir / "results").rglob("*") if p.suffix in (".json", ".tsv", ".txt", ".html", ".yaml")]
    return [p for p in logs + text if p.is_file()]
