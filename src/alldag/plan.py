"""The study's plan: which tasks, models, folds and external sets a config asks for, and the keyed file tables
the rules' input functions hand to their jobs (model -> fold -> path, never parallel lists in expand() order).

Built once from the validated config (study_plan); workflow/rules/common.smk keeps only thin wrappers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

from . import AlldagError
from . import layout as L
from .backbones import check_backbones
from .config import (
    apply_demo,
    booleans_from_cli,
    check_backbone_overrides,
    check_custom_models,
    external_with_defaults,
    found_from,
    train_settings_for,
    validate_config,
)
from .data import check_tasks
from .download import SourceDecision, decide_source, expected_class_counts
from .external import check_external, set_folder
from .names import BASELINE_NAME, METRICS_JSON, PREDICTIONS_TSV
from .split import PATIENT_BLOCK, block_size_for, grouping_for
from .weights import WeightsPlan, weights_plan

# the colour baseline's run-record outputs and the model's per-kind outputs the report reads
_PER_TASK_REPORT = {
    "leakage": L.LEAKAGE_CHECK,
    "augmentation": f"{L.AUGMENT_DIR}/augmentation.json",
    "preview": f"{L.AUGMENT_DIR}/augmentation_preview.png",
    "comparison": L.COMPARISON,
    "paired": f"{L.COMPARISON_DIR}/paired_tests.tsv",
    "comparison_figure": f"{L.COMPARISON_DIR}/comparison.png",
    "grouping_sensitivity": f"{L.COMPARISON_DIR}/grouping_sensitivity.tsv",
    "stain_probes": L.STAIN_PROBE_TABLE,
}


@dataclass(frozen=True)
class StudyPlan:
    """What one configured study computes. `tasks`: task -> classes; `external`: set name -> its config."""

    study: str
    tasks: dict[str, list[str]]
    backbones: list[str]
    custom_models: list[str]
    folds: list[int]
    external: dict[str, dict]
    split_block_size: int | None
    grouping: str
    appearance_threshold: float | None
    tracking: dict = field(default_factory=dict)  # MLflow settings for jobs (alldag.tracking)
    train: dict[str, dict] = field(default_factory=dict)  # model -> `train` with its backbone_overrides merged in
    weights: WeightsPlan | None = None  # the ImageNet weights files the backbones start from
    data_manifest: str = ""  # the real dataset's checksum manifest (download verifies against it)

    @property
    def models(self) -> list[str]:
        """Every trained model: keras.applications backbones, then the users' own architectures."""
        return self.backbones + self.custom_models

    @property
    def preview_image_size(self) -> int:
        """The augmentation preview's image size: the largest any model trains at (backbone_overrides included),
        so the preview shows the augmented images as sharp as a model sees them."""
        return max(settings["image_size"] for settings in self.train.values())

    @property
    def compared_models(self) -> list[str]:
        return self.models + [BASELINE_NAME]

    def baseline_groupings(self) -> dict[str, dict]:
        """The split groupings the colour baseline is also fitted under (split.grouping's choices), by label."""
        blocks = self.split_block_size or PATIENT_BLOCK
        return {
            "appearance": {
                "grouping": "appearance",
                "block_size": None,
                "appearance_threshold": self.appearance_threshold,
            },
            f"blocks of {blocks}": {"grouping": "blocks", "block_size": blocks},
            "none": {"grouping": "none", "block_size": None},
        }

    def final_output(self) -> list[str]:
        """The report, its tables and summary.json, every track job's record, the stress tables."""
        every = product(self.tasks, self.compared_models, self.folds)
        return [
            L.REPORT_OUTPUTS["page"],
            L.REPORT_OUTPUTS["table"],
            L.REPORT_OUTPUTS["headline"],
            *(L.TRACKED_JSON.format(task=t, backbone=m, fold=f) for t, m, f in every),
            *(L.COMPARISON_TRACKED_JSON.format(task=t) for t in self.tasks),
            *(L.STAIN_PROBE_TABLE.format(task=t) for t in self.tasks),
            *(L.EXTERNAL_TABLE.format(external=e, task=t) for e, t in product(self.external, self.tasks)),
        ]

    def per_model_fold(self, pattern: str, task: str) -> dict[str, dict[int, str]]:
        """`pattern` for every compared model and fold of a task, keyed: model -> fold -> path."""
        return {
            model: {fold: pattern.format(task=task, backbone=model, fold=fold) for fold in self.folds}
            for model in self.compared_models
        }

    def fold_paths(self, pattern: str, **wildcards) -> list[str]:
        """`pattern` for every fold, the other wildcards given."""
        return [pattern.format(fold=fold, **wildcards) for fold in self.folds]

    def external_scored(self, external: str, task: str) -> dict[str, str]:
        """Every compared model's predictions on an external set for a task, keyed model -> path."""
        pattern = f"{L.EXTERNAL_MODEL_DIR}/{PREDICTIONS_TSV}"
        return {m: pattern.format(external=external, task=task, backbone=m) for m in self.compared_models}

    def external_track_table(self, task: str, backbone: str, fold: int | str) -> dict[str, dict[str, str]]:
        """One model's fold on every external set, keyed: set name -> its MLflow metrics (`metrics`) and the
        set's audited images (`images`, the run's dataset input); the track job reads them by key."""
        where = dict(task=task, backbone=backbone, fold=fold)
        return {
            name: {
                "metrics": L.EXTERNAL_FOLD_METRICS.format(external=name, **where),
                "images": L.EXTERNAL_IMAGES.format(external=name),
            }
            for name in self.external
        }

    def external_audit_inputs(self, name: str) -> dict[str, str]:
        """The external_audit job's named inputs: the set's folder (the generator's output for a synthetic set)
        and its checksum manifest, where it has one."""
        spec = self.external[name]
        manifest = {"manifest": spec["manifest"]} if spec.get("manifest") else {}
        return {"folder": set_folder(name, spec)} | manifest

    def check_trainers(self, trainers: dict[str, list[str]], rule_files: dict[str, str]) -> None:
        """Raise AlldagError (one line) unless every model has exactly one training rule. `trainers`: model ->
        the rules that produce its model file; `rule_files`: custom model -> its rule file."""
        for name, rules in trainers.items():
            if not rules:
                raise AlldagError(
                    f"custom_models.{name}: no rule trains this model; in {rule_files.get(name)}, set "
                    f'wildcard_constraints: backbone="{name}" (as in workflow/rules/custom/small_cnn.smk)'
                )
            if len(rules) > 1:
                raise AlldagError(
                    f"{name} is trained by rules {' and '.join(rules)}: give each custom rule file its own "
                    f"model name in wildcard_constraints, the one it has in custom_models"
                )

    def tracked_runs(self, task: str) -> list[dict]:
        """The track jobs' run records of a task, keyed: rows of model, fold and path."""
        return [
            {"model": m, "fold": f, "path": L.TRACKED_JSON.format(task=task, backbone=m, fold=f)}
            for m in self.compared_models
            for f in self.folds
        ]

    def report_table(self, model_kinds) -> list[dict]:
        """Everything the report reads, keyed: rows of task, model, fold, kind and path (None where a file is
        not one task's, model's or fold's). `model_kinds`: the per-model kinds the report reads."""

        def row(kind, path, task=None, model=None, fold=None):
            return {"task": task, "model": model, "fold": fold, "kind": kind, "path": path}

        rows = [row("provenance", L.PROVENANCE)]
        rows += [row(kind, L.AUDIT[name]) for kind, name in _AUDIT_KINDS.items()]
        for task in self.tasks:
            rows += [row(kind, path.format(task=task), task) for kind, path in _PER_TASK_REPORT.items()]
            rows += [
                row("external", L.EXTERNAL_TABLE.format(external=name, task=task), task, name) for name in self.external
            ]
            for fold in self.folds:
                rows.append(row("manifest", L.SPLIT_MANIFEST.format(task=task, fold=fold), task, fold=fold))
                rows += [
                    row(kind, L.MODEL_OUTPUTS[kind].format(task=task, backbone=model, fold=fold), task, model, fold)
                    for model in self.models
                    for kind in model_kinds
                ]
                baseline_metrics = f"{L.BASELINE_EVALUATION_DIR}/{METRICS_JSON}".format(task=task, fold=fold)
                rows.append(row("metrics", baseline_metrics, task, BASELINE_NAME, fold))
        return rows

    def report_inputs(self, model_kinds) -> dict[str, list[str]]:
        """The files of report_table, named by kind (the report rule's input)."""
        named: dict[str, list[str]] = {}
        for row in self.report_table(model_kinds):
            named.setdefault(row["kind"], []).append(row["path"])
        return named


