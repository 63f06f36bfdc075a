"""Shortcut stress tests: every model (and the colour baseline) scored on its test images under the stain
probes (alldag.stain), and on another lab's images (external validation, alldag.external).

A model that learned the lab's colours falls to chance when the colours change; one that learned the cells
keeps most of its score. Per model the tables give balanced accuracy with a group-aware interval and the
drop from the unprobed (in-domain) score: paired image by image with the verdict machinery where the same
images are scored twice (the probes), an independent group bootstrap where they are not (another lab).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from alldag.baseline import features_of, fit_colour_baseline
from alldag.jobs import ModelKey
from alldag.names import BASELINE_NAME
from alldag.stain import AS_IS, PROBES
from alldag.tables import read_tsv, write_tsv_atomic

log = logging.getLogger(__name__)
Predictor = Callable[[pd.DataFrame], np.ndarray]  # manifest-like rows (path) -> class probabilities (n, k)
PROBE_SUMMARY_COLUMNS = [
    "model",
    "probe",
    "n_test",
    "n_groups",
    "failed",
    "balanced_accuracy",
    "ci_low",
    "ci_high",
    "diff_vs_as_is",
    "diff_ci_low",
    "diff_ci_high",
    "p_two_sided",
]


@dataclass(frozen=True)
class ScoringSettings:
    """What scoring one model on other images needs: which model, the task's classes and the seed the colour
    baseline is fitted with (a trained model reads images at its own input size)."""

    key: ModelKey
    classes: tuple[str, ...]
    seed: int = 0  # the colour baseline's fit (a trained model needs none)

    @classmethod
    def from_params(cls, params, wildcards, fold: int | None = None) -> ScoringSettings:
        """From a rule's params (classes, seed) and wildcards ({backbone}, else the colour baseline;
        {fold}, else `fold`)."""
        key = ModelKey(wildcards.task, wildcards.get("backbone", BASELINE_NAME), int(wildcards.get("fold", fold or 0)))
        return cls(key, tuple(params.classes), params.seed)


@dataclass(frozen=True)
class ProbeScoreOutputs:
    """The stain-probe files of one model and fold (written by its evaluate job, or stain_probe_colour_baseline)."""

    predictions: str  # stain_probes.tsv: one row per test image and probe
    metrics: str  # stain_probes.json: balanced accuracy per probe and its drop (the MLflow metrics)


def predictor(*, model, manifest: pd.DataFrame, settings: ScoringSettings, threads: int = 1) -> Predictor:
    """The fold's model as a function of image rows: the trained Keras model (a loaded one, or its file
    `model`), or (model None) the colour baseline fitted on the manifest's training images as the
    colour_baseline rule fits it."""
    if model is not None:
        from alldag.evaluate import predict_split
        from alldag.models import load_classifier

        network = load_classifier(model) if isinstance(model, (str, Path)) else model
        return lambda rows: predict_split(network, rows)
    train = manifest[manifest["split"] == "train"]
    fitted = fit_colour_baseline(features_of(train["path"], threads), train["y"].to_numpy(), settings.seed)

    def colour_baseline(rows: pd.DataFrame) -> np.ndarray:
        proba = np.zeros((len(rows), len(settings.classes)))
        proba[:, fitted.classes_] = fitted.predict_proba(features_of(rows["path"], threads))
        return proba

    return colour_baseline


def prediction_rows(rows: pd.DataFrame, proba: np.ndarray, classes: list[str], keep: list[str]) -> pd.DataFrame:
    """rows[keep] with predicted class, correct and one p_<class> column per class (predictions.tsv's layout)."""
    predicted = proba.argmax(axis=1)
    return rows[keep].assign(
        predicted=[classes[i] for i in predicted],
        correct=predicted == rows["y"].to_numpy(),
        **{f"p_{c}": proba[:, i] for i, c in enumerate(classes)},
    )


def balanced_accuracy(frame: pd.DataFrame) -> float:
    """Mean recall over the classes present in `frame` (columns y, correct): one class gives its recall."""
    return float(frame.groupby("y")["correct"].mean().mean()) if len(frame) else float("nan")


def score_stain_probes(
    *, model, manifest, probed, settings: ScoringSettings, outputs: ProbeScoreOutputs, threads: int = 1
) -> dict:
    """Score the fold's model (see predictor) on its test images under every probe of `probed` (probed.tsv) and
    write the predictions and the per-probe metrics. Returns those metrics. manifest: path or table."""
    rows = manifest if isinstance(manifest, pd.DataFrame) else read_tsv(manifest)
    test = rows[rows["split"] == "test"].drop(columns="path")
    table = read_tsv(probed).merge(test, on="image_id", validate="many_to_one")
    predict = predictor(model=model, manifest=rows, settings=settings, threads=threads)
    keep = ["image_id", "label", "y", "group", "probe", "failed"]
    frames = []
    for probe in PROBES:
        part = table[table["probe"] == probe].reset_index(drop=True)
        frames.append(prediction_rows(part, predict(part), list(settings.classes), keep))
    scored = pd.concat(frames, ignore_index=True)
    by_probe = {p: balanced_accuracy(f) for p, f in scored.groupby("probe", sort=False)}
    metrics = {f"stain_{p}_balanced_accuracy": v for p, v in by_probe.items()}
    metrics |= {f"stain_{p}_drop": by_probe[AS_IS] - v for p, v in by_probe.items() if p != AS_IS}
    write_tsv_atomic(scored, outputs.predictions)
    Path(outputs.metrics).write_text(json.dumps(metrics, indent=2))
    log.info("%s under the stain probes: %s", settings.key.label, {p: round(v, 3) for p, v in by_probe.items()})
    return metrics


def evaluate_with_probes(*, model, manifest, probed, settings, outputs, probe_outputs: ProbeScoreOutputs) -> dict:
    """The evaluate job: a trained model (file `model`) on its test split (alldag.evaluate.evaluate_model with
    settings and outputs) and on those test images under every probe of `probed` (probed.tsv), from one loaded
    model: one TensorFlow start per model, not two. Returns the test metrics."""
    from alldag.evaluate import evaluate_model
    from alldag.models import load_classifier

    network, rows = load_classifier(model), read_tsv(manifest)
    result = evaluate_model(model=network, manifest=rows, settings=settings, outputs=outputs)
    scoring = ScoringSettings(settings.key, settings.classes)
    score_stain_probes(model=network, manifest=rows, probed=probed, settings=scoring, outputs=probe_outputs)
    return result


def _pooled(paths: dict[int, str]) -> pd.DataFrame:
    frames = [read_tsv(p).assign(fold=int(f)) for f, p in sorted(paths.items())]
    frame = pd.concat(frames, ignore_index=True)
    return frame.assign(correct=frame["correct"].astype(str).str.lower().eq("true"), group=frame["group"].astype(str))


def interval(frame: pd.DataFrame, n_boot: int, seed: int) -> tuple[float, float]:
    """95 % interval of balanced accuracy (mean recall of the classes present: one class gives its recall) on
    whole groups: the group bootstrap, joined with the exact interval where errors or hits sit in few groups
    (alldag.stats.metric_intervals). frame: columns y, correct, group."""
    from alldag.stats import group_bootstrap_weights, metric_intervals

    if frame.empty:
        return float("nan"), float("nan")
    groups = frame["group"].to_numpy(str)
    present, y = np.unique(frame["y"].to_numpy(int), return_inverse=True)
    k = max(len(present), 2)
    # probabilities that say only right or wrong: the interval is of balanced accuracy alone
    decided = np.eye(k)[np.where(frame["correct"].to_numpy(bool), y, (y + 1) % k)]
    weights = group_bootstrap_weights(y, groups, n_boot, seed)
    return metric_intervals(weights, y, decided, groups)["balanced_accuracy"]


def probe_summary_rows(model: str, pooled: pd.DataFrame, n_boot: int, seed: int) -> list[dict]:
    """One row per probe of one model's pooled (over folds) probe predictions: balanced accuracy, its interval,
    and the paired difference to the same images as they are (probe minus as is) with its interval."""
    from alldag.stats import paired_comparison

    key = ["fold", "image_id"]
    as_is = pooled[pooled["probe"] == AS_IS].sort_values(key).reset_index(drop=True)
    rows = []
    for probe in PROBES:
        part = pooled[pooled["probe"] == probe].sort_values(key).reset_index(drop=True)
        low, high = interval(part, n_boot, seed)
        row = {
            "model": model,
            "probe": probe,
            "n_test": len(part),
            "n_groups": int(part["group"].nunique()),
            "failed": int(part["failed"].astype(str).str.lower().eq("true").sum()),
            "balanced_accuracy": balanced_accuracy(part),
            "ci_low": low,
            "ci_high": high,
        }
        if probe != AS_IS:
            pair = paired_comparison(
                part["y"].to_numpy(int), part["group"].to_numpy(), part["correct"], as_is["correct"], seed=seed
            )
            row |= {
                "diff_vs_as_is": pair["diff"],
                "diff_ci_low": pair["ci_low"],
                "diff_ci_high": pair["ci_high"],
                "p_two_sided": pair["p_two_sided"],
            }
        rows.append(row)
    return rows


@dataclass(frozen=True)
class SummarySettings:
    """What a stress summary needs besides its files: the group-bootstrap resamples and the seed."""

    bootstrap_samples: int
    seed: int

    @classmethod
    def from_params(cls, params) -> SummarySettings:
        """From a summary rule's params (bootstrap, seed)."""
        return cls(params.bootstrap, params.seed)


def summarise_stain_probes(*, predictions: dict, settings: SummarySettings, output) -> pd.DataFrame:
    """The task's stain-probe table (PROBE_SUMMARY_COLUMNS): every model's predictions (model -> fold -> path
    of stain_probes.tsv) pooled over folds, one row per model and probe. Written to `output`."""
    rows = []
    for model, paths in predictions.items():
        pooled = _pooled(paths)
        rows += probe_summary_rows(model, pooled, settings.bootstrap_samples, settings.seed)
    table = pd.DataFrame(rows, columns=PROBE_SUMMARY_COLUMNS)
    write_tsv_atomic(table, output)
    return table


def best_cnn(table: pd.DataFrame) -> str | None:
    """The trained model with the highest unprobed (as is) balanced accuracy in a probe or external table."""
    score = "balanced_accuracy" if "probe" in table else "in_domain"
    rows = table[(table["model"] != BASELINE_NAME) & (table.get("probe", AS_IS) == AS_IS)].dropna(subset=[score])
    return None if rows.empty else str(rows.loc[rows[score].idxmax(), "model"])


def _verb(before: float, after: float) -> str:
    return "falls" if after < before else "rises" if after > before else "stays"


def stain_headline(table: pd.DataFrame) -> dict:
    """summary.json's stain-probe entry of a task: per model (the colour baseline and the best CNN by its
    unprobed score) the balanced accuracy as is and under each probe."""
    scores = {m: dict(zip(part["probe"], part["balanced_accuracy"])) for m, part in table.groupby("model", sort=False)}
    best = best_cnn(table)
    return {"colour_baseline": scores.get(BASELINE_NAME), "best_cnn": best, "best_cnn_scores": scores.get(best)}


def stain_sentence(task: str, headline: dict) -> str | None:
    """'Under stain normalisation the colour baseline falls from x to y; the best CNN falls from a to b.' (y, b:
    per normalisation, Macenko / Reinhard; the verb from the lower of them), or None without both rows."""
    from alldag.stain import NORMALISATIONS

    base, best = headline.get("colour_baseline"), headline.get("best_cnn_scores")
    if not base or not best:
        return None
    names = " / ".join(PROBES[p] for p in NORMALISATIONS)

    def moves(scores: dict) -> str:
        after = " / ".join(f"{scores[p]:.3f}" for p in NORMALISATIONS)
        return f"{scores[AS_IS]:.3f} to {after}"

    def verb(scores: dict) -> str:
        return _verb(scores[AS_IS], min(scores[p] for p in NORMALISATIONS))

    return (
        f"{task}: under stain normalisation ({names}) the colour baseline {verb(base)} from {moves(base)}; "
        f"the best CNN ({headline['best_cnn']}) {verb(best)} from {moves(best)}."
    )


def external_headline(table: pd.DataFrame) -> dict:
    """summary.json's entry of one external set and task: per model the fold ensemble's score there, the
    in-domain score on the same classes, the drop and its interval, and which model is the best CNN."""
    rows = table.set_index("model")
    keys = ["metric", "n_images", "external", "ci_low", "ci_high", "in_domain", "drop", "drop_ci_low", "drop_ci_high"]
    return {
        "best_cnn": best_cnn(table),
        "models": {m: {k: rows.loc[m, k] for k in keys if k in rows} for m in rows.index},
    }


def external_sentence(name: str, task: str, headline: dict) -> str | None:
    """One sentence of the colour baseline and the best CNN on another lab's images, against in-domain."""
    models, best = headline.get("models") or {}, headline.get("best_cnn")
    if BASELINE_NAME not in models or best not in models:
        return None
    base, cnn = models[BASELINE_NAME], models[best]
    metric = str(base["metric"]).replace("_", " ")
    return (
        f"{task} on another lab's images ({name}, {int(base['n_images'])} images, {metric}): the colour baseline "
        f"{_verb(base['in_domain'], base['external'])} from {base['in_domain']:.3f} in-domain to "
        f"{base['external']:.3f}; the best CNN ({best}) {_verb(cnn['in_domain'], cnn['external'])} from "
        f"{cnn['in_domain']:.3f} to {cnn['external']:.3f}."
    )
