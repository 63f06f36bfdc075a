"""bench/bench_workflow.py's readings: job-seconds per rule from a Snakemake log, and disk use of results/."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_workflow import disk_usage, job_seconds  # noqa: E402

# Snakemake 9's log: a stamp before each job's block and before each "Finished jobid"; two jobs overlap.
LOG = """
[Sat Dec  5 05:19:32 2026]
localrule download:
    output: results/data/images.tsv
    jobid: 2
    reason: Missing output files
[Sat Dec  5 05:19:33 2026]
rule train:
    jobid: 7
    wildcards: task=benign_vs_pro, backbone=VGG16, fold=0
[Sat Dec  5 05:19:37 2026]
Finished jobid: 2 (Rule: download)
1 of 3 steps (33%) done
[Sat Dec  5 05:19:38 2026]
rule train:
    jobid: 8
[Sat Dec  5 05:21:03 2026]
Finished jobid: 7 (Rule: train)
[Sat Dec  5 05:22:08 2026]
Finished jobid: 8 (Rule: train)
"""


def test_job_seconds_sums_each_rules_jobs_from_start_to_finish():
    seconds, jobs = job_seconds(LOG)
    assert seconds == {"download": 5.0, "train": 90.0 + 150.0}
    assert jobs == {"download": 1, "train": 2}


def test_job_seconds_skips_jobs_that_never_finished():
    seconds, jobs = job_seconds(LOG.split("[Sat Dec  5 05:22:08 2026]")[0])
    assert seconds["train"] == 90.0 and jobs["train"] == 1


def test_disk_usage_counts_a_hard_linked_model_once(tmp_path):
    (tmp_path / "mlartifacts").mkdir()
    model = tmp_path / "mlartifacts" / "model.keras"
    model.write_bytes(b"w" * 1000)
    os.link(model, tmp_path / "model.keras")
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "latest").symlink_to(model)
    assert disk_usage(tmp_path) == (1002, 1000)
