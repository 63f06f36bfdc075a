# Config validation and the input functions; what they compute lives in alldag.plan (the study's plan and its
# keyed file tables) and alldag.layout (every path pattern, spelled once).
import os
import re
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
# envs/*.post-deploy.sh install the alldag package from here into each conda env (--sdm conda).
os.environ.update(ALLDAG_REPO=str(Path(workflow.basedir)))

from alldag import AlldagError
from alldag.config import found_from
from alldag.external import synthetic_folder
from alldag.jobs import MODEL_OUTPUT_KINDS
from alldag.layout import *
from alldag.names import *
from alldag.plan import flat_paths, load_study

SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"


def fail(message):
    """Stop before any job runs, with one line that says what to fix."""
    print(f"alldag: error: {message}", file=sys.stderr)
    sys.exit(1)


try:
    config, SOURCE, PLAN = load_study(
        config, schema_path=SCHEMA, basedir=workflow.basedir
    )
except AlldagError as exc:
    fail(exc)
if SOURCE.demo:
    print(f"WARNING: {SOURCE.reason}.", file=sys.stderr)


wildcard_constraints:
    task="|".join(PLAN.tasks),
    backbone="|".join(PLAN.models),
    fold=r"\d+",
    # (?!) matches nothing: no backbone starts from ImageNet weights
    weights_file="|".join(map(re.escape, PLAN.weights.by_file)) or "(?!)",
    external="|".join(map(re.escape, PLAN.external)) or "(?!)",


def workflow_script(name):
    """A script of workflow/scripts by absolute path: a rule that inherits one of ours (`use rule train
    as ...`) resolves relative paths from its own file's folder, which may be anywhere.
    """
    return str(Path(workflow.basedir) / "workflow" / "scripts" / name)


def figure(path, caption, category, subcategory, **labels):
    """`path` marked for `snakemake --report`, with its caption file, place on the page and labels."""
    caption = str(Path(workflow.basedir) / "workflow" / "report" / caption)
    return report(
        path, caption, category=category, subcategory=subcategory, labels=labels
    )


def model_figure(path, caption, category, name, model="{backbone}"):
    """A figure of one (task, model, fold), listed under its model."""
    where = dict(task="{task}", backbone=model, fold="{fold}")
    return figure(path, caption, category, model, **where, figure=name)


def source_params():
    """The data-source decision, whole (alldag.download.SourceDecision's fields), for the download job."""
    return asdict(SOURCE)


def task_classes(wildcards):
    return PLAN.tasks[wildcards.task]


def fold_manifests(wildcards):
    return PLAN.fold_paths(SPLIT_MANIFEST, task=wildcards.task)


def comparison_prediction_table(wildcards):
    """Test predictions of every compared model and fold of a task, keyed: model -> fold -> path."""
    return PLAN.per_model_fold(PREDICTIONS, wildcards.task)


def stain_probe_prediction_table(wildcards):
    """Stain-probe predictions of every compared model and fold of a task, keyed: model -> fold -> path."""
    return PLAN.per_model_fold(STAIN_PROBE_PREDICTIONS, wildcards.task)


def comparison_tracked_table(wildcards):
    """The track jobs' run records of a task, keyed: rows of model, fold and path."""
    return PLAN.tracked_runs(wildcards.task)


def external_scored_table(wildcards):
    """Every compared model's predictions on an external set for a task, keyed: model -> path."""
    return PLAN.external_scored(wildcards.external, wildcards.task)


def flat_of(table):
    """An input function: the paths of the keyed table an input function `table` returns."""
    return lambda wildcards: flat_paths(table(wildcards))


def baseline_fold_outputs(kind):
    """An input function: the colour baseline's `kind` output of every fold of the task."""
    return lambda wildcards: PLAN.fold_paths(
        getattr(rules.colour_baseline.output, kind), task=wildcards.task
    )


def external_spec(wildcards):
    """The external set's config (its map label folder -> class under 'classes')."""
    return PLAN.external[wildcards.external]


def external_classes(wildcards):
    return external_spec(wildcards)["classes"]


def external_audit_inputs(wildcards):
    return PLAN.external_audit_inputs(wildcards.external)


