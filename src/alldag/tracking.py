"""MLflow tracking: one experiment per study, a parent run per pipeline invocation, a child run per model.

Jobs are separate processes, so the parent run id travels in a small JSON file and children carry
the `mlflow.parentRunId` tag. SQLite is single-writer: every write retries on 'database is locked'.
With an `http(s)://` tracking server, each process checks once that it answers (a down server fails
in seconds, not after minutes of retries) and artifacts go through the server.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alldag import AlldagError

log = logging.getLogger(__name__)
PARENT_TAG = "mlflow.parentRunId"
# The parent run's data tags (set by the workflow and alldag.registry.log_provenance), copied onto its children
DATA_SOURCE_TAG, DATA_VERIFIED_TAG = "alldag.data_source", "alldag.data_verified"
SYNTHETIC_TAG, DEMO_TAG = "alldag.synthetic", "alldag.demo"
RECORD_TAG = "alldag.record"  # a job's unique record id: the `track` rule finds (or makes) the run by it
# The MLflow UI opens an experiment without this tag on its GenAI overview (traces, assistant); this value
# opens it on "Training runs".
KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# Every child run (CNNs, custom models, the colour baseline) logs these, so compare views have no holes.
RUN_PARAMS = ("task", "backbone", "fold", "image_size", "epochs", "weights", "seed", "data_source", "git_commit")
SPLITS = ("train", "val", "test")
EXTERNAL_CONTEXT = "external:{name}"  # the dataset-input context of another lab's images (config external:<name>)
PREVIOUS_PARENTS_TAG = "alldag.previous_parent_run_ids"  # comma-separated, oldest first
ENDED_BY_TAG = "alldag.ended_by"  # why a run was ended by someone other than its own invocation
STALE_PARENT = (
    "the next invocation: this run was still RUNNING when it started (its own invocation was killed, or ended "
    "while the tracking server was down)"
)
_LOCK_WORDS = ("database is locked", "locked", "busy")
PROBE_TIMEOUT_S = 5
# MLflow's REST defaults (7 retries, exponential backoff, 120 s timeout) take minutes to give up on a
# server that is down; these fail within seconds yet ride out a busy server. The environment wins.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
SERVER_HINT = (
    "start it (mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db) "
    "or set mlflow.tracking_uri to sqlite:///results/mlflow.db"
)


@dataclass(frozen=True)
class Tracking:
    """Where and under which runs to log: from config and the workflow's parent-run file."""

    uri: str
    experiment: str
    artifact_root: str
    parent_run_file: str
    tags: dict
    system_metrics: bool = False  # MLflow system metrics (CPU, memory, GPU) on training runs

    @classmethod
    def from_params(cls, params: dict) -> Tracking:
        """From a rule's tracking params; MLFLOW_TRACKING_URI wins, relative sqlite paths become absolute."""
        return cls(**{**params, "uri": resolve_tracking_uri(params["uri"], os.getcwd())})

    @property
    def data_source(self) -> str:
        """Where the data came from (synthetic, kaggle, local), as the workflow tagged the runs."""
        return self.tags.get(DATA_SOURCE_TAG, "unknown")

    def parent_run_id(self) -> str:
        """This invocation's parent run id (see parent_run_id)."""
        return parent_run_id(self.uri, self.experiment, self.artifact_root, self.parent_run_file, self.tags)


def resolve_tracking_uri(configured: str, workdir: str | os.PathLike) -> str:
    """MLFLOW_TRACKING_URI if set, else `configured` with a relative sqlite path made absolute."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        uri = prefix + str((Path(workdir) / uri[len(prefix) :]).resolve())
    return uri


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


@cache
def check_server(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise AlldagError (one line) if `uri` is a tracking server that does not answer within timeout seconds.

    No-op for other stores. Credentials in the URI are refused: they would end up in logs and run files.
    """
    if not is_server(uri):
        return
    parts = urllib.parse.urlsplit(uri)
    if parts.username or parts.password:
        raise AlldagError(
            "the MLflow tracking URI contains credentials: remove them from the URI and set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment instead"
        )
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()
    except urllib.error.HTTPError:  # it answered (e.g. 401 behind basic auth): reachable
        pass
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlldagError(f"MLflow server {uri} is unreachable ({reason}) — {SERVER_HINT}") from None


