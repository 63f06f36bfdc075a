"""The `compare` stage: every model of a task (CNNs and the colour baseline) side by side, with spread,
bootstrap intervals, paired tests and the study's reported numbers."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from alldag.baseline import BASELINE_NAME
from alldag.data import read_tsv, write_tsv_atomic
from alldag.evaluate import classification_metrics
from alldag.figures import comparison_figure, save
from alldag.progress import track
from alldag.stats import bootstrap_cis, holm, intervals_overlap, mcnemar

log = logging.getLogger(__name__)
METRICS = ["accuracy", "balanced_accuracy", "macro_f1", "roc_auc"]
# Reported by the 2021 study (binary per backbone; four-class about 83 % overall): reported, not reproduced.
STUDY_ACCURACY = {("benign_vs_pro", "VGG16"): 0.985, ("benign_vs_pro", "VGG19"): 0.971,
                  ("benign_vs_pro", "Xception"): 0.938, ("benign_vs_pro", "MobileNet"): 0.382,
                  **{("four_class", b): 0.83 for b in ("VGG16", "VGG19", "Xception", "MobileNet")}}
FLAG_METRIC = "balanced_accuracy"


def probabilities(predictions: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return predictions[[f"p_{c}" for c in classes]].to_numpy(float)


def model_summary(name: str, task: str, folds: list[pd.DataFrame], classes: list[str], n_boot: int,
                  seed: int) -> dict:
    """Mean and sd over folds, and bootstrap 95% CIs on the pooled out-of-fold test predictions."""
    per_fold = pd.DataFrame([classification_metrics(f["y"].to_numpy(), probabilities(f, classes)) for f in folds])
    pooled = pd.concat(folds, ignore_index=True)
    y, proba = pooled["y"].to_numpy(), probabilities(pooled, classes)
    point = classification_metrics(y, proba)
    cis = bootstrap_cis(y, proba, classification_metrics, n_boot, seed)
    row = {"model": name, "folds": len(folds), "n_test": len(pooled)}
    for m in METRICS:
        row.update({m: point[m], f"{m}_ci_low": cis[m][0], f"{m}_ci_high": cis[m][1],
                    f"{m}_fold_mean": per_fold[m].mean(), f"{m}_fold_sd": per_fold[m].std(ddof=1) if len(folds) > 1
                    else float("nan")})
    row["study_accuracy"] = STUDY_ACCURACY.get((task, name), float("nan"))
    return row


def flag_against_baseline(summary: pd.DataFrame) -> pd.Series:
    """True where a model is not better than the colour baseline: its CI overlaps the baseline's or its estimate is not higher."""
    base = summary.set_index("model").loc[BASELINE_NAME]
    base_ci = (base[f"{FLAG_METRIC}_ci_low"], base[f"{FLAG_METRIC}_ci_high"])
    return summary.apply(lambda r: r["model"] != BASELINE_NAME and (
        intervals_overlap((r[f"{FLAG_METRIC}_ci_low"], r[f"{FLAG_METRIC}_ci_high"]), base_ci)
        or r[FLAG_METRIC] <= base[FLAG_METRIC]), axis=1)


def paired_tests(folds: dict[str, list[pd.DataFrame]]) -> pd.DataFrame:
    """Exact McNemar test for every pair of models on the same test images, per fold and pooled over folds.

    The pooled rows (fold 'all') carry Holm-adjusted p-values across the pairs.
    """
    rows = []
    for a, b in itertools.combinations(folds, 2):
        per_fold = [(str(i), fa, fb) for i, (fa, fb) in enumerate(zip(folds[a], folds[b]))]
        pooled = ("all", pd.concat(folds[a], ignore_index=True), pd.concat(folds[b], ignore_index=True))
        for fold, fa, fb in (per_fold if len(per_fold) > 1 else []) + [pooled]:
            joined = fa[["image_id", "correct"]].merge(fb[["image_id", "correct"]], on="image_id", suffixes=("_a", "_b"))
            ca, cb = joined["correct_a"].astype(str) == "True", joined["correct_b"].astype(str) == "True"
            rows.append({"model_a": a, "model_b": b, "fold": fold, "n_images": len(joined),
                         "accuracy_a": ca.mean(), "accuracy_b": cb.mean(), **mcnemar(ca, cb)})
    table = pd.DataFrame(rows)
    if not table.empty:
        pooled_rows = table["fold"] == "all"
        table["p_holm"] = float("nan")
        table.loc[pooled_rows, "p_holm"] = holm(table.loc[pooled_rows, "p_value"].tolist())
    return table


def compare_models(task: str, models: list[str], prediction_paths: list[str], n_folds: int, classes: list[str],
                   n_boot: int, seed: int, comparison_out, paired_out, figure_out, parent_run_file=None) -> pd.DataFrame:
    """Write the task's comparison table, paired tests and comparison figure.

    prediction_paths are in expand(model, fold) order: n_folds files per model.
    """
    folds = {m: [read_tsv(p) for p in prediction_paths[i * n_folds:(i + 1) * n_folds]] for i, m in enumerate(models)}
    summary = pd.DataFrame([model_summary(m, task, f, classes, n_boot, seed) for m, f in
                            track(folds.items(), f"compare {task}: bootstrap intervals", total=len(folds),
                                  unit="model")])
    summary.insert(1, "not_better_than_colour_baseline", flag_against_baseline(summary))
    paired = paired_tests(folds)
    write_tsv_atomic(summary, comparison_out)
    write_tsv_atomic(paired, paired_out)
    save(comparison_figure(summary, "accuracy", f"{task}: test accuracy, 95% bootstrap CI"), figure_out)
    if parent_run_file and Path(parent_run_file).is_file():
        _log_to_parent(parent_run_file, task, summary, [comparison_out, paired_out, figure_out])
    log.info("%s comparison:\n%s", task, summary[["model", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
                                                  "not_better_than_colour_baseline"]].to_string(index=False))
    return summary


def _log_to_parent(parent_run_file, task: str, summary: pd.DataFrame, paths) -> None:
    """Put the comparison on the study's parent run without reopening it (its status is the workflow's)."""
    from alldag.tracking import client_for, retry

    info = json.loads(Path(parent_run_file).read_text())
    client = client_for(info["tracking_uri"])
    for path in paths:
        retry(client.log_artifact, info["run_id"], str(path), f"comparison/{task}")
    for row in summary.itertuples():
        for m in METRICS:
            retry(client.log_metric, info["run_id"], f"{task}.{row.model}.{m}", float(getattr(row, m)))
