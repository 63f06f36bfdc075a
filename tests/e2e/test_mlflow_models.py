"""MLflow as the lab notebook, on the end-to-end run's store (conftest.e2e_run, no DAG run of its own):
models that load and serve outside this repository, the registry, data lineage, a clean compare table
and the MLflow UI on "Training runs"."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

import fresh_env
from alldag.config import train_settings_for
from alldag.tracking import EXTERNAL_CONTEXT
from alldag.verdicts import BEATS, VERDICT_COLUMN
from slurm_cluster import free_port
from workflow_helpers import REPO

pytestmark = pytest.mark.e2e
CFG = yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())
TASK = "benign_vs_pro"
BACKBONES = CFG["backbones"]
CLASSES = CFG["tasks"][TASK]
FINAL_METRICS = ["test_accuracy", "test_balanced_accuracy", "test_macro_f1", "test_roc_auc", "test_ece"]
N_IMAGES = 3


def store(run: Path) -> str:
    return f"sqlite:///{run / 'results/mlflow.db'}"


def run_id(run: Path, backbone: str, fold: int = 0) -> str:
    return json.loads((run / f"results/mlflow/{TASK}/{backbone}/fold{fold}/tracked.json").read_text())["run_id"]


def first_test_images(
    run: Path, backbone: str, n: int = N_IMAGES, png_folder: Path | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """The first n test images, decoded and resized as the DAG does (raw RGB, float32 in [0, 255]), and
    their rows of the DAG's predictions.tsv. With png_folder, the files are first re-encoded there as PNG
    (lossless: the same pixels) and the PNGs are decoded."""
    import tensorflow as tf

    from alldag.images import load_images

    manifest = pd.read_csv(run / f"results/split/{TASK}/fold0/split_manifest.tsv", sep="\t")
    test = manifest[manifest["split"] == "test"].head(n)
    predictions = pd.read_csv(run / f"results/evaluation/{TASK}/{backbone}/fold0/predictions.tsv", sep="\t")
    rows = predictions.set_index("image_id").loc[test["image_id"]]
    paths = list(test["path"])
    if png_folder is not None:
        pngs = [png_folder / f"{Path(p).stem}.png" for p in paths]
        for source, png in zip(paths, pngs):
            pixels = tf.io.decode_image(tf.io.read_file(source), channels=3, expand_animations=False)
            png.write_bytes(tf.io.encode_png(pixels).numpy())
        paths = [str(p) for p in pngs]
    return load_images(paths, train_settings_for(CFG, backbone)["image_size"]), rows


def expected(rows: pd.DataFrame) -> np.ndarray:
    return rows[[f"p_{c}" for c in CLASSES]].to_numpy(float)


def model_folder(run: Path, backbone: str) -> Path:
    """The logged model's folder in the local artifact store (MLflow 3 keeps it apart from the run's artifacts)."""
    from alldag.registry import model_uri

    client = mlflow.MlflowClient(store(run))
    uri = model_uri(client.get_run(run_id(run, backbone)))
    assert uri.startswith("models:/m-"), uri
    location = client.get_logged_model(uri.removeprefix("models:/")).artifact_location
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(location).path))


@pytest.fixture(scope="module")
def fresh(e2e_run, tmp_path_factory) -> Path:
    """A venv with only what the logged model's requirements.txt names (and their dependencies)."""
    requirements = (model_folder(e2e_run, BACKBONES[0]) / "requirements.txt").read_text().split()
    start = time.monotonic()
    python = fresh_env.build(tmp_path_factory.mktemp("fresh") / "venv", requirements)
    print(f"fresh venv with {requirements}: {time.monotonic() - start:.1f} s")
    return python.parents[1]


def in_fresh(prefix: Path, code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(prefix / "bin/python"), "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=fresh_env.clean_env(prefix, **env),
    )