def _use(uri: str):
    """Point mlflow at uri (after checking a server answers); returns the mlflow module."""
    import mlflow

    if is_server(uri):
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        check_server(uri)
    mlflow.set_tracking_uri(uri)
    return mlflow


def retry(fn, *args, attempts: int = 12, **kwargs):
    """Call fn, retrying with jittered backoff while SQLite reports a lock."""
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # MlflowException / sqlalchemy OperationalError wrap the lock
            if i == attempts - 1 or not any(w in str(exc).lower() for w in _LOCK_WORDS):
                raise
            time.sleep(min(0.2 * 2**i, 5.0) * (0.5 + random.random()))


def client_for(uri: str):
    """An MlflowClient for uri (a server is checked first)."""
    return _use(uri).MlflowClient(uri)


def ensure_experiment(uri: str, name: str, artifact_root: str | os.PathLike) -> str:
    """Id of experiment `name`, created if missing: artifacts under artifact_root, or the server's store."""
    client = client_for(uri)
    exp = retry(client.get_experiment_by_name, name)
    if exp is not None:
        if KIND_TAG not in exp.tags:  # made by an older version of this workflow
            retry(client.set_experiment_tag, exp.experiment_id, KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    location = None
    if not is_server(uri):
        Path(artifact_root).mkdir(parents=True, exist_ok=True)
        location = Path(artifact_root).resolve().as_uri()
    try:
        return retry(client.create_experiment, name, artifact_location=location, tags={KIND_TAG: EXPERIMENT_KIND})
    except Exception:  # another process created it first
        return retry(client.get_experiment_by_name, name).experiment_id


def start_parent_run(uri: str, experiment: str, artifact_root, run_file, tags: dict) -> str:
    """Create the parent run of this pipeline invocation and record its id in run_file."""
    client = client_for(uri)
    exp_id = ensure_experiment(uri, experiment, artifact_root)
    run = retry(client.create_run, exp_id, tags={**tags, "mlflow.runName": f"study-{time.strftime('%Y%m%d-%H%M%S')}"})
    Path(run_file).parent.mkdir(parents=True, exist_ok=True)
    Path(run_file).write_text(json.dumps({"run_id": run.info.run_id, "experiment_id": exp_id, "tracking_uri": uri}))
    return run.info.run_id


def end_parent_run(uri: str, run_file, status: str) -> None:
    """Mark the recorded parent run FINISHED or FAILED (no-op if there is none).

    Called when a long invocation ends, so the server is probed afresh: check_server's answer from the start
    may be stale, and a server gone by now fails in one probe instead of seconds of MLflow's HTTP retries."""
    if not Path(run_file).is_file():
        return
    check_server.cache_clear()
    run_id = json.loads(Path(run_file).read_text())["run_id"]
    retry(client_for(uri).set_terminated, run_id, status=status)


def close_stale_parent_run(uri: str, run_file) -> str | None:
    """Mark KILLED, tagged ENDED_BY_TAG = STALE_PARENT, the parent run that run_file records if it is still
    RUNNING in this store: called at an invocation's start (Snakemake's directory lock means no other
    invocation is using it). Returns the closed run's id; None when there is nothing to close (no run file,
    one of another store, a run this store does not have, or one already ended)."""
    try:
        info = json.loads(Path(run_file).read_text())
        run_id = info["run_id"]
    except (OSError, ValueError, KeyError):  # no (readable) run file: nothing was left open here
        return None
    if info.get("tracking_uri", uri) != uri:
        return None
    client = client_for(uri)
    from mlflow.exceptions import MlflowException

    try:
        run = retry(client.get_run, run_id)
    except MlflowException:  # "run not found": a fresh or reset store
        return None
    if run.info.status != "RUNNING":
        return None
    retry(client.set_tag, run_id, ENDED_BY_TAG, STALE_PARENT)
    retry(client.set_terminated, run_id, status="KILLED")
    log.warning("parent run %s of an earlier invocation was still RUNNING: marked KILLED", run_id)
    return run_id


def close_parent_run(uri: str, run_file, status: str) -> bool:
    """end_parent_run at an invocation's end; a tracking server gone by now only costs a one-line warning
    on stderr (the jobs' results stand). Returns whether the run was marked."""
    try:
        end_parent_run(uri, run_file, status)
    except Exception as exc:  # AlldagError, or MLflow's own error once the server has gone away
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        print(f"WARNING: parent run not marked {status}: {first}", file=sys.stderr)
        return False
    return True


def parent_run_id(uri: str, experiment: str, artifact_root, run_file, tags: dict) -> str:
    """The current parent run id; starts one when jobs run without the workflow's onstart hook."""
    if Path(run_file).is_file():
        return json.loads(Path(run_file).read_text())["run_id"]
    return start_parent_run(uri, experiment, artifact_root, run_file, tags)


def child_run_record(
    tracking: Tracking, *, task: str, model: str, fold, image_size, epochs, weights, seed, params: dict
) -> dict:
    """What a model's child run holds besides its job's files: name '<task>/<model>/fold<fold>', a unique record
    id (RECORD_TAG: the `track` rule finds the run by it), the name of its split datasets, tags, and params
    (the model's own, then the RUN_PARAMS every child run logs), all as strings."""
    import uuid

    from alldag.provenance import git_commit

    every_run = run_params(
        task=task,
        backbone=model,
        fold=fold,
        image_size=image_size,
        epochs=epochs,
        weights=weights,
        seed=seed,
        data_source=tracking.data_source,
        git_commit=git_commit(),
    )
    return {
        "name": f"{task}/{model}/fold{fold}",
        "record": uuid.uuid4().hex,
        "dataset": f"{task}/fold{fold}",
        "tags": {**tracking.tags, "task": task, "backbone": model, "fold": str(fold)},
        "params": {k: str(v) for k, v in {**params, **every_run}.items()},
    }


def create_child_run(tracking: Tracking, record: dict) -> tuple[str, str]:
    """Create the child run of a job's record (child_run_record) under this invocation's parent run, tagged with
    its record id and, as MLflow's fluent API would, the user and source; it starts when the job did (the
    record's `started`, epoch ms, if any). Returns (run id, parent run id)."""
    from mlflow.tracking.context.registry import resolve_tags

    client = client_for(tracking.uri)
    exp_id = ensure_experiment(tracking.uri, tracking.experiment, tracking.artifact_root)
    parent = tracking.parent_run_id()
    tags = resolve_tags({**record["tags"], PARENT_TAG: parent, RECORD_TAG: record["record"]})
    run = retry(client.create_run, exp_id, start_time=record.get("started"), run_name=record["name"], tags=tags)
    return run.info.run_id, parent


def write_run_file(path, tracking: Tracking, record: dict) -> None:
    """A model's run file (mlflow_run.json), what its computing job hands the `track` rule: the record
    (child_run_record) and the tracking URI. run_id stays None: the track job makes the run (tracked.json)."""
    Path(path).write_text(json.dumps({"run_id": None, "tracking_uri": tracking.uri, **record}, indent=2))


def read_run_file(path) -> dict:
    """A model's run file, as write_run_file wrote it."""
    return json.loads(Path(path).read_text())


def reparent_run(run_id: str, parent_id: str) -> str | None:
    """Make parent_id the parent of run_id (a child run reopened by a restarted job); returns the old parent.

    A restart belongs to the current invocation, so mlflow.parentRunId moves to its parent run; the
    earlier parents stay listed, oldest first, in the alldag.previous_parent_run_ids tag.
    """
    import mlflow

    client = mlflow.MlflowClient()
    tags = retry(client.get_run, run_id).data.tags
    old = tags.get(PARENT_TAG)
    if old == parent_id:
        return None
    if old:
        earlier = [p for p in tags.get(PREVIOUS_PARENTS_TAG, "").split(",") if p]
        retry(client.set_tag, run_id, PREVIOUS_PARENTS_TAG, ",".join([*earlier, old]))
    retry(client.set_tag, run_id, PARENT_TAG, parent_id)
    return old


def run_params(**values) -> dict:
    """The flat params every child run logs (RUN_PARAMS, all of them, as strings): one compare table."""
    if set(values) != set(RUN_PARAMS):
        raise ValueError(f"run params must be exactly {RUN_PARAMS}, got {sorted(values)}")
    return {key: str(values[key]) for key in RUN_PARAMS}


def digest(lines) -> str:
    """A short, order-independent digest of text lines (16 hex digits of SHA-256)."""
    import hashlib

    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:16]


