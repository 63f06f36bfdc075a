"""With --keep-going, a model whose training fails still gets a report: the DAG runs every other model and the
report marks the failed one's results as missing (a custom architecture rule whose builder does not exist).

The custom-architecture rule's normal path, reproducibility and a kill mid-training are checked on the
session's tiny study (e2e/test_tiny_study.py, e2e/test_dag_killed_and_restarted.py).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from workflow_helpers import REPO, snakemake, write_config

pytestmark = pytest.mark.e2e
CFG = yaml.safe_load((REPO / "tests/configs/micro.yaml").read_text())
TASK = "benign_vs_pro"


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