_AUDIT_KINDS = {
    "audit": "summary",
    "quarantine": "quarantine",
    "duplicates": "duplicates",
    "images": "images",
    "masks": "masks",
}


def flat_paths(table) -> list[str]:
    """The paths of a keyed table (nested dicts, lists, rows with a 'path'), as a rule's input."""
    if isinstance(table, dict) and "path" in table:
        return [table["path"]]
    if isinstance(table, dict):
        return [p for value in table.values() for p in flat_paths(value)]
    if isinstance(table, list):
        return [p for value in table for p in flat_paths(value)]
    return [table]


def study_plan(config: dict, *, synthetic: bool, demo: bool, source_kind: str, basedir=".") -> StudyPlan:
    """The plan of a validated config (defaults filled, demo merged) for a data source of `source_kind`;
    `basedir`: the workflow folder (the shipped weights checksum table)."""
    train = {model: train_settings_for(config, model) for model in [*config["backbones"], *config["custom_models"]]}
    backbones = {b: train[b] for b in config["backbones"]}
    split, fields = config["split"], config["data"]["synthetic"]["fields_per_patient"]
    threshold = split["appearance_threshold"]
    return StudyPlan(
        study=config["study"],
        tasks={task: list(classes) for task, classes in config["tasks"].items()},
        backbones=list(config["backbones"]),
        custom_models=list(config["custom_models"]),
        folds=list(range(split["folds"])),
        external=dict(config["external"]),
        split_block_size=block_size_for(split["group_blocks"], synthetic=synthetic, fields_per_patient=fields),
        grouping=grouping_for(split["grouping"], synthetic=synthetic, fields_per_patient=fields),
        appearance_threshold=None if threshold == "auto" else threshold,
        tracking={  # the URI is resolved against the working directory at run time
            "uri": config["mlflow"]["tracking_uri"],
            "experiment": config["study"],
            "artifact_root": L.ARTIFACT_ROOT,
            "parent_run_file": L.PARENT_RUN_FILE,
            "tags": {
                "alldag.study": config["study"],
                "alldag.data_source": source_kind,
                "alldag.synthetic": str(synthetic).lower(),
                "alldag.demo": str(demo).lower(),
            },
            "system_metrics": config["mlflow"]["system_metrics"],
        },
        train=train,
        weights=weights_plan(backbones, cache=config["weights_cache"], workflow_dir=basedir),
        data_manifest=str(found_from(config["data"]["manifest"], basedir)),
    )


