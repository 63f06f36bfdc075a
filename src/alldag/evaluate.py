"""The `evaluate` stage: test-split metrics, calibration, confusion matrix and ROC curves for one model."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from alldag.figures import confusion_matrix_figure, reliability_figure, roc_figure, save
from alldag.jobs import ModelKey
from alldag.metrics import METRICS
from alldag.stats import expected_calibration_error, reliability
from alldag.tables import read_tsv, write_tsv_atomic

log = logging.getLogger(__name__)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class EvaluationSettings:
    """What an evaluation needs besides its files: the model and the task's classes (the input size is the
    trained model's own)."""

    key: ModelKey
    classes: tuple[str, ...]

    @classmethod
    def from_params(cls, params, wildcards) -> EvaluationSettings:
        """From the evaluate rule's params (classes) and wildcards."""
        return cls(ModelKey.from_wildcards(wildcards), tuple(params.classes))


@dataclass(frozen=True)
class EvaluationOutputs:
    """The files an evaluation writes (paths)."""

    metrics: str  # metrics.json
    predictions: str  # predictions.tsv: one row per test image
    confusion: str  # confusion_matrix.png
    roc: str  # roc_curve.png
    reliability: str  # reliability.png


def accuracy(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Share of images whose top class is the true one (the registry's accuracy)."""
    return skm.accuracy_score(y_true, proba.argmax(axis=1))


def balanced_accuracy(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean per-class recall of the top class (the registry's balanced accuracy)."""
    return skm.balanced_accuracy_score(y_true, proba.argmax(axis=1))


def macro_f1(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean F1 over the k classes of proba (0 for a class never predicted nor present)."""
    k = proba.shape[1]
    return skm.f1_score(y_true, proba.argmax(axis=1), average="macro", labels=list(range(k)), zero_division=0)


def roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """The positive class's ROC-AUC for k == 2, the macro one-vs-rest AUC otherwise; NaN when the test set
    lacks a class."""
    k = proba.shape[1]
    if len(np.unique(y_true)) < k:
        return float("nan")
    if k == 2:
        return skm.roc_auc_score(y_true, proba[:, 1])
    return skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=list(range(k)))


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict:
    """Every registered metric (alldag.metrics: accuracy, balanced accuracy, macro-F1, ROC-AUC, ...) of class
    probabilities, in registry order.

    y_true: int labels (n,); proba: (n, k) probabilities.
    """
    return {name: metric.value(y_true, proba) for name, metric in METRICS.items()}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """k x k confusion counts, rows true class, columns predicted."""
    return skm.confusion_matrix(y_true, y_pred, labels=list(range(k)))


def roc_curves(y_true: np.ndarray, proba: np.ndarray, class_names: list[str]) -> dict:
    """One-vs-rest ROC curve per class present in y_true: name -> (fpr, tpr, auc)."""
    curves = {}
    for i, name in enumerate(class_names):
        positives = y_true == i
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = skm.roc_curve(positives, proba[:, i])
        curves[name] = (fpr, tpr, skm.auc(fpr, tpr))
    return curves


def predict_split(model, rows: pd.DataFrame, batch_size: int = 32) -> np.ndarray:
    """Class probabilities (n, k) for manifest rows, in row order, at the model's own input size."""
    from alldag.inputs import make_dataset
    from alldag.models import input_size

    return model.predict(make_dataset(rows, input_size(model), batch_size), verbose=0)


def per_class_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Precision, recall, F1 and support of each class."""
    p, r, f, n = skm.precision_recall_fscore_support(y_true, y_pred, labels=list(range(len(classes))), zero_division=0)
    return {
        c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(n[i])}
        for i, c in enumerate(classes)
    }


def write_evaluation(
    test: pd.DataFrame, proba: np.ndarray, *, settings: EvaluationSettings, outputs: EvaluationOutputs
) -> dict:
    """Score test-set probabilities and write every evaluation output (files only: the track rule logs them).

    test: manifest rows of the test split (image_id, label, y), in the order of proba's rows.
    """
    classes, label = list(settings.classes), settings.key.label
    y_true = test["y"].to_numpy()
    y_pred = proba.argmax(axis=1)
    result = classification_metrics(y_true, proba)
    matrix = confusion(y_true, y_pred, len(classes))
    bins = reliability(y_true, proba)
    result.update(
        ece=expected_calibration_error(y_true, proba),
        n_test=int(len(test)),
        chance_accuracy=float(1.0 / len(classes)),
        majority_accuracy=float(np.bincount(y_true, minlength=len(classes)).max() / len(test)),
        confusion_matrix=matrix.tolist(),
        classes=list(classes),
        per_class=per_class_metrics(y_true, y_pred, list(classes)),
        reliability=bins,
    )
    keep = ["image_id", "label", "y"] + (["group"] if "group" in test else [])  # group: for the group bootstrap
    table = test[keep].assign(
        predicted=[classes[i] for i in y_pred],
        correct=y_pred == y_true,
        **{f"p_{c}": proba[:, i] for i, c in enumerate(classes)},
    )
    write_tsv_atomic(table, outputs.predictions)
    save(confusion_matrix_figure(matrix, list(classes), f"{label}: test confusion matrix"), outputs.confusion)
    save(roc_figure(roc_curves(y_true, proba, list(classes)), f"{label}: test ROC"), outputs.roc)
    save(reliability_figure(bins, result["ece"], f"{label}: calibration"), outputs.reliability)
    Path(outputs.metrics).write_text(json.dumps(result, indent=2))
    log.info("%s test metrics: %s", label, {k: round(v, 4) for k, v in result.items() if isinstance(v, float)})
    return result


def evaluate_model(*, model, manifest, settings: EvaluationSettings, outputs: EvaluationOutputs) -> dict:
    """Evaluate a trained Keras model (loaded, or its file `model`) on the test split of `manifest` (path or
    table; see write_evaluation)."""
    from alldag.models import load_classifier

    rows = manifest if isinstance(manifest, pd.DataFrame) else read_tsv(manifest)
    test = rows[rows["split"] == "test"].reset_index(drop=True)
    network = load_classifier(model) if isinstance(model, (str, Path)) else model
    return write_evaluation(test, predict_split(network, test), settings=settings, outputs=outputs)
