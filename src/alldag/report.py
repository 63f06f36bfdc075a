"""The `report` stage: one self-contained HTML page with every result, figure and caveat."""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd
import yaml
from jinja2 import Environment, PackageLoader, select_autoescape

from alldag.baseline import BASELINE_NAME
from alldag.compare import VERDICT_COLUMNS
from alldag.data import read_tsv, write_text_atomic, write_tsv_atomic
from alldag.split import split_counts
from alldag.study import STUDY_CITATION, STUDY_DOI, STUDY_SHORT, study_accuracy
from alldag.summary import mlflow_runs, package_versions, skipped_checks, summary_paragraph, task_headline

METRIC_COLUMNS = ["accuracy", "balanced_accuracy", "macro_f1", "roc_auc"]
# results-table column -> (method, metric) of explanation_summary.tsv (means over the explained images)
EXPLANATION_COLUMNS = {"gradcam_lime_spearman": ("gradcam_vs_lime", "spearman"),
                       "gradcam_lime_top_iou": ("gradcam_vs_lime", "top_iou"),
                       "gradcam_mask_mass": ("gradcam", "mask_mass"), "lime_mask_mass": ("lime", "mask_mass"),
                       "uniform_mask_mass": ("uniform", "mask_mass")}
MAP_METRICS = ["mask_mass", "pointing", "background_mass", "corner_mass", "deletion_auc", "insertion_auc"]
CITATIONS = [
    STUDY_CITATION + " (the study reproduced here)",
    "Aria M, Ghaderzadeh M, Bashash D, Abolghasemi H, Asadi F, Hosseini A. Acute Lymphoblastic Leukemia "
    "(ALL) image dataset. Kaggle (2021). DOI: 10.34740/KAGGLE/DSV/2175623.",
    "Ghaderzadeh M, Aria M, Hosseini A, Asadi F, Bashash D, Abolghasemi H. A fast and efficient CNN model "
    "for B-ALL diagnosis and its subtypes classification using peripheral blood smear images. "
    "Int J Intell Syst. 2022;37:5113-5133. doi:10.1002/int.22753.",
]


@dataclass(frozen=True)
class ModelResult:
    """Paths of one (task, backbone) model's outputs."""

    task: str
    backbone: str
    fold: int
    metrics: str
    history: str
    curves: str
    confusion: str
    roc: str
    reliability: str
    explanation: str
    explanation_summary: str
    run: str


def data_uri(path: str | os.PathLike) -> str | None:
    """A PNG file as an inline data: URI (keeps the page self-contained); None if the file is missing."""
    if not Path(path).is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _exists(*paths) -> bool:
    return all(Path(p).is_file() for p in paths)


def _json(path) -> dict | None:
    return json.loads(Path(path).read_text()) if _exists(path) else None


def results_table(models: list[ModelResult]) -> pd.DataFrame:
    """One row per model: test metrics, chance level, best epoch, explanation agreement, study's number."""
    rows = []
    nan = float("nan")
    for m in models:
        metrics = _json(m.metrics) or {}
        history = read_tsv(m.history) if _exists(m.history) else pd.DataFrame({"val_loss": [], "epoch": []})
        explained = (read_tsv(m.explanation_summary).set_index(["method", "metric"])["mean"]
                     if _exists(m.explanation_summary) else pd.Series(dtype=float))
        status = "ok" if _exists(m.metrics, m.history, m.explanation_summary) else "MISSING: " + ", ".join(
            Path(p).name for p in (m.history, m.metrics, m.explanation_summary) if not _exists(p))
        rows.append({"task": m.task, "backbone": m.backbone, "fold": m.fold, "status": status,
                     **{k: metrics.get(k, nan) for k in METRIC_COLUMNS},
                     "n_test": metrics.get("n_test", nan), "chance_accuracy": metrics.get("chance_accuracy", nan),
                     "epochs": len(history) if len(history) else nan,
                     "best_epoch": _kept_epoch(history),
                     **{column: explained.get(key, nan) for column, key in EXPLANATION_COLUMNS.items()},
                     "study_accuracy": study_accuracy(m.task, m.backbone)})
    return pd.DataFrame(rows)


def _kept_epoch(history: pd.DataFrame) -> float:
    """The epoch whose weights the model kept (history's `kept` column, train.mark_kept_epoch); NaN if unknown."""
    if "kept" not in history:
        return float("nan")
    kept = history.loc[history["kept"].astype(str).str.lower() == "true", "epoch"]
    return int(kept.iloc[0]) if len(kept) else float("nan")


