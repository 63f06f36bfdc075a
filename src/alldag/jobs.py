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
