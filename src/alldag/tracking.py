"""MLflow tracking: one experiment per study, a parent run per pipeline invocation, a child run per model.

Jobs are separate processes, so the parent run id travels in a small JSON file and children carry
the `mlflow.parentRunId` tag. SQLite is single-writer: every write retries on 'database is locked'.
"""

from __future__ import annotations

import json
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path

PARENT_TAG = "mlflow.parentRunId"
_LOCK_WORDS = ("database is locked", "locked", "busy")


def resolve_tracking_uri(configured: str, workdir: str | os.PathLike) -> str:
    """MLFLOW_TRACKING_URI if set, else `configured` with a relative sqlite path made absolute."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        uri = prefix + str((Path(workdir) / uri[len(prefix):]).resolve())
    return uri


def retry(fn, *args, attempts: int = 12, **kwargs):
    """Call fn, retrying with jittered backoff while SQLite reports a lock."""
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # MlflowException / sqlalchemy OperationalError wrap the lock
            if i == attempts - 1 or not any(w in str(exc).lower() for w in _LOCK_WORDS):
                raise
            time.sleep(min(0.2 * 2 ** i, 5.0) * (0.5 + random.random()))


def _client(uri: str):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def ensure_experiment(uri: str, name: str, artifact_root: str | os.PathLike) -> str:
    """Id of experiment `name`, created (with artifacts under artifact_root) if missing."""
    client = _client(uri)
    exp = retry(client.get_experiment_by_name, name)
    if exp is not None:
        return exp.experiment_id
    Path(artifact_root).mkdir(parents=True, exist_ok=True)
    try:
        return retry(client.create_experiment, name, artifact_location=Path(artifact_root).resolve().as_uri())
    except Exception:  # another process created it first
        return retry(client.get_experiment_by_name, name).experiment_id


def start_parent_run(uri: str, experiment: str, artifact_root, run_file, tags: dict) -> str:
    """Create the parent run of this pipeline invocation and record its id in run_file."""
    client = _client(uri)
    exp_id = ensure_experiment(uri, experiment, artifact_root)
    run = retry(client.create_run, exp_id, tags={**tags, "mlflow.runName": f"study-{time.strftime('%Y%m%d-%H%M%S')}"})
    Path(run_file).parent.mkdir(parents=True, exist_ok=True)
    Path(run_file).write_text(json.dumps({"run_id": run.info.run_id, "experiment_id": exp_id, "tracking_uri": uri}))
    return run.info.run_id


def end_parent_run(uri: str, run_file, status: str) -> None:
    """Mark the recorded parent run FINISHED or FAILED (no-op if there is none)."""
    if not Path(run_file).is_file():
        return
    run_id = json.loads(Path(run_file).read_text())["run_id"]
    retry(_client(uri).set_terminated, run_id, status=status)


def parent_run_id(uri: str, experiment: str, artifact_root, run_file, tags: dict) -> str:
    """The current parent run id; starts one when jobs run without the workflow's onstart hook."""
    if Path(run_file).is_file():
        return json.loads(Path(run_file).read_text())["run_id"]
    return start_parent_run(uri, experiment, artifact_root, run_file, tags)


@contextmanager
def child_run(uri: str, experiment: str, artifact_root, parent_id: str, name: str, tags: dict,
              run_id: str | None = None):
    """Start a child run of parent_id named `name` (or reopen run_id, after a restart); yields the active run."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    if run_id is not None:
        run = retry(mlflow.start_run, run_id=run_id)
    else:
        exp_id = ensure_experiment(uri, experiment, artifact_root)
        run = retry(mlflow.start_run, experiment_id=exp_id, run_name=name, tags={**tags, PARENT_TAG: parent_id})
    try:
        yield run
    except BaseException:
        retry(mlflow.end_run, status="FAILED")
        raise
    retry(mlflow.end_run)


@contextmanager
def resume_run(uri: str, run_id: str):
    """Reopen an existing run (e.g. the training child) to log evaluation or explanation results."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    run = retry(mlflow.start_run, run_id=run_id)
    try:
        yield run
    finally:
        retry(mlflow.end_run)


def log_metrics(metrics: dict, step: int | None = None) -> None:
    import mlflow

    retry(mlflow.log_metrics, {k: float(v) for k, v in metrics.items()}, step=step)


def log_metrics_to(run_id: str, metrics: dict, step: int) -> None:
    """Log metrics of one step to a given run in one batch (the run need not be active)."""
    import mlflow
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    batch = [Metric(k, float(v), stamp, step) for k, v in metrics.items()]
    retry(mlflow.MlflowClient().log_batch, run_id, metrics=batch)


def log_artifact(path, artifact_path: str | None = None) -> None:
    import mlflow

    retry(mlflow.log_artifact, str(path), artifact_path)
