"""What a rule job hands the library: which model it is about (task, backbone, fold) and its named files."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ModelKey:
    """One trained (or fitted) model: its task, backbone (or the colour baseline) and cross-validation fold."""

    task: str
    backbone: str
    fold: int

    @property
    def label(self) -> str:
        """The model as logs, figure titles and MLflow run names show it: 'task/backbone/foldN'."""
        return f"{self.task}/{self.backbone}/fold{self.fold}"

    @classmethod
    def from_wildcards(cls, wildcards, backbone: str | None = None) -> ModelKey:
        """From a job's {task}, {backbone} and {fold} wildcards; `backbone` for rules without that wildcard."""
        return cls(wildcards.task, backbone or wildcards.backbone, int(wildcards.fold))


def named_files(cls, named, **renamed):
    """A files dataclass (e.g. EvaluationOutputs) from a rule's named inputs or outputs, field by field;
    `renamed` maps a field to the rule's name for it where they differ."""
    return cls(**{f.name: str(named[renamed.get(f.name, f.name)]) for f in fields(cls)})


@dataclass(frozen=True)
class ModelResult:
    """Paths of one (task, backbone, fold) model's outputs, as the report reads them."""

    task: str
    backbone: str
    fold: int
    metrics: str  # metrics.json
    history: str  # history.tsv
    curves: str  # training_curves.png
    confusion: str  # confusion_matrix.png
    roc: str  # roc_curve.png
    reliability: str  # reliability.png
    explanation: str  # explanation_gallery.png
    explanation_summary: str  # explanation_summary.tsv
    run: str  # mlflow_run.json
    explanations: str = ""  # per image and method (explanations.tsv): the "where do the models look" verdict
    agreement: str = ""  # per image and method pair (agreement.tsv)


# The report's per-model output kinds: ModelResult's path fields (alldag.layout.MODEL_OUTPUTS gives each a path)
MODEL_OUTPUT_KINDS = tuple(f.name for f in fields(ModelResult) if f.name not in ("task", "backbone", "fold"))
