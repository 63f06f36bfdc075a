"""Shared fixtures, and the tiers: tests/unit (in-process, seconds), tests/workflow (Snakemake runs of parts of
the DAG, in-process training, TensorFlow in fresh interpreters), tests/e2e (the whole DAG, servers, SLURM).
Each test carries its tier's marker."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

SYNTHETIC_PER_CLASS = 8
SYNTHETIC_SEED = 5


TIERS = ("unit", "workflow", "e2e")


def checksum_manifest(root) -> pd.DataFrame:
    """A checksum manifest of every image under root/Original and root/Segmented, in the format of the shipped
    workflow/resources/ALL-MANIFEST.tsv (alldag.verify.MANIFEST_COLUMNS): what verification tests check against."""
    from PIL import Image

    from alldag.verify import MANIFEST_COLUMNS, dataset_files, sha256_file

    rows = []
    for rel in dataset_files(root):
        path = Path(root) / rel
        with Image.open(path) as img:
            width, height, fmt, mode = img.width, img.height, img.format, img.mode
        rows.append((rel, Path(rel).parent.name, sha256_file(path), width, height, path.stat().st_size, fmt, mode))
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)


# `make test` runs the suite on pytest-xdist workers, each taking one work unit at a time: a module, or the
# modules that share a server (the session's MLflow server lives in one worker's process), listed here.
# (xdist's own `--dist loadgroup` marks do not group on pytest 9.2: pytest-xdist#1386.)
SERVER_MODULES = ("tests/e2e/test_slurm_cluster.py", "tests/e2e/test_tracking_server_run.py")
# The longest units first (a longest-first schedule ends both workers close together); then the other e2e,
# the workflow and the unit modules. The kill test runs while another worker makes its reference, e2e_run.
FIRST = (
    "tests/e2e/test_tiny_study.py",
    "tests/e2e/test_dag_killed_and_restarted.py",
    *SERVER_MODULES,
    "tests/e2e/test_run_with_failures.py",
)


def pytest_xdist_make_scheduler(config, log):
    """Hand workers whole work units, in the order pytest_collection_modifyitems gives: a module, or the
    modules sharing the MLflow server. Modules also keep their fixed resources on one worker (the Kaggle stub's
    port, the SLURM cluster's system config)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "mlflow_server" if module in SERVER_MODULES else module

    config.option.loadscopereorder = False  # keep that order rather than sorting units by their test count
    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Mark each test with its folder's tier, so `-m "not e2e"` and `-m unit` select by cost; on xdist workers,
    order the tests FIRST, then e2e, workflow, unit. A test using the session's MLflow server from a module not
    in SERVER_MODULES would start a second one: that stops the session."""
    rank = {}
    for item in items:
        tier = Path(item.path).relative_to(REPO / "tests").parts[0]
        if tier in TIERS:
            item.add_marker(tier)
        module = Path(item.path).relative_to(REPO).as_posix()
        rank[item.nodeid] = FIRST.index(module) if module in FIRST else len(FIRST) + TIERS[::-1].index(tier)
        if "mlflow_server" in getattr(item, "fixturenames", ()) and module not in SERVER_MODULES:
            raise pytest.UsageError(f"{item.nodeid} uses mlflow_server: add {module} to SERVER_MODULES in {__file__}")
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: rank[item.nodeid])  # stable: modules stay together


@contextmanager
def shared_by_workers(tmp_path_factory, name: str):
    """Yields a folder that all xdist workers of this session share (the session's own folder without
    xdist), holding an exclusive lock on it meanwhile: the first worker in makes what goes there, the others
    wait and find it made."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        folder = root / name
        folder.mkdir(exist_ok=True)
        yield folder


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def schema_path() -> Path:
    return SCHEMA


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A small synthetic dataset (8 images per class, seed 5), shared read-only by the session.

    Tests that change files must use `synthetic_copy` instead.
    """
    from alldag.classes import CLASSES
    from alldag.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synthetic") / "ALL"
    generate_dataset(root, {c: SYNTHETIC_PER_CLASS for c in CLASSES}, SYNTHETIC_SEED)
    return root


@pytest.fixture(scope="session")
def small_manifest(tmp_path_factory) -> pd.DataFrame:
    """16 synthetic 64 px images (Benign and Pro, y = 1 for Pro) split into train/val/test, shared read-only."""
    from alldag.data import scan_dataset
    from alldag.split import SplitSettings, make_folds
    from alldag.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("train") / "ALL"
    generate_dataset(root, {"Benign": 8, "Pro": 8}, seed=1, size=64)
    data = scan_dataset(root)
    data["y"] = (data["label"] == "Pro").astype(int)
    return make_folds(data, SplitSettings(1, 0.25, 0.25, 0))[0]


@pytest.fixture
def synthetic_copy(synthetic_root, tmp_path) -> Path:
    """A private, writable copy of the session's synthetic dataset."""
    dest = tmp_path / "ALL"
    shutil.copytree(synthetic_root, dest)
    return dest


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory) -> Path:
    """Working directory of the real DAG on tests/configs/tiny.yaml (--cores 2), run once for the session by
    the first xdist worker that asks: e2e/test_tiny_study and e2e/test_mlflow_models read its outputs, and the
    kill test compares its own run with it."""
    from workflow_helpers import snakemake

    with shared_by_workers(tmp_path_factory, "e2e") as workdir:
        finished = workdir / "snakemake.returncode"
        if not finished.exists():
            proc = snakemake(workdir, "--cores", "2", config=REPO / "tests/configs/tiny.yaml")
            (workdir / "snakemake.stdout").write_text(proc.stdout)
            (workdir / "snakemake.stderr").write_text(proc.stderr)  # the console, for the progress test
            finished.write_text(str(proc.returncode))
    console = (workdir / "snakemake.stdout").read_text()[-3000:] + (workdir / "snakemake.stderr").read_text()[-6000:]
    assert finished.read_text() == "0", console
    return workdir


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> str:
    """URL of a real `mlflow server` (basic auth, 127.0.0.1, own SQLite stores) for the session."""
    from tracking_server import basic_auth_server

    with basic_auth_server(tmp_path_factory.mktemp("mlflow_server")) as url:
        yield url


@pytest.fixture(scope="session")
def server_run_started(mlflow_server, tmp_path_factory):
    """The one-model, two-fold study run locally (--cores 2) against the server, with secrets in its
    environment, started in the background: e2e/test_slurm_cluster runs its cluster run meanwhile."""
    from tracking_server import CFG, SECRET_ENV, TARGET
    from workflow_helpers import Background, write_config

    workdir = tmp_path_factory.mktemp("server_run")
    config = write_config(workdir, {**CFG, "mlflow": {"tracking_uri": mlflow_server}})
    run = Background(workdir, "--cores", "2", TARGET, config=config, env=SECRET_ENV)
    yield workdir, run
    run.stop()


@pytest.fixture(scope="session")
def server_run(server_run_started):
    """(workdir, finished process, seconds) of the local run against the server."""
    workdir, run = server_run_started
    proc, seconds = run.wait()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return workdir, proc, seconds


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri():
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which workflow runs started later would
    inherit (and prefer to their config): restore it after every test."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
