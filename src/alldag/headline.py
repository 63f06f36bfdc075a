"""The report's headline: which model is best, by how much, how sure, against the colour baseline,
whether the data can be trusted, and what was skipped or is missing; plus the run's provenance.

Everything here works on plain tables and dicts, so the report page and results/summary.json state
the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from alldag.methods import method_title, pair_name, study_methods, study_pair
from alldag.metrics import METRICS
from alldag.names import BASELINE_NAME, HEADLINE_METRIC
from alldag.study import STUDY_SHORT, study_task_reference
from alldag.tracking import read_run_file
from alldag.verdicts import BEATS, EQUIVALENT, HEADLINE_WORDS, REASON_COLUMN, UNDETERMINED, VERDICT_COLUMN, verdict_of


def _f(value) -> float | None:
    """A number as float; None for missing values (NaN, None, empty cells)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(value) else value


VERDICT_FIELDS = (
    "diff_vs_colour_baseline",
    "diff_vs_colour_baseline_ci_low",
    "diff_vs_colour_baseline_ci_high",
    "p_vs_colour_baseline",
    "p_vs_colour_baseline_holm",
    "mcnemar_p_vs_colour_baseline",
)


def grouping_headline(sensitivity: pd.DataFrame) -> list[dict]:
    """The colour baseline's balanced accuracy (with its interval) under every split grouping, from
    grouping_sensitivity.tsv: [{"grouping", "balanced_accuracy", "ci", "n_test", "fewest_groups", "main"}]."""
    metric = HEADLINE_METRIC
    return [
        {
            "grouping": str(row["grouping"]),
            metric: _f(row[metric]),
            "ci": [_f(row[f"{metric}_ci_low"]), _f(row[f"{metric}_ci_high"])],
            "n_test": int(row["n_test"]),
            "fewest_groups": int(row["fewest_groups_in_a_class"]),
            "main": str(row["main"]).lower() == "true",
        }
        for _, row in sensitivity.iterrows()
    ]


def task_headline(comparison: pd.DataFrame, paired: pd.DataFrame | None = None, task: str | None = None) -> dict:
    """Best model of one task by balanced accuracy, its CI, its margin over the runner-up and the baseline.

    comparison: the compare stage's table (one row per model, colour_baseline included).
    paired: its paired-test table (pooled rows have fold 'all'); used for the best-vs-runner-up p-value
    (paired group bootstrap of the balanced-accuracy difference, Holm-adjusted).
    task: names the study's reported figure for the task (`study`), with its citation.
    """
    metric = HEADLINE_METRIC
    cnns = comparison[comparison["model"] != BASELINE_NAME].sort_values(
        metric, ascending=not METRICS[metric].higher_is_better
    )
    baseline = comparison[comparison["model"] == BASELINE_NAME]
    numbers = (
        *_metric_columns(),
        "study_accuracy",
        "n_test",
        "n_groups",
        *VERDICT_FIELDS,
    )
    models = {
        row["model"]: {k: _f(row.get(k)) for k in numbers}
        | {VERDICT_COLUMN: verdict_of(row.get(VERDICT_COLUMN)), REASON_COLUMN: _text(row.get(REASON_COLUMN))}
        for _, row in comparison.iterrows()
    }
    out = {"metric": metric, "models": models, "best": None, "study": study_task_reference(task) if task else None}
    if cnns.empty:
        return out
    best = cnns.iloc[0]
    out["best"] = best["model"]
    out["best_value"] = _f(best[metric])
    out["best_ci"] = [_f(best[f"{metric}_ci_low"]), _f(best[f"{metric}_ci_high"])]
    out["n_test"], out["n_groups"] = models[best["model"]]["n_test"], models[best["model"]]["n_groups"]
    if len(cnns) > 1:
        runner = cnns.iloc[1]
        out["runner_up"] = runner["model"]
        out["margin_over_runner_up"] = _f(best[metric] - runner[metric])
        out["runner_up_p_holm"] = _paired_p(paired, best["model"], runner["model"])
    if not baseline.empty:
        mine = models[best["model"]]
        out["colour_baseline"] = _f(baseline.iloc[0][metric])
        out["colour_baseline_image_level"] = _f(baseline.iloc[0].get(f"image_level_{metric}"))
        out["margin_over_colour_baseline"] = mine["diff_vs_colour_baseline"]
        out["margin_over_colour_baseline_ci"] = [
            mine["diff_vs_colour_baseline_ci_low"],
            mine["diff_vs_colour_baseline_ci_high"],
        ]
        out["p_vs_colour_baseline"] = mine["p_vs_colour_baseline"]
        out["p_vs_colour_baseline_holm"] = mine["p_vs_colour_baseline_holm"]
        out["models_compared"] = len(cnns)  # the family the 'beats' claims are Holm-adjusted across
        out[VERDICT_COLUMN] = mine[VERDICT_COLUMN] or UNDETERMINED
        out[REASON_COLUMN] = mine[REASON_COLUMN]
        out["models_not_shown_to_beat_colour_baseline"] = [
            m for m, v in models.items() if m != BASELINE_NAME and v[VERDICT_COLUMN] != BEATS
        ]
    return out