def test_mlmodel_is_keras3_with_exact_requirements_signature_and_a_small_example(e2e_run):
    import keras
    import tensorflow as tf

    for backbone in BACKBONES:
        folder = model_folder(e2e_run, backbone)
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
        assert mlmodel["flavors"]["keras"]["keras_version"] == keras.__version__ == "3.15.1"
        assert mlmodel["flavors"]["python_function"]["loader_module"] == "mlflow.keras"
        assert (folder / "requirements.txt").read_text().split() == [
            f"mlflow=={mlflow.__version__}",
            f"keras=={keras.__version__}",
            f"tensorflow=={tf.__version__}",
        ]
        size = train_settings_for(CFG, backbone)["image_size"]
        inputs = json.loads(mlmodel["signature"]["inputs"])
        assert inputs == [
            {"name": "image", "type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, size, size, 3]}}
        ]
        assert "[0, 255]" in mlmodel["metadata"]["input"] and mlmodel["metadata"]["classes"] == CLASSES
        example = folder / mlmodel["metadata"]["input_example"]
        assert example.suffix == ".png" and example.stat().st_size <= 100_000
        assert sum(p.stat().st_size for p in folder.glob("*example*")) <= 100_000


@pytest.mark.slow
def test_logged_model_loads_and_predicts_in_a_fresh_env_without_alldag(e2e_run, fresh, tmp_path):
    missing = in_fresh(fresh, "import alldag", tmp_path)
    assert missing.returncode != 0 and "No module named 'alldag'" in missing.stderr
    for backbone in BACKBONES:
        images, rows = first_test_images(e2e_run, backbone)
        np.save(tmp_path / "images.npy", images)
        code = (
            f"import mlflow, numpy as np; m = mlflow.pyfunc.load_model('runs:/{run_id(e2e_run, backbone)}/model'); "
            "np.save('proba.npy', m.predict(np.load('images.npy')))"
        )
        proc = in_fresh(fresh, code, tmp_path, MLFLOW_TRACKING_URI=store(e2e_run))
        assert proc.returncode == 0, proc.stderr[-3000:]
        np.testing.assert_allclose(np.load(tmp_path / "proba.npy"), expected(rows), atol=1e-5)


def wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 240) -> None:
    """Wait until url answers; fail with the server's log if the process exits or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_the_dags_probabilities(e2e_run, fresh, tmp_path):
    backbone = BACKBONES[0]
    images, rows = first_test_images(e2e_run, backbone, n=2, png_folder=tmp_path)  # two real images, as PNGs
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (the server writes to it until stopped)
    server = subprocess.Popen(
        [
            str(fresh / "bin/python"),
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            f"runs:/{run_id(e2e_run, backbone)}/model",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=fresh_env.clean_env(fresh, MLFLOW_TRACKING_URI=store(e2e_run)),
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", server, tmp_path / "serve.log")
        answer = post(f"http://127.0.0.1:{port}/invocations", {"inputs": images.tolist()})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    np.testing.assert_allclose(np.array(answer["predictions"]), expected(rows), atol=1e-5)


def test_best_model_is_registered_with_its_verdict_and_not_twice(e2e_run):
    from alldag.registry import CHALLENGER, CHAMPION, register_best, verdict

    client = mlflow.MlflowClient(store(e2e_run))
    comparison = pd.read_csv(e2e_run / f"results/comparison/{TASK}/comparison.tsv", sep="\t")
    cnns = comparison[comparison["model"] != "colour_baseline"]
    best = cnns.sort_values("balanced_accuracy", ascending=False).iloc[0]
    model = client.get_registered_model(f"alldag-{TASK}")
    alias = CHAMPION if verdict(best) == BEATS else CHALLENGER
    assert set(model.aliases) == {alias}
    version = client.get_model_version_by_alias(f"alldag-{TASK}", alias)
    assert version.run_id == run_id(e2e_run, best["model"])
    assert version.tags["backbone"] == best["model"] and version.tags["data_source"] == "synthetic"
    assert float(version.tags["balanced_accuracy"]) == pytest.approx(best["balanced_accuracy"], abs=1e-4)
    assert float(version.tags["balanced_accuracy_ci_low"]) <= float(version.tags["balanced_accuracy_ci_high"])
    assert version.tags[VERDICT_COLUMN] == verdict(best)
    assert (alias == CHAMPION) != version.description.startswith("Not champion")
    # the compare stage again, same best model: no new version
    runs = {m: {0: str(e2e_run / f"results/mlflow/{TASK}/{m}/fold0/tracked.json")} for m in comparison["model"]}
    again = register_best(TASK, comparison, runs)
    assert not again["new"] and len(client.search_model_versions(f"name = 'alldag-{TASK}'")) == 1


def test_search_runs_gives_one_clean_row_per_model_and_fold(e2e_run):
    from alldag.tracking import RUN_PARAMS

    mlflow.set_tracking_uri(store(e2e_run))
    table = mlflow.search_runs(experiment_names=[CFG["study"]])
    children = table[table["tags.mlflow.parentRunId"].notna()]
    keys = sorted(zip(children["params.backbone"], children["params.fold"]))
    assert keys == sorted((m, "0") for m in BACKBONES + list(CFG["custom_models"]) + ["colour_baseline"])
    columns = [f"params.{p}" for p in RUN_PARAMS] + [f"metrics.{m}" for m in FINAL_METRICS]
    assert children[columns].notna().all().all(), children[columns].T
    assert set(children["params.data_source"]) == {"synthetic"} and set(children["params.task"]) == {TASK}
    names = sorted(f"{TASK}/{m}/fold0" for m in BACKBONES + list(CFG["custom_models"]) + ["colour_baseline"])
    assert sorted(children["tags.mlflow.runName"]) == names
    # the report, written before the track jobs, names each child run by the record id the run is found by
    records = json.loads((e2e_run / "results/summary.json").read_text())["mlflow"]["child_records"]
    found = dict(zip(children["tags.alldag.record"], children["tags.mlflow.runName"], strict=True))
    assert all(found[record] == name for name, record in records.items())
    assert set(names) - set(records) == {f"{TASK}/colour_baseline/fold0"}  # the report lists trained models


def test_every_child_run_logs_its_split_as_datasets_and_the_parent_its_provenance(e2e_run):
    client = mlflow.MlflowClient(store(e2e_run))
    experiment = client.get_experiment_by_name(CFG["study"])
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.tags["alldag.data_source"] == "synthetic" and parent.data.tags["alldag.synthetic"] == "true"
    assert parent.data.tags["alldag.data_verified"] == "skipped"
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "data")} == {"data/dataset.json"}
    digests = set()
    for child in (r for r in runs if "mlflow.parentRunId" in r.data.tags):
        inputs = {
            next(t.value for t in i.tags if t.key == "mlflow.data.context"): i for i in child.inputs.dataset_inputs
        }
        external = {EXTERNAL_CONTEXT.format(name=name) for name in CFG.get("external", {})}  # test_tiny_study
        assert set(inputs) == {"train", "val", "test"} | external, child.info.run_name
        digests.add(tuple(inputs[s].dataset.digest for s in ("train", "val", "test")))
        assert inputs["test"].dataset.name == f"{TASK}/fold0/test"
    assert len(digests) == 1  # every model of the fold saw the same images


def test_model_output_is_the_mlflow_artifact_not_a_second_copy(e2e_run):
    for backbone in BACKBONES:
        out = e2e_run / f"results/models/{TASK}/{backbone}/fold0/model.keras"
        assert out.stat().st_nlink == 2
        artifact = model_folder(e2e_run, backbone) / "data/model.keras"
        assert artifact.samefile(out)


def visible_text(dom: str) -> str:
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


@pytest.mark.slow
def test_mlflow_ui_opens_the_study_on_its_training_runs(e2e_run, tmp_path):
    """The README's link: the runs table with the parent run (children are one row each behind its expander)."""
    from browser import rendered_url

    client = mlflow.MlflowClient(store(e2e_run))
    experiment = client.get_experiment_by_name(CFG["study"])
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    port = free_port()
    log = open(tmp_path / "ui.log", "wb")  # noqa: SIM115 (the UI writes to it until stopped)
    ui = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "ui",
            "--backend-store-uri",
            store(e2e_run),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health", ui, tmp_path / "ui.log")
        text = visible_text(
            rendered_url(
                f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}?workflowType=machine_learning"
            )
        )
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)
    assert text.startswith(" Runs - Experiment") or "Runs - Experiment" in text[:200], text[:500]
    assert "Traces 0" not in text and "Token Usage" not in text  # not the GenAI overview
    assert parent.info.run_name in text
    assert f"{len(runs)} matching runs" in text  # the parent and its children
    assert "Expand rows" in text
