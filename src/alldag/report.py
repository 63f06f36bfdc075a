"""The `report` stage: one self-contained HTML page with every result, figure and caveat."""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from alldag.compare import STUDY_ACCURACY
from alldag.data import read_tsv, write_tsv_atomic
from alldag.split import split_counts

METRIC_COLUMNS = ["accuracy", "balanced_accuracy", "macro_f1", "roc_auc"]
# results-table column -> (method, metric) of explanation_summary.tsv (means over the explained images)
EXPLANATION_COLUMNS = {"gradcam_lime_spearman": ("gradcam_vs_lime", "spearman"),
                       "gradcam_lime_top_iou": ("gradcam_vs_lime", "top_iou"),
                       "gradcam_mask_mass": ("gradcam", "mask_mass"), "lime_mask_mass": ("lime", "mask_mass"),
                       "uniform_mask_mass": ("uniform", "mask_mass")}
MAP_METRICS = ["mask_mass", "pointing", "background_mass", "corner_mass", "deletion_auc", "insertion_auc"]
CITATIONS = [
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


def data_uri(path: str | os.PathLike) -> str:
    """A PNG file as an inline data: URI (keeps the page self-contained)."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def results_table(models: list[ModelResult]) -> pd.DataFrame:
    """One row per model: test metrics, chance level, best epoch, explanation agreement, study's number."""
    rows = []
    for m in models:
        metrics = json.loads(Path(m.metrics).read_text())
        history = read_tsv(m.history)
        explained = read_tsv(m.explanation_summary).set_index(["method", "metric"])["mean"]
        rows.append({"task": m.task, "backbone": m.backbone, "fold": m.fold, **{k: metrics[k] for k in METRIC_COLUMNS},
                     "n_test": metrics["n_test"], "chance_accuracy": metrics["chance_accuracy"],
                     "epochs": len(history), "best_epoch": int(history.loc[history["val_loss"].idxmin(), "epoch"]),
                     **{column: explained.get(key, float("nan")) for column, key in EXPLANATION_COLUMNS.items()},
                     "study_accuracy": STUDY_ACCURACY.get((m.task, m.backbone), float("nan"))})
    return pd.DataFrame(rows)


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
    """One task's comparison: the table (with CIs, flags, study numbers), the paired tests and the plot."""
    table = read_tsv(comparison_tsv)
    columns = ["model", "not_better_than_colour_baseline", "n_test"] + [
        c for m in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")
        for c in (m, f"{m}_ci_low", f"{m}_ci_high", f"{m}_fold_sd")] + ["study_accuracy"]
    flagged = table.loc[table["not_better_than_colour_baseline"].astype(str) == "True", "model"].tolist()
    return {"task": task, "table": _table_html(table[columns]), "paired": _table_html(read_tsv(paired_tsv)),
            "figure": data_uri(figure_png), "flagged": flagged}


def explanation_tables(task: str, models: list[ModelResult]) -> dict:
    """One task's explanation tables across its models: per backbone and method the mean of each
    metric (averaged over folds), and per backbone and method pair the agreement."""
    frames = [read_tsv(m.explanation_summary).assign(backbone=m.backbone) for m in models if m.task == task]
    summary = pd.concat(frames).groupby(["backbone", "method", "metric"], sort=False)["mean"].mean().unstack("metric")
    is_pair = summary.index.get_level_values("method").str.contains("_vs_")
    methods, pairs = summary[~is_pair], summary[is_pair]
    return {"task": task, "methods": _table_html(methods[MAP_METRICS].reset_index()),
            "pairs": _table_html(pairs[["top_iou", "spearman"]].reset_index())}


def build_report(provenance_json, audit_json, leakage_tsvs: dict[str, str], split_manifests: dict[str, list[str]],
                 augmentation_json, previews: dict[str, str], models: list[ModelResult], comparisons: list[dict],
                 config_summary: dict, report_out, table_out, summary_out) -> str:
    """Render the report page, the per-fold results table and the across-fold summary TSVs; returns the HTML."""
    provenance = json.loads(Path(provenance_json).read_text())
    audit = json.loads(Path(audit_json).read_text())
    data_dir = Path(audit_json).parent
    table = results_table(models)
    summary = fold_summary(table)
    write_tsv_atomic(table, table_out)
    write_tsv_atomic(summary, summary_out)
    splits = {task: _table_html(split_counts(read_tsv(paths[0])).reset_index()) for task, paths in split_manifests.items()}
    leaks = {task: len(read_tsv(path)) for task, path in leakage_tsvs.items()}
    figures = []
    for m in (m for m in models if m.fold == 0):  # figures of the first fold; every fold is in the tables
        figures.append({"title": f"{m.task} / {m.backbone}",
                        "images": [(name, data_uri(p)) for name, p in (("Training curves", m.curves),
                                                                       ("Confusion matrix", m.confusion),
                                                                       ("ROC", m.roc),
                                                                       ("Calibration", m.reliability),
                                                                       ("Explanation gallery", m.explanation))],
                        "run_id": json.loads(Path(m.run).read_text())["run_id"],
                        "explanation_summary": _table_html(read_tsv(m.explanation_summary))})
    env = Environment(loader=PackageLoader("alldag", "templates"), autoescape=select_autoescape(["html"]))
    page = env.get_template("report.html.j2").render(
        synthetic=provenance["synthetic"], demo=provenance["demo"], provenance=provenance, audit=audit,
        quarantine=_table_html(read_tsv(data_dir / "quarantine.tsv")),
        duplicates=_table_html(read_tsv(data_dir / "duplicates.tsv").head(200)), leaks=leaks,
        folds=int(table["fold"].max()) + 1, results=_table_html(table), summary=_table_html(summary),
        splits=splits, augmentation=json.loads(Path(augmentation_json).read_text()),
        previews={t: data_uri(p) for t, p in previews.items()}, figures=figures, config=config_summary,
        comparisons=comparisons, explanations=[explanation_tables(t, models) for t in split_manifests],
        citations=CITATIONS)
    tmp = Path(report_out).with_name(f".{Path(report_out).name}.tmp")
    tmp.write_text(page)
    tmp.replace(report_out)
    return page


def build_report_from_lists(provenance_json, audit_json, leakage_tsvs: dict[str, str], manifests: list[str],
                            augmentation_json, previews: dict[str, str], tasks: list[str], backbones: list[str],
                            folds: list[int], outputs: dict[str, list[str]], comparisons: dict[str, list[str]],
                            config_summary: dict, report_out, table_out, summary_out) -> str:
    """build_report with per-model outputs given as lists in expand(task, backbone, fold) order."""
    triples = [(t, b, f) for t in tasks for b in backbones for f in folds]
    models = [ModelResult(task=t, backbone=b, fold=f, **{kind: paths[i] for kind, paths in outputs.items()})
              for i, (t, b, f) in enumerate(triples)]
    split_manifests = {t: manifests[i * len(folds):(i + 1) * len(folds)] for i, t in enumerate(tasks)}
    sections = [comparison_section(t, *paths) for t, *paths in
                zip(tasks, comparisons["comparison"], comparisons["paired"], comparisons["figure"])]
    return build_report(provenance_json, audit_json, leakage_tsvs, split_manifests, augmentation_json, previews,
                        models, sections, config_summary, report_out, table_out, summary_out)