def fold_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over folds of each test metric, per task and backbone."""
    grouped = table.groupby(["task", "backbone"], sort=False)
    out = grouped[METRIC_COLUMNS].agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out.insert(0, "folds", grouped.size())
    out["study_accuracy"] = grouped["study_accuracy"].first()
    return out.reset_index()


def _fmt(value) -> str:
    if isinstance(value, float):
        return "–" if pd.isna(value) else f"{value:.3f}"
    return html.escape(str(value))


def _table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def comparison_section(task: str, comparison_tsv, paired_tsv, figure_png) -> dict:
    """One task's comparison: the table (with CIs, flags, study numbers), the paired tests and the plot.

    A missing comparison (a model of the task failed) gives a section that says so.
    """
    if not _exists(comparison_tsv, paired_tsv):
        return {"task": task, "missing": str(comparison_tsv), "headline": {}}
    table = read_tsv(comparison_tsv)
    paired = read_tsv(paired_tsv)
    columns = ["model", *VERDICT_COLUMNS, "n_test", "n_groups"] + [
        c for m in ("balanced_accuracy", "accuracy", "macro_f1", "roc_auc")
        for c in (m, f"{m}_ci_low", f"{m}_ci_high", f"{m}_fold_sd")] + [
        "study_accuracy", "image_level_balanced_accuracy", "image_level_balanced_accuracy_ci_low",
        "image_level_balanced_accuracy_ci_high", "image_level_n_test"]
    headline = task_headline(table, paired, task)
    verdicts = {m: v["beats_colour_baseline"] for m, v in headline["models"].items() if m != BASELINE_NAME}
    return {"task": task, "table": _table_html(table[[c for c in columns if c in table]]),
            "paired": _table_html(paired), "figure": data_uri(figure_png), "headline": headline,
            "beating": [m for m, v in verdicts.items() if v == "true"],
            "not_beating": [m for m, v in verdicts.items() if v == "false"],
            "undetermined": [m for m, v in verdicts.items() if v not in ("true", "false")],
            "study": headline.get("study")}


def _missing(path) -> str:
    return f"{path} is missing: the job that makes it failed or did not run (see logs/)"


def explanation_tables(task: str, models: list[ModelResult]) -> dict:
    """One task's explanation tables across its models: per backbone and method the mean of each
    metric (averaged over folds), per backbone and method pair the agreement, and a headline (medians
    over models of Grad-CAM-vs-LIME agreement and of each method's corner and mask shares)."""
    frames = [read_tsv(m.explanation_summary).assign(backbone=m.backbone) for m in models
              if m.task == task and _exists(m.explanation_summary)]
    if not frames:
        return {"task": task, "methods": None, "pairs": None, "headline": {}}
    summary = pd.concat(frames).groupby(["backbone", "method", "metric"], sort=False)["mean"].mean().unstack("metric")
    is_pair = summary.index.get_level_values("method").str.contains("_vs_")
    methods, pairs = summary[~is_pair], summary[is_pair]
    by_method = methods.groupby(level="method")
    headline = {"gradcam_vs_lime_spearman": _median(pairs, "gradcam_vs_lime", "spearman"),
                "gradcam_vs_lime_top_iou": _median(pairs, "gradcam_vs_lime", "top_iou"),
                **{f"{method}_{metric}": float(values[metric].median())
                   for method, values in by_method for metric in ("mask_mass", "corner_mass") if metric in values}}
    return {"task": task, "methods": _table_html(methods[MAP_METRICS].reset_index()),
            "pairs": _table_html(pairs[["top_iou", "spearman"]].reset_index()), "headline": headline}


def _median(frame: pd.DataFrame, method: str, metric: str) -> float | None:
    rows = frame[frame.index.get_level_values("method") == method]
    return float(rows[metric].median()) if len(rows) and metric in rows else None


def build_report(provenance_json, audit_json, leakage_tsvs: dict[str, str], split_manifests: dict[str, list[str]],
                 augmentation_json, previews: dict[str, str], models: list[ModelResult], comparisons: list[dict],
                 config: dict, report_out, table_out, summary_out, summary_json_out=None,
                 parent_run_file=None) -> str:
    """Render the report page, the per-fold results table, the across-fold summary TSV and summary.json.

    Missing inputs (a job failed under --keep-going) are marked in place, listed at the top and in
    summary.json's `missing`. Returns the HTML.
    """
    from alldag import __version__
    from alldag.train import git_commit

    provenance = _json(provenance_json) or {"synthetic": False, "demo": False, "source": "unknown",
                                            "reason": _missing(provenance_json), "counts": {}}
    audit = _json(audit_json)
    data_dir = Path(audit_json).parent
    table = results_table(models)
    summary = fold_summary(table)
    write_tsv_atomic(table, table_out)
    write_tsv_atomic(summary, summary_out)
    missing = sorted({str(p) for m in models for p in (m.metrics, m.history, m.explanation_summary, m.curves,
                                                        m.confusion,
                                                        m.roc, m.reliability, m.explanation, m.run) if not _exists(p)}
                     | {c["missing"] for c in comparisons if c.get("missing")})
    splits = {task: _table_html(split_counts(read_tsv(paths[0])).reset_index()) if _exists(paths[0])
              else None for task, paths in split_manifests.items()}
    leaks = {task: len(read_tsv(path)) if _exists(path) else None for task, path in leakage_tsvs.items()}
    figures = []
    for m in (m for m in models if m.fold == 0):  # figures of the first fold; every fold is in the tables
        figures.append({"title": f"{m.task} / {m.backbone}",
                        "images": [(name, data_uri(p), _missing(p)) for name, p in (
                            ("Training curves", m.curves), ("Confusion matrix", m.confusion), ("ROC", m.roc),
                            ("Calibration", m.reliability), ("Explanation gallery", m.explanation))],
                        "run_id": (_json(m.run) or {}).get("run_id", "missing"),
                        "explanation_summary": (_table_html(read_tsv(m.explanation_summary))
                                                if _exists(m.explanation_summary) else None),
                        "explanation_missing": _missing(m.explanation_summary)})
    headlines = {c["task"]: c["headline"] for c in comparisons}
    checks = skipped_checks(provenance, audit)
    runs = mlflow_runs({f"{m.task}/{m.backbone}/fold{m.fold}": m.run for m in models}, parent_run_file)
    commit = git_commit()
    versions = {**package_versions(), "alldag": __version__}
    explanations = [explanation_tables(t, models) for t in split_manifests]
    paragraph = summary_paragraph(headlines, audit, leaks, bool(provenance.get("synthetic")), missing,
                                  {e["task"]: e["headline"] for e in explanations})
    if summary_json_out:
        write_text_atomic(json.dumps({"synthetic": bool(provenance.get("synthetic")), "demo": bool(provenance.get("demo")),
                     "data_source": provenance.get("source"), "summary": paragraph,
                     "study": {"citation": STUDY_CITATION, "doi": STUDY_DOI}, "tasks": headlines,
                     "explanations": {e["task"]: e["headline"] for e in explanations},
                     "skipped_checks": checks, "missing": missing, "leakage_crossing_clusters": leaks,
                     "audit": {k: audit[k] for k in ("checked", "usable", "quarantined", "duplicate_clusters")}
                     if audit else None, "git_commit": commit, "versions": versions, "mlflow": runs},
                    indent=2, default=str), summary_json_out)
    env = Environment(loader=PackageLoader("alldag", "templates"), autoescape=select_autoescape(["html"]))
    page = env.get_template("report.html.j2").render(
        synthetic=provenance.get("synthetic"), demo=provenance.get("demo"), provenance=provenance, audit=audit,
        audit_missing=_missing(audit_json), paragraph=paragraph, checks=checks, missing=missing,
        quarantine=_table_html(read_tsv(data_dir / "quarantine.tsv")) if audit else "",
        duplicates=_table_html(read_tsv(data_dir / "duplicates.tsv").head(200)) if audit else "", leaks=leaks,
        folds=int(table["fold"].max()) + 1, results=_table_html(table), summary=_table_html(summary),
        splits=splits, augmentation=_json(augmentation_json) or {}, previews={t: data_uri(p) for t, p in previews.items()},
        figures=figures, config=config, config_yaml=yaml.safe_dump(config, sort_keys=False),
        comparisons=comparisons, explanations=explanations, commit=commit, versions=versions, runs=runs,
        citations=CITATIONS, study_short=STUDY_SHORT)
    write_text_atomic(page, report_out)
    return page


def build_report_from_lists(provenance_json, audit_json, leakage_tsvs: dict[str, str], manifests: list[str],
                            augmentation_json, previews: dict[str, str], tasks: list[str], backbones: list[str],
                            folds: list[int], outputs: dict[str, list[str]], comparisons: dict[str, list[str]],
                            config: dict, report_out, table_out, summary_out, summary_json_out=None,
                            parent_run_file=None) -> str:
    """build_report with per-model outputs given as lists in expand(task, backbone, fold) order."""
    triples = [(t, b, f) for t in tasks for b in backbones for f in folds]
    models = [ModelResult(task=t, backbone=b, fold=f, **{kind: paths[i] for kind, paths in outputs.items()})
              for i, (t, b, f) in enumerate(triples)]
    split_manifests = {t: manifests[i * len(folds):(i + 1) * len(folds)] for i, t in enumerate(tasks)}
    sections = [comparison_section(t, *paths) for t, *paths in
                zip(tasks, comparisons["comparison"], comparisons["paired"], comparisons["figure"])]
    return build_report(provenance_json, audit_json, leakage_tsvs, split_manifests, augmentation_json, previews,
                        models, sections, config, report_out, table_out, summary_out, summary_json_out,
                        parent_run_file)


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def report_job(inputs: dict, params: dict, outputs: dict) -> str:
    """The report rule's work from its named inputs, params and outputs (also run for a partial report)."""
    tasks = params["tasks"]
    inputs = {k: _as_list(v) for k, v in inputs.items()}
    kinds = [f.name for f in fields(ModelResult) if f.name not in ("task", "backbone", "fold")]
    return build_report_from_lists(
        inputs["provenance"][0], inputs["audit"][0], dict(zip(tasks, inputs["leakage"])), inputs["manifests"],
        inputs["augmentation"][0], dict(zip(tasks, inputs["previews"])), tasks, params["backbones"],
        params["folds"], {k: inputs[k] for k in kinds},
        {"comparison": inputs["comparison"], "paired": inputs["paired"], "figure": inputs["comparison_figure"]},
        params["config"], outputs["report"], outputs["table"], outputs["summary"], outputs.get("summary_json"),
        params.get("parent_run_file"))