def check_config(config: dict, schema_path, basedir, counts: dict[str, int] | None) -> None:
    """Cross-key checks the schema cannot express: backbones, their overrides, custom models, task classes
    (against `counts`, images per class, when known) and the external sets (their defaults filled in)."""
    check_backbone_overrides(config, schema_path)
    check_custom_models(config["custom_models"], basedir)
    check_backbones({b: train_settings_for(config, b)["image_size"] for b in config["backbones"]})
    check_tasks(config["tasks"], counts)
    config["external"] = external_with_defaults(config["external"], schema_path)
    check_external(config["external"])


def load_study(config: dict, *, schema_path, basedir) -> tuple[dict, SourceDecision, StudyPlan]:
    """The config validated (defaults filled, command-line booleans read), the data source decided once, the
    demo settings merged when `auto` fell back to synthetic data, and the study's plan. Raises AlldagError
    with one line on any bad key, before any job runs."""
    booleans_from_cli(config, schema_path)
    validate_config(config, schema_path)
    check_config(config, schema_path, basedir, None)
    source = decide_source(data=config["data"], provenance=L.PROVENANCE)
    if source.demo:
        config = apply_demo(config, schema_path)
    check_config(config, schema_path, basedir, expected_class_counts(source, config["data"]))
    synthetic = source.kind == "synthetic"
    plan = study_plan(config, synthetic=synthetic, demo=source.demo, source_kind=source.kind, basedir=basedir)
    return config, source, plan