def image_list_digest(rows) -> str:
    """The digest of an image list (rows with image_id and label): what names a dataset's images."""
    return digest(f"{r.image_id}\t{r.label}" for r in rows.itertuples())


def log_image_dataset(table_path, rows, *, name: str, context: str, tags: dict) -> None:
    """Log image rows (image_id, label, y) read from the table file `table_path` as MLflow dataset `name` of the
    active run, in `context`: its digest is image_list_digest, its tags `tags`, that digest and the number of
    images."""
    import mlflow

    rows = rows[["image_id", "label", "y"]].reset_index(drop=True)
    image_list = image_list_digest(rows)
    dataset = mlflow.data.from_pandas(
        rows, source=str(Path(table_path).resolve()), targets="y", name=name, digest=image_list
    )
    tags = {**tags, "image_list_digest": image_list, "n_images": str(len(rows))}
    retry(mlflow.log_input, dataset, context=context, tags=tags)


def log_split_datasets(manifest_path, manifest, name: str, data_source: str) -> None:
    """Log the split manifest's train/val/test parts as MLflow datasets of the active run.

    Each dataset is named `<name>/<split>`, its digest is that of its image list (image id and label), and
    its tags give the manifest file's SHA-256, the data source and the number of images.
    """
    import hashlib

    checksum = hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest()
    for split in SPLITS:
        tags = {"manifest_sha256": checksum, "data_source": data_source}
        rows = manifest[manifest["split"] == split]
        log_image_dataset(manifest_path, rows, name=f"{name}/{split}", context=split, tags=tags)