def external_models(wildcards):
    """What an external_validation job scores, keyed: the fold models (none for the colour baseline,
    fitted from the manifests), the fold manifests and the set's audited images."""
    task, model = wildcards.task, wildcards.backbone
    trained = model != BASELINE_NAME
    return {
        "models": (
            PLAN.fold_paths(rules.train.output.model, task=task, backbone=model)
            if trained
            else []
        ),
        "manifests": PLAN.fold_paths(SPLIT_MANIFEST, task=task),
        "images": fill(rules.external_audit.output.images, external=wildcards.external),
    }


def track_inputs(wildcards):
    """The files a model's track job logs, by name: every model's run record, split, evaluation and stress
    scores; a trained model's (not the colour baseline's) training and explanation files too.
    """
    baseline = wildcards.backbone == BASELINE_NAME
    evaluated = rules.colour_baseline.output if baseline else rules.evaluate.output
    probed = rules.stain_probe_colour_baseline if baseline else rules.evaluate
    paths = {
        "run": rules.colour_baseline.output.run if baseline else rules.train.output.run,
        "manifest": SPLIT_MANIFEST,
        "stain_probes": probed.output.stain_metrics,
        **{
            k: getattr(evaluated, k)
            for k in ("metrics", "predictions", "confusion", "roc", "reliability")
        },
    }
    if not baseline:
        train, explain = rules.train.output, rules.explain.output
        paths |= {k: getattr(train, k) for k in ("model", "history", "curves")}
        paths |= {
            k: getattr(explain, k) for k in ("gallery", "explanations", "agreement")
        }
        paths |= {
            "augmentation": rules.augment.output.spec,
            "explanation_summary": explain.explanation_summary,
        }
    where = dict(task=wildcards.task, backbone=wildcards.backbone, fold=wildcards.fold)
    named = {name: fill(path, **where) for name, path in paths.items()}
    return named | {"external": flat_paths(PLAN.external_track_table(**where))}


def external_track_table(wildcards):
    """Every external set's metrics and images for one model's fold (see StudyPlan.external_track_table)."""
    return PLAN.external_track_table(wildcards.task, wildcards.backbone, wildcards.fold)


def backbone_train_settings(wildcards):
    """`train` settings with the backbone's overrides merged in."""
    return PLAN.train[wildcards.backbone]


def train_env():
    """The training rules' conda env: with TensorFlow's CUDA libraries when train.require_gpu is set."""
    name = "train-gpu.yaml" if config["train"]["require_gpu"] else "train.yaml"
    return str(Path(workflow.basedir) / "envs" / name)


def pretrained_weights(wildcards):
    """The cached ImageNet weights file the backbone starts from, as the train rule's named input."""
    return PLAN.weights.train_input(wildcards.backbone)


def pretrained_entry(wildcards):
    return PLAN.weights.entry_of(wildcards.backbone)


def weights_entry(wildcards):
    return PLAN.weights.fetch_entry(wildcards.weights_file)


def check_weights_before_jobs():
    """Stop before any job, with one line saying which file to put where, when a weights file the run must
    fetch is not cached and its server cannot be reached (offline, or behind a proxy not set).
    """
    jobs = workflow.dag.needrun_jobs()
    needed = [j.wildcards.weights_file for j in jobs if j.rule.name == "fetch_weights"]
    try:
        PLAN.weights.check_fetchable(needed)
    except AlldagError as exc:
        fail(exc)


def check_model_rules():
    """Fail with one line unless every model has exactly one training rule (after the custom rules load)."""
    model = lambda name: fill(
        rules.train.output.model, task=next(iter(PLAN.tasks)), backbone=name, fold=0
    )
    trainers = {
        name: [r.name for r in workflow.rules if r.is_producer(model(name))]
        for name in PLAN.models
    }
    try:
        PLAN.check_trainers(trainers, config["custom_models"])
    except AlldagError as exc:
        fail(exc)


def custom_rule_files():
    """The rule files of config custom_models, as absolute paths (alldag.config.found_from)."""
    files = config["custom_models"].values()
    return [str(found_from(path, workflow.basedir).resolve()) for path in files]


def report_table():
    """Everything the report reads, keyed: rows of task, model, fold, kind and path (the report rule's
    input and params)."""
    return PLAN.report_table(MODEL_OUTPUT_KINDS)


def report_inputs(wildcards=None):
    """The files of report_table, named by kind (the report rule's input)."""
    return PLAN.report_inputs(MODEL_OUTPUT_KINDS)
