"""Training the users can trust, through the real DAG: a new architecture added as one rule file,
identical metrics from two runs with one seed, and a training job killed mid-run that resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import mlflow
import pandas as pd
import pytest
import yaml

from workflow_helpers import REPO, SNAKEMAKE, snakemake, workflow_env, write_config

pytestmark = pytest.mark.e2e
CFG = yaml.safe_load((REPO / "tests/configs/micro.yaml").read_text())
CFG["custom_models"] = {"SmallCNN": str(REPO / "workflow/rules/custom/small_cnn.smk")}
TASK = "benign_vs_pro"
MODELS = ["MobileNet", "SmallCNN"]
# The full runs train the custom model for fewer epochs than the backbone: its override must reach its job.
FULL_CFG = {**CFG, "backbone_overrides": {"SmallCNN": {"epochs": 3}}}
EPOCHS = {"MobileNet": CFG["train"]["epochs"], "SmallCNN": 3}


def model_dir(workdir, model, kind="models"):
    return workdir / f"results/{kind}/{TASK}/{model}/fold0"


def children(workdir):
    client = mlflow.MlflowClient(f"sqlite:///{workdir / 'results/mlflow.db'}")
    experiment = client.get_experiment_by_name(CFG["study"])
    runs = client.search_runs([experiment.experiment_id])
    return client, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The whole DAG with MobileNet and the custom SmallCNN, two jobs at a time (parallel SQLite writers)."""
    workdir = tmp_path_factory.mktemp("custom")
    proc = snakemake(workdir, "--cores", "2", config=write_config(workdir, FULL_CFG))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return workdir


def test_a_new_architecture_rule_is_trained_evaluated_explained_and_reported(full_run):
    table = pd.read_csv(full_run / "results/results_table.tsv", sep="\t")
    assert set(table["backbone"]) >= set(MODELS)
    epochs = table.set_index("backbone")["epochs"]
    assert {model: epochs[model] for model in MODELS} == EPOCHS  # SmallCNN's backbone_overrides applied
    small = table[table["backbone"] == "SmallCNN"].iloc[0]
    assert 0 <= small["accuracy"] <= 1
    explained = pd.read_csv(model_dir(full_run, "SmallCNN", "explanations") / "explanations.tsv", sep="\t")
    assert len(explained["image_id"].unique()) == 2 * CFG["explain"]["images_per_class"]
    assert {"gradcam", "gradcam_pp", "lime"} <= set(explained["method"])
    comparison = pd.read_csv(full_run / f"results/comparison/{TASK}/comparison.tsv", sep="\t")
    assert "SmallCNN" in set(comparison.iloc[:, 0]) | set(comparison.get("model", []))
    assert "SmallCNN" in (full_run / "results/report.html").read_text()


def test_every_training_job_is_a_tracked_child_run_with_provenance(full_run):
    client, runs = children(full_run)
    trained = {r.data.tags["backbone"]: r for r in runs if r.data.tags["backbone"] in MODELS}
    assert set(trained) == set(MODELS)
    for run in trained.values():
        params = run.data.params
        assert len(params["git_commit"]) >= 40 or params["git_commit"] == "unknown"
        assert {"tensorflow", "keras", "numpy", "mlflow", "seed", "precision"} <= set(params)
        assert params["precision"] == "float32"  # no GPU here: mixed precision stays off under auto
        assert params["devices"] == "none" and params["gpus"] == "0"
    for model in MODELS:
        log = (full_run / f"logs/train/{TASK}/{model}/fold0.log").read_text()
        assert "(TensorFlow sees: none)" in log
        steps = [m.step for m in client.get_metric_history(trained[model].info.run_id, "loss")]
        assert sorted(steps) == list(range(EPOCHS[model]))
    assert not any(model_dir(full_run, m).joinpath("checkpoint").exists() for m in MODELS)  # cleaned up


def test_two_runs_with_one_seed_give_identical_test_metrics(full_run, tmp_path):
    targets = [str(model_dir(tmp_path, m, "evaluation").relative_to(tmp_path) / "predictions.tsv") for m in MODELS]
    proc = snakemake(tmp_path, "--cores", "2", *targets, config=write_config(tmp_path, FULL_CFG))
    assert proc.returncode == 0, proc.stderr[-4000:]
    for model in MODELS:
        first = json.loads((model_dir(full_run, model, "evaluation") / "metrics.json").read_text())
        second = json.loads((model_dir(tmp_path, model, "evaluation") / "metrics.json").read_text())
        assert first == second
        pd.testing.assert_frame_equal(
            pd.read_csv(model_dir(full_run, model, "evaluation") / "predictions.tsv", sep="\t"),
            pd.read_csv(model_dir(tmp_path, model, "evaluation") / "predictions.tsv", sep="\t"),
        )