def _metric_columns() -> list[str]:
    """The comparison columns a model's headline keeps: every registered metric, the headline metric first,
    with its 95% interval where the registry says summary.json gives it (Metric.summary_interval)."""
    ordered = [HEADLINE_METRIC, *(m for m in METRICS if m != HEADLINE_METRIC)]
    intervals = ("", "_ci_low", "_ci_high")
    return [f"{m}{end}" for m in ordered for end in (intervals if METRICS[m].summary_interval else ("",))]


def _text(value) -> str | None:
    """A text cell; None when missing or empty."""
    return None if value is None or pd.isna(value) or not str(value).strip() else str(value).strip()


def _paired_p(paired: pd.DataFrame | None, a: str, b: str) -> float | None:
    if paired is None or paired.empty:
        return None
    pooled = paired[paired["fold"].astype(str) == "all"]
    hit = pooled[
        ((pooled["model_a"] == a) & (pooled["model_b"] == b)) | ((pooled["model_a"] == b) & (pooled["model_b"] == a))
    ]
    return _f(hit.iloc[0]["p_holm"]) if len(hit) else None


def baseline_clause(h: dict) -> str:
    """How the best model stands against the colour baseline: the verdict, the paired difference with its
    interval, the one-sided p adjusted across the task's models, and why where it is equivalent or undetermined."""
    diff, p = h.get("margin_over_colour_baseline"), h.get("p_vs_colour_baseline")
    lo, hi = h.get("margin_over_colour_baseline_ci") or (None, None)
    adjusted, family = h.get("p_vs_colour_baseline_holm"), h.get("models_compared")
    detail = (
        f"difference {diff:+.3f}, 95% CI {lo:+.3f} to {hi:+.3f}, one-sided p = {p:.2g}"
        if None not in (diff, lo, hi, p)
        else "no paired difference available"
    )
    if adjusted is not None and family and family > 1:
        detail += f", {adjusted:.2g} after Holm adjustment across the {family} models compared"
    verdict = h.get(VERDICT_COLUMN) or UNDETERMINED
    if verdict in (EQUIVALENT, UNDETERMINED) and h.get(REASON_COLUMN):
        detail += f"; {h[REASON_COLUMN]}"
    return f"{HEADLINE_WORDS[verdict]} the colour baseline ({h['colour_baseline']:.3f}; {detail})"


def skipped_checks(provenance: dict, audit: dict | None) -> list[str]:
    """Checks this run skipped or that found problems it went on with, one phrase each."""
    out = []
    verification = provenance.get("verification") or {}
    if not provenance.get("synthetic"):
        if verification.get("skipped"):
            out.append("checksum verification was off (data.verify: off)")
        elif any(verification.get(k) for k in ("missing", "changed", "extra")):
            out.append("checksum verification found problems and the run went on (data.verify: warn)")
    if audit:  # a missing or failed Segmented/ twin falls back to the stain mask: only 'none' goes unmeasured
        sources = audit.get("mask_sources")
        unmasked = sources.get("none", 0) if sources else audit.get("masks_missing", 0)
        if unmasked:
            out.append(f"{unmasked} images have no usable leukocyte mask, so their plausibility is not measured")
    return out


def explanation_sentence(task: str, headline: dict) -> str | None:
    """Where the models of a task look, in one sentence: the where_models_look verdict when there is one,
    else medians over models; None without numbers."""
    if headline.get("where_models_look"):
        return headline["where_models_look"]
    a, b = study_pair()
    pair = pair_name(a, b)
    rho, iou = headline.get(f"{pair}_spearman"), headline.get(f"{pair}_top_iou")
    if rho is None and iou is None:
        return None
    strength = (
        "barely" if rho is None or rho < 0.2 else "weakly" if rho < 0.5 else "moderately" if rho < 0.8 else "strongly"
    )
    text = f"{task} explanations: {method_title(a)} and {method_title(b)} agree {strength}"
    text += f" (median per-superpixel Spearman {rho:.2f}" if rho is not None else " ("
    text += f", top-region IoU {iou:.2f})" if iou is not None else ")"
    shares = [
        f"{name} puts {headline[f'{key}_mask_mass']:.0%} of its attribution on the leukocyte and "
        f"{headline[f'{key}_corner_mass']:.0%} in the scale-bar corner"
        for key, name in ((k, method_title(k)) for k in study_methods())
        if headline.get(f"{key}_mask_mass") is not None and headline.get(f"{key}_corner_mass") is not None
    ]
    if shares:
        reference = headline.get("uniform_mask_mass"), headline.get("uniform_corner_mass")
        text += "; " + "; ".join(shares)
        if None not in reference:
            text += f" (a uniform map: {reference[0]:.0%} and {reference[1]:.0%})"
    return text + "."


