"""The `compare` stage: every model of a task (CNNs and the colour baseline) side by side, with spread,
group-bootstrap intervals, the paired verdict against the colour baseline, paired tests between models and
the study's reported numbers."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from alldag import AlldagError
from alldag.evaluate import classification_metrics
from alldag.figures import comparison_figure, save
from alldag.metrics import METRICS
from alldag.names import BASELINE_NAME, HEADLINE_METRIC
from alldag.progress import track
from alldag.stats import (
    group_bootstrap_weights,
    groups_per_class,
    holm,
    mcnemar,
    metric_intervals,
    paired_comparison,
)
from alldag.study import study_accuracy
from alldag.tables import read_tsv, write_tsv_atomic
from alldag.verdicts import MIN_GROUPS_PER_CLASS, REASON_COLUMN, VERDICT_COLUMN, decide

log = logging.getLogger(__name__)
VERDICT_COLUMNS = [
    VERDICT_COLUMN,
    REASON_COLUMN,
    "diff_vs_colour_baseline",
    "diff_vs_colour_baseline_ci_low",
    "diff_vs_colour_baseline_ci_high",
    "p_vs_colour_baseline",
    "p_vs_colour_baseline_holm",
    "mcnemar_p_vs_colour_baseline",
]


@dataclass(frozen=True)
class ComparisonSettings:
    """What a task's comparison needs besides its files."""

    task: str
    classes: tuple[str, ...]
    bootstrap_samples: int  # group-bootstrap resamples of every metric's interval
    seed: int
    equivalence_margin: float  # δ: a model whose difference to the baseline lies within ±δ is equivalent
    grouping: str = "blocks"  # the split grouping the models were compared under (alldag.split.GROUPINGS)

    @classmethod
    def from_params(cls, params, wildcards) -> ComparisonSettings:
        """From the compare rule's params (classes, bootstrap, seed, equivalence_margin, grouping) and wildcards."""
        return cls(
            wildcards.task,
            tuple(params.classes),
            params.bootstrap,
            params.seed,
            params.equivalence_margin,
            params.grouping,
        )


@dataclass(frozen=True)
class ComparisonOutputs:
    """The files a comparison writes (paths)."""

    comparison: str  # comparison.tsv: one row per model
    paired: str  # paired_tests.tsv: one row per model pair and fold
    figure: str  # comparison.png
    groupings: str | None = None  # grouping_sensitivity.tsv: the colour baseline under every split grouping


