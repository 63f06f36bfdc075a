"""A new architecture as one `use rule train as ... with:` file, read by the real Snakefile from a folder of
its own (a dry run: what each training rule hands workflow/scripts/train.py, no job runs)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from workflow_helpers import REPO, error_lines, snakemake, write_config

EXAMPLE = REPO / "workflow/rules/custom/small_cnn.smk"
# Appended to a copy of the example: prints, while Snakemake reads the workflow, what the two training
# rules resolve for one model each (the `train` param as a job gets it, the builder, the script, captions).
PROBE = """

import json
from types import SimpleNamespace


def _resolved(rule_name, backbone):
    job_rule = workflow.get_rule(rule_name)
    train = job_rule.params.train
    wildcards = SimpleNamespace(task="benign_vs_pro", backbone=backbone, fold="0")
    return {
        "train": train(wildcards) if callable(train) else train,
        "architecture": getattr(job_rule.params, "architecture", None),
        "script": str(Path(str(job_rule.basedir), job_rule.script)),
        "captions": [
            o.flags["report"].caption.get_path_or_uri(secret_free=True) for o in job_rule.output if "report" in o.flags
        ],
    }


probe = {"train_small_cnn": _resolved("train_small_cnn", "SmallCNN"), "train": _resolved("train", "MobileNet")}
print("PROBE", json.dumps(probe))
"""


def test_a_custom_architecture_gets_its_overrides_the_train_script_and_the_train_outputs(tmp_path):
    rule_file = tmp_path / "my_rules" / "small_cnn.smk"  # outside the repository, as a user's would be
    rule_file.parent.mkdir()
    rule_file.write_text(EXAMPLE.read_text() + PROBE)
    config = yaml.safe_load((REPO / "tests/configs/micro.yaml").read_text())
    config["custom_models"] = {"SmallCNN": str(rule_file)}
    config["backbone_overrides"] = {"SmallCNN": {"epochs": 2, "learning_rate": 0.01}}
    proc = snakemake(tmp_path, "-n", config=write_config(tmp_path, config))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    probe = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("PROBE "))[6:])
    custom, backbone = probe["train_small_cnn"], probe["train"]
    assert backbone["train"]["epochs"] == config["train"]["epochs"] == 4  # the override is SmallCNN's only
    assert custom["train"] == {**backbone["train"], "epochs": 2, "learning_rate": 0.01}
    assert custom["architecture"] == "alldag.architectures:small_cnn" and backbone["architecture"] is None
    assert custom["script"] == backbone["script"] == str(REPO / "workflow/scripts/train.py")
    assert custom["captions"] == backbone["captions"] == [str(REPO / "workflow/report/training_curves.rst")]

    jobs = _planned_jobs(proc.stdout)
    model = "results/models/benign_vs_pro/SmallCNN/fold0"
    assert jobs["train_small_cnn"] == [
        {
            "output": f"{model}/model.keras, {model}/history.tsv, {model}/training_curves.png, {model}/mlflow_run.json",
            "log": "logs/train/benign_vs_pro/SmallCNN/fold0.log",
            "wildcards": "task=benign_vs_pro, backbone=SmallCNN, fold=0",
        }
    ]
    assert [job["wildcards"] for job in jobs["train"]] == ["task=benign_vs_pro, backbone=MobileNet, fold=0"]
    assert {"evaluate", "explain"} <= set(jobs) and len(jobs["evaluate"]) == len(jobs["explain"]) == 2


def _planned_jobs(dry_run_stdout: str) -> dict[str, list[dict[str, str]]]:
    """{rule: [{output, log, wildcards}]} of the jobs a dry run lists."""
    jobs: dict[str, list[dict[str, str]]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_stdout):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if head:
            fields = dict(re.findall(r"^    (output|log|wildcards): (.*)$", block, re.M))
            jobs.setdefault(head.group(1), []).append(fields)
    return jobs


@pytest.mark.parametrize(
    "constraint,error",
    [
        (
            "SmallCNN",
            'custom_models.MyNet: no rule trains this model; in {file}, set wildcard_constraints: backbone="MyNet"',
        ),
        ("MobileNet", "MobileNet is trained by rules train and train_my_net: give each custom rule file its own"),
    ],
)
def test_a_rule_file_that_trains_no_model_or_a_taken_one_fails_with_one_line(tmp_path, constraint, error):
    """A copy of the example whose wildcard_constraints were not changed, or name a backbone."""
    rule_file = tmp_path / "my_net.smk"
    rule_file.write_text(
        EXAMPLE.read_text().replace("train_small_cnn", "train_my_net").replace('"SmallCNN"', f'"{constraint}"')
    )
    config = yaml.safe_load((REPO / "tests/configs/micro.yaml").read_text())
    config["custom_models"] = {"MyNet": str(rule_file)}
    proc = snakemake(tmp_path, "-n", config=write_config(tmp_path, config))
    assert proc.returncode != 0
    (line,) = error_lines(proc)
    assert line.startswith("alldag: error: " + error.format(file=rule_file)), line