def opening_paragraph(
    headlines: dict[str, dict],
    *,
    audit: dict | None = None,
    leaks: dict[str, int | None] | None = None,
    synthetic: bool = False,
    missing: list[str] | tuple[str, ...] = (),
    explanations: dict[str, dict] | None = None,
) -> str:
    """The report's opening paragraph, plain text.

    headlines: per task its task_headline; audit: audit.json (None: not run); leaks: per task the number of
    groups crossing splits; synthetic: the data are the built-in synthetic smears; missing: files a failed job
    did not make; explanations: per task the explanation headline.
    """
    leaks = leaks or {}
    title = METRICS[HEADLINE_METRIC].title
    parts = []
    if synthetic:
        parts.append(
            "These results come from the built-in synthetic smears, not from patients: they show the "
            "pipeline works, not how well any model diagnoses ALL."
        )
    for task, h in headlines.items():
        if not h or not h.get("best"):
            parts.append(f"{task}: no comparison (its results are missing).")
            continue
        lo, hi = h["best_ci"]
        n = (
            f", n = {h['n_test']:.0f} images in {h['n_groups']:.0f} groups"
            if h.get("n_test") is not None and h.get("n_groups") is not None
            else ""
        )
        text = f"{task}: {h['best']} is best with {title} {h['best_value']:.3f} (95% CI {lo:.3f}–{hi:.3f}{n})"
        if h.get("runner_up") and abs(h["margin_over_runner_up"]) < 1e-9:
            text = text.replace(f"{h['best']} is best", f"{h['best']} and {h['runner_up']} tie for best")
        elif h.get("runner_up"):
            p = h.get("runner_up_p_holm")
            text += f", {h['margin_over_runner_up']:.3f} above {h['runner_up']}" + (
                f" (paired group-bootstrap p = {p:.2g} after Holm)" if p is not None else ""
            )
        if "colour_baseline" in h:
            text += "; " + baseline_clause(h)
            flagged = [m for m in h["models_not_shown_to_beat_colour_baseline"] if m != h["best"]]
            if flagged:
                text += f"; not shown to beat the colour baseline either: {', '.join(flagged)}"
        parts.append(text + ".")
        if h.get("colour_baseline_image_level") is not None:
            parts.append(
                f"Leakage check on {task}: splitting by patient proxy instead of by image "
                f"{'lowers' if h['colour_baseline_image_level'] > h['colour_baseline'] else 'changes'} "
                f"the colour shortcut's {title} from {h['colour_baseline_image_level']:.3f} to "
                f"{h['colour_baseline']:.3f}."
            )
        study = h.get("study") or {}
        if study.get("best_accuracy") is not None:
            parts.append(
                f"The study ({STUDY_SHORT}) reported about {study['best_accuracy']:.0%} accuracy on {task}, "
                "the best of its four backbones."
            )
    for task, headline in (explanations or {}).items():
        sentence = explanation_sentence(task, headline)
        if sentence:
            parts.append(sentence)
    if audit:
        passed = all(n == 0 for n in leaks.values() if n is not None)
        parts.append(
            f"Data: {audit['checked']} images checked, {audit['quarantined']} quarantined, "
            f"{audit['duplicate_clusters']} duplicate clusters and every patient-proxy group kept within "
            f"one split; leakage check {'passed' if passed else 'FAILED'}."
        )
    if missing:
        parts.append(f"INCOMPLETE: {len(missing)} result(s) missing (a job failed): see the marked places below.")
    return " ".join(parts)


def mlflow_runs(run_jsons: dict[str, str], parent_run_file) -> dict:
    """Parent and per-model MLflow run ids, the command that opens the UI on this store, and the pretrained
    weights files the models started from (name and sha256, from their run records)."""
    runs = {name: read_run_file(p) for name, p in run_jsons.items() if Path(p).is_file()}
    parent = (
        json.loads(Path(parent_run_file).read_text()) if parent_run_file and Path(parent_run_file).is_file() else {}
    )
    uri = parent.get("tracking_uri") or next((r["tracking_uri"] for r in runs.values()), None)
    ui = (
        f"mlflow ui --backend-store-uri {uri}"
        if uri and not uri.startswith("http")
        else f"open {uri} in a browser"
        if uri
        else None
    )
    used = {
        (p.get("backbone"), p["weights_file"], p["weights_sha256"])
        for p in (r.get("params", {}) for r in runs.values())
        if "weights_sha256" in p
    }
    return {
        "parent_run_id": parent.get("run_id"),
        "tracking_uri": uri,
        "ui": ui,
        # the track jobs, after the report, make the child runs: each is found by its record id (RECORD_TAG)
        "child_records": {name: r.get("record") for name, r in runs.items()},
        "pretrained_weights": [{"backbone": b, "file": f, "sha256": h} for b, f, h in sorted(used)],
    }