def logged_steps(client, run_id: str, key: str) -> set[int]:
    """The steps at which run_id already has metric key."""
    return {m.step for m in retry(client.get_metric_history, run_id, key)}


def log_metrics_once(client, run_id: str, metrics: dict, step: int = 0) -> int:
    """Log the metrics the run lacks at step (a re-run adds no second copy); returns how many were logged."""
    return len(log_steps_once(client, run_id, [{"step": step, "metrics": metrics}]))


def log_steps_once(client, run_id: str, samples: list[dict]) -> list:
    """Log each sample's metrics ({step, metrics, optional timestamp in epoch ms: else now}) the run lacks at
    that step, so a re-run adds no second copy; returns the metrics logged (mlflow.entities.Metric)."""
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    present = retry(client.get_run, run_id).data.metrics  # one request; a key's history only if it has one
    keys = {k for s in samples for k in s["metrics"]}
    have = {k: logged_steps(client, run_id, k) if k in present else set() for k in keys}
    batch = [
        Metric(k, float(v), s.get("timestamp", stamp), s["step"])
        for s in samples
        for k, v in s["metrics"].items()
        if s["step"] not in have[k]
    ]
    for i in range(0, len(batch), 500):  # MLflow's batch limit is 1000 metrics
        retry(client.log_batch, run_id, metrics=batch[i : i + 500])
    return batch


def log_artifacts_once(client, run_id: str, paths, folder: str | None = None) -> int:
    """Upload the files the run lacks under folder (a file of another size, a broken upload, is replaced)."""
    present = {Path(a.path).name: a.file_size for a in retry(client.list_artifacts, run_id, folder)}
    missing = [p for p in map(Path, paths) if present.get(p.name) != p.stat().st_size]
    for path in missing:
        retry(client.log_artifact, run_id, str(path), folder)
    return len(missing)