def test_a_killed_training_job_resumes_from_its_last_epoch(tmp_path):
    cfg = {**CFG, "custom_models": {}, "train": {**CFG["train"], "epochs": 12}}
    config = write_config(tmp_path, cfg)
    target = str(model_dir(tmp_path, "MobileNet").relative_to(tmp_path) / "model.keras")
    state = model_dir(tmp_path, "MobileNet") / "checkpoint/state.json"
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(tmp_path),
        "--configfile",
        str(config),
        "--cores",
        "1",
        target,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=workflow_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epoch"] >= 3:
            break
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job: snakemake and the training process
    proc.wait()
    killed_at = json.loads(state.read_text())["epoch"]
    assert 3 <= killed_at < 12 and not (tmp_path / target).exists(), "the job finished before it was killed"

    assert snakemake(tmp_path, "--unlock", config=config).returncode == 0
    rerun = snakemake(tmp_path, "--cores", "1", "--rerun-incomplete", target, config=config)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    log = (tmp_path / f"logs/train/{TASK}/MobileNet/fold0.log").read_text()
    assert f"resuming from the checkpoint after epoch {killed_at}" in log
    history = pd.read_csv(model_dir(tmp_path, "MobileNet") / "history.tsv", sep="\t")
    assert list(history["epoch"]) == list(range(1, 13))
    client, runs = children(tmp_path)
    assert len(runs) == 1  # the restarted job logged into the same run
    steps = sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "loss"))
    assert steps == list(range(12))  # every epoch once
    assert runs[0].info.status == "FINISHED"
    tags = runs[0].data.tags  # re-parented to the restart's parent run, the first one remembered
    assert tags["mlflow.parentRunId"] == json.loads((tmp_path / "results/mlflow/parent_run.json").read_text())["run_id"]
    assert len(tags["alldag.previous_parent_run_ids"].split(",")) == 1
    assert tags["alldag.previous_parent_run_ids"] != tags["mlflow.parentRunId"]


def test_keep_going_after_a_failed_model_writes_a_report_that_marks_it_missing(tmp_path):
    from browser import body_attribute, rendered_dom

    example = (REPO / "workflow/rules/custom/small_cnn.smk").read_text()
    broken = (
        example.replace("SmallCNN", "BrokenNet")
        .replace("train_small_cnn", "train_broken_net")
        .replace("alldag.architectures:small_cnn", "alldag.architectures:no_such_builder")
    )  # the copy lives in another folder and works there as it is: the parent's paths are absolute
    (tmp_path / "broken_net.smk").write_text(broken)
    cfg = {
        **CFG,
        "custom_models": {"BrokenNet": str(tmp_path / "broken_net.smk")},
        "train": {**CFG["train"], "epochs": 2},
    }
    proc = snakemake(tmp_path, "--cores", "2", "--keep-going", config=write_config(tmp_path, cfg))
    assert proc.returncode != 0
    assert "alldag: wrote a partial report marking the missing results" in proc.stderr
    assert "could not be loaded" in (tmp_path / f"logs/train/{TASK}/BrokenNet/fold0.log").read_text()
    summary = json.loads((tmp_path / "results/summary.json").read_text())
    assert summary["missing"] and all("BrokenNet" in m or "comparison" in m for m in summary["missing"])
    page = (tmp_path / "results/report.html").read_text()
    assert 'id="missing-banner"' in page and "BrokenNet" in page
    assert 'alt="benign_vs_pro / MobileNet: ROC" src="data:image/png;base64,' in page  # what ran is shown
    table = pd.read_csv(tmp_path / "results/results_table.tsv", sep="\t").set_index("backbone")
    assert table.loc["MobileNet", "status"] == "ok" and table.loc["BrokenNet", "status"].startswith("MISSING")
    assert body_attribute(rendered_dom(tmp_path / "results/report.html"), "data-broken-images") == "0"