def probabilities(predictions: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return predictions[[f"p_{c}" for c in classes]].to_numpy(float)


def pooled_predictions(task: str, folds: dict[str, dict[int, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """Each model's out-of-fold test predictions (model -> fold -> table) pooled over folds, rows in one shared
    image order.

    Raises AlldagError (one line) when the models were not tested on the same images or a file lacks the
    `group` column the group bootstrap needs.
    """
    pooled = {
        m: pd.concat([f.assign(fold=i) for i, f in sorted(fs.items())], ignore_index=True) for m, fs in folds.items()
    }
    first = next(iter(pooled))
    order = pooled[first].sort_values(["fold", "image_id"])[["fold", "image_id"]]
    out = {}
    for model, frame in pooled.items():
        if "group" not in frame:
            raise AlldagError(
                f"{task}/{model}: test predictions have no 'group' column (made by an older alldag): "
                f"delete results/evaluation/{task} and rerun"
            )
        aligned = order.merge(frame, on=["fold", "image_id"], how="left", validate="one_to_one")
        if len(frame) != len(order) or aligned["y"].isna().any():
            raise AlldagError(
                f"{task}: {model} and {first} were tested on different images: rerun the task "
                "from its split (snakemake --forcerun split)"
            )
        out[model] = aligned.assign(group=aligned["group"].astype(str))
    return out


def model_row(name: str, task: str, pooled: pd.DataFrame, classes: list[str], weights: np.ndarray) -> dict:
    """Every registered metric (alldag.metrics) on the pooled test predictions with group-bootstrap (or exact)
    95% intervals, their n (images and groups), and the mean and SD over folds."""
    folds = [f for _, f in pooled.groupby("fold", sort=True)]
    per_fold = pd.DataFrame([classification_metrics(f["y"].to_numpy(int), probabilities(f, classes)) for f in folds])
    y, proba = pooled["y"].to_numpy(int), probabilities(pooled, classes)
    point = classification_metrics(y, proba)
    cis = metric_intervals(weights, y, proba, pooled["group"].to_numpy())
    row = {"model": name, "folds": len(folds), "n_test": len(pooled), "n_groups": int(pooled["group"].nunique())}
    for m in METRICS:
        row.update(
            {
                m: point[m],
                f"{m}_ci_low": cis[m][0],
                f"{m}_ci_high": cis[m][1],
                f"{m}_fold_mean": per_fold[m].mean(),
                f"{m}_fold_sd": per_fold[m].std(ddof=1) if len(folds) > 1 else float("nan"),
            }
        )
    row["study_accuracy"] = study_accuracy(task, name)
    return row


def _correct(frame: pd.DataFrame) -> np.ndarray:
    return frame["correct"].astype(str).str.lower().eq("true").to_numpy()


def baseline_verdicts(
    *,
    y: np.ndarray,
    groups: np.ndarray,
    baseline: np.ndarray,
    models: dict[str, np.ndarray],
    margin: float,
    seed: int,
    min_groups: int = MIN_GROUPS_PER_CLASS,
) -> list[dict]:
    """Per model: the paired difference in balanced accuracy to the colour baseline on the same images (its
    95% cluster-robust interval, one-sided p of 'not better' raw and Holm-adjusted across `models`, the
    task's family), its verdict and reason, and McNemar's p (secondary).

    y, groups: the test images' classes and groups; baseline and models: per image 'was correct';
    min_groups: verdicts.decide's.
    """
    fewest_groups = groups_per_class(y, groups)
    tests = {m: paired_comparison(y, groups, c, baseline, seed=seed) for m, c in models.items()}
    adjusted = dict(zip(tests, holm([d["p_greater"] for d in tests.values()]))) if tests else {}
    rows = []
    for model, d in tests.items():
        word, reason = decide(
            p_beats=adjusted[model],
            p_worse=d["p_less"],
            ci=(d["ci_low"], d["ci_high"]),
            margin=margin,
            fewest_groups=fewest_groups,
            min_groups=min_groups,
        )
        rows.append(
            {
                "model": model,
                VERDICT_COLUMN: word,
                REASON_COLUMN: reason,
                "diff_vs_colour_baseline": d["diff"],
                "diff_vs_colour_baseline_ci_low": d["ci_low"],
                "diff_vs_colour_baseline_ci_high": d["ci_high"],
                "p_vs_colour_baseline": d["p_greater"],
                "p_vs_colour_baseline_holm": adjusted[model],
                "mcnemar_p_vs_colour_baseline": mcnemar(models[model], baseline)["p_value"],
            }
        )
    return rows


def verdict_against_baseline(pooled: dict[str, pd.DataFrame], settings: ComparisonSettings) -> pd.DataFrame:
    """baseline_verdicts of every model of the task on its pooled test predictions; the baseline's own row has
    an empty verdict and NaN numbers."""
    base = pooled[BASELINE_NAME]
    y, groups = base["y"].to_numpy(int), base["group"].to_numpy()
    fewest_groups = groups_per_class(y, groups)
    if fewest_groups < MIN_GROUPS_PER_CLASS:
        log.warning(
            "the test images hold only %d group(s) in some class (fewer than %d): every verdict against the "
            "colour baseline is undetermined (too few groups); use more images or smaller blocks",
            fewest_groups,
            MIN_GROUPS_PER_CLASS,
        )
    rows = baseline_verdicts(
        y=y,
        groups=groups,
        baseline=_correct(base),
        models={m: _correct(f) for m, f in pooled.items() if m != BASELINE_NAME},
        margin=settings.equivalence_margin,
        seed=settings.seed,
    )
    own = {"model": BASELINE_NAME, VERDICT_COLUMN: "", REASON_COLUMN: ""}
    return pd.DataFrame([own | {c: float("nan") for c in VERDICT_COLUMNS if c not in own}, *rows])


def paired_tests(pooled: dict[str, pd.DataFrame], seed: int) -> pd.DataFrame:
    """Every pair of models on the same test images, per fold and pooled over folds (fold 'all'): the paired
    difference in balanced accuracy tested on whole groups (A - B, 95% cluster-robust interval, two-sided p
    of the group sign-flip and t tests, stats.paired_comparison) and, secondary, exact McNemar on accuracy.

    The pooled rows carry Holm-adjusted p-values across the pairs, for both tests.
    """
    first = next(iter(pooled.values()))
    fold_ids = sorted(first["fold"].unique())
    scopes = [(str(f), (first["fold"] == f).to_numpy()) for f in fold_ids] if len(fold_ids) > 1 else []
    scopes.append(("all", np.ones(len(first), bool)))
    rows = []
    for a, b in itertools.combinations(pooled, 2):
        for name, sel in scopes:
            fa, fb = pooled[a][sel], pooled[b][sel]
            y, ca, cb = fa["y"].to_numpy(int), _correct(fa), _correct(fb)
            d = paired_comparison(y, fa["group"].to_numpy(), ca, cb, seed=seed)
            m = mcnemar(ca, cb)
            rows.append(
                {
                    "model_a": a,
                    "model_b": b,
                    "fold": name,
                    "n_images": int(sel.sum()),
                    "n_groups": int(fa["group"].nunique()),
                    "balanced_accuracy_diff": d["diff"],
                    "balanced_accuracy_diff_ci_low": d["ci_low"],
                    "balanced_accuracy_diff_ci_high": d["ci_high"],
                    "p_value": d["p_two_sided"],
                    "accuracy_a": ca.mean(),
                    "accuracy_b": cb.mean(),
                    "mcnemar_only_a_correct": m["only_a_correct"],
                    "mcnemar_only_b_correct": m["only_b_correct"],
                    "mcnemar_p_value": m["p_value"],
                }
            )
    table = pd.DataFrame(rows)
    if not table.empty:
        pooled_rows = table["fold"] == "all"
        for column in ("p", "mcnemar_p"):
            table[f"{column}_holm"] = float("nan")
            table.loc[pooled_rows, f"{column}_holm"] = holm(table.loc[pooled_rows, f"{column}_value"].tolist())
    return table


def image_level_columns(paths: list[str], classes: list[str], n_boot: int, seed: int) -> dict:
    """The colour baseline under an image-level split (leakage sensitivity): pooled balanced accuracy, its
    image-level bootstrap interval and n, as `image_level_*` columns of the baseline's row."""
    pooled = pd.concat([read_tsv(p) for p in paths], ignore_index=True)
    y, proba = pooled["y"].to_numpy(int), probabilities(pooled, classes)
    images = pooled["image_id"].to_numpy()
    low, high = metric_intervals(group_bootstrap_weights(y, images, n_boot, seed), y, proba, images)[HEADLINE_METRIC]
    return {
        f"image_level_{HEADLINE_METRIC}": classification_metrics(y, proba)[HEADLINE_METRIC],
        f"image_level_{HEADLINE_METRIC}_ci_low": low,
        f"image_level_{HEADLINE_METRIC}_ci_high": high,
        "image_level_n_test": len(pooled),
    }


def grouping_sensitivity(paths: list[str], classes: list[str], n_boot: int, seed: int, main: str) -> pd.DataFrame:
    """The colour baseline's pooled balanced accuracy under every split grouping (the baseline's
    predictions_by_grouping.tsv, one per fold), with its group-bootstrap 95 % interval on that grouping's groups,
    n and the fewest groups in a class; `main` marks the grouping the CNNs were split by. A score that falls as the
    grouping holds out more (image-level > blocks > appearance) measures how far within-patient or within-session
    similarity inflates it."""
    pooled = pd.concat([read_tsv(p) for p in paths], ignore_index=True)
    rows = []
    for name, frame in pooled.groupby("grouping", sort=False):
        y, proba, groups = frame["y"].to_numpy(int), probabilities(frame, classes), frame["group"].to_numpy(str)
        low, high = metric_intervals(group_bootstrap_weights(y, groups, n_boot, seed), y, proba, groups)[
            HEADLINE_METRIC
        ]
        rows.append(
            {
                "grouping": name,
                HEADLINE_METRIC: classification_metrics(y, proba)[HEADLINE_METRIC],
                f"{HEADLINE_METRIC}_ci_low": low,
                f"{HEADLINE_METRIC}_ci_high": high,
                "n_test": len(frame),
                "fewest_groups_in_a_class": groups_per_class(y, groups),
                "main": name.split(" ")[0] == main,
            }
        )
    return pd.DataFrame(rows)


def compare_models(
    *,
    predictions: dict[str, dict[int, str]],
    settings: ComparisonSettings,
    outputs: ComparisonOutputs,
    image_level: list[str] | None = None,
    by_grouping: list[str] | None = None,
) -> pd.DataFrame:
    """Write the task's comparison table, paired tests and comparison figure; returns the comparison table.

    predictions: test predictions of every model and fold, model -> fold -> path. Every metric's interval
    resamples whole groups (duplicate clusters, patient-proxy blocks) within each class, pooled over folds;
    every difference between models is paired image by image and tested on whole groups. image_level (one per
    fold): the colour baseline's predictions under an image-level split, reported on its row beside the grouped
    ones.
    """
    task, classes, n_boot, seed = settings.task, list(settings.classes), settings.bootstrap_samples, settings.seed
    folds = {m: {int(f): read_tsv(p) for f, p in by_fold.items()} for m, by_fold in predictions.items()}
    pooled = pooled_predictions(task, folds)
    first = next(iter(pooled.values()))
    weights = group_bootstrap_weights(first["y"].to_numpy(int), first["group"].to_numpy(), n_boot, seed)
    comparison = pd.DataFrame(
        [
            model_row(m, task, p, classes, weights)
            for m, p in track(pooled.items(), f"compare {task}: bootstrap intervals", total=len(pooled), unit="model")
        ]
    )
    if BASELINE_NAME in pooled:
        comparison = comparison.merge(verdict_against_baseline(pooled, settings), on="model", how="left")
        comparison = comparison[
            ["model", *VERDICT_COLUMNS] + [c for c in comparison if c not in VERDICT_COLUMNS + ["model"]]
        ]
    if image_level:
        for column, value in image_level_columns(image_level, classes, n_boot, seed).items():
            comparison[column] = np.where(comparison["model"] == BASELINE_NAME, value, np.nan)
    if by_grouping and outputs.groupings:
        write_tsv_atomic(grouping_sensitivity(by_grouping, classes, n_boot, seed, settings.grouping), outputs.groupings)
    paired = paired_tests(pooled, seed)
    write_tsv_atomic(comparison, outputs.comparison)
    write_tsv_atomic(paired, outputs.paired)
    save(
        comparison_figure(
            comparison, HEADLINE_METRIC, f"{task}: test {METRICS[HEADLINE_METRIC].title}, 95% group-bootstrap CI"
        ),
        outputs.figure,
    )
    shown = [
        c
        for c in (
            "model",
            HEADLINE_METRIC,
            f"{HEADLINE_METRIC}_ci_low",
            f"{HEADLINE_METRIC}_ci_high",
            "n_test",
            "n_groups",
            VERDICT_COLUMN,
            "diff_vs_colour_baseline",
        )
        if c in comparison
    ]
    log.info("%s comparison:\n%s", task, comparison[shown].to_string(index=False))
    return comparison
