"""The `report` stage: one self-contained HTML page with every result, figure and caveat."""

from __future__ import annotations

import base64
import html
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from jinja2 import Environment, PackageLoader, select_autoescape

from alldag.attribution_metrics import AUC_COLUMNS, VS_RANDOM_COLUMNS
from alldag.compare import VERDICT_COLUMNS
from alldag.headline import (
    grouping_headline,
    mlflow_runs,
    opening_paragraph,
    skipped_checks,
    task_headline,
)
from alldag.jobs import MODEL_OUTPUT_KINDS, ModelResult
from alldag.methods import pair_name, study_methods, study_pair
from alldag.metrics import METRICS
from alldag.names import BASELINE_NAME, HEADLINE_METRIC
from alldag.split import split_counts
from alldag.stats import EXACT_BELOW_GROUPS
from alldag.study import STUDY_CITATION, STUDY_DOI, STUDY_SHORT, study_accuracy
from alldag.tables import read_tsv, write_text_atomic, write_tsv_atomic
from alldag.verdicts import DISPLAY, VERDICT_COLUMN, VERDICTS, legend, verdict_of
from alldag.where_models_look import verdict_table, where_models_look

MISSING = "—"  # a number this run does not have (yet): shown, never guessed
MAP_METRICS = [
    "mask_ratio",
    "pointing",
    "background_ratio",
    "corner_ratio",
    "mask_mass",
    "corner_mass",
    *AUC_COLUMNS,
    *VS_RANDOM_COLUMNS,
]
# ReportInputs.comparisons' parts -> their kind in the report's input table
COMPARISON_KINDS = {
    "comparison": "comparison",
    "paired": "paired",
    "figure": "comparison_figure",
    "groupings": "grouping_sensitivity",
}
CITATIONS = [
    STUDY_CITATION + " (the study reproduced here)",
    "Aria M, Ghaderzadeh M, Bashash D, Abolghasemi H, Asadi F, Hosseini A. Acute Lymphoblastic Leukemia "
    "(ALL) image dataset. Kaggle (2021). DOI: 10.34740/KAGGLE/DSV/2175623.",
    "Ghaderzadeh M, Aria M, Hosseini A, Asadi F, Bashash D, Abolghasemi H. A fast and efficient CNN model "
    "for B-ALL diagnosis and its subtypes classification using peripheral blood smear images. "
    "Int J Intell Syst. 2022;37:5113-5133. doi:10.1002/int.22753.",
]


@dataclass(frozen=True)
class ReportInputs:
    """Every file the report reads, by what it is (ReportInputs.from_table builds it from the keyed table)."""

    provenance: str  # dataset.json
    audit: str  # audit.json
    quarantine: str  # quarantine.tsv: the images the audit set aside, with why
    duplicates: str  # duplicates.tsv: clusters of (near-)identical images
    tasks: tuple[str, ...]
    split_manifests: dict[str, list[str]]  # task -> split_manifest.tsv of each fold, in fold order
    leakage: dict[str, str]  # task -> leakage_check.tsv
    augmentation: str  # the first task's augmentation.json
    previews: dict[str, str]  # task -> augmentation_preview.png
    models: tuple[ModelResult, ...]  # every trained model's outputs
    comparisons: dict[str, dict[str, str]]  # task -> {"comparison", "paired", "figure"} -> path
    baseline_metrics: dict[str, list[str]]  # task -> the colour baseline's metrics.json of each fold
    stain_probes: dict[str, str] = field(default_factory=dict)  # task -> stain_probes.tsv (alldag.stress)
    external: dict[str, dict[str, str]] = field(default_factory=dict)  # set -> task -> external_validation.tsv
    images: str = ""  # images.tsv: every image's mask columns and mask file (the mask section; "" = none)
    masks: str = ""  # the folder of the audit's mask files (read through images.tsv's mask_file)

    @classmethod
    def from_table(cls, rows: list[dict]) -> ReportInputs:
        """From the keyed table of the report's inputs: rows with task, model, fold, kind and path (task,
        model or fold None where a file is not one task's, model's or fold's; alldag.plan.StudyPlan's
        report_table). Model rows of BASELINE_NAME are the colour baseline's metrics."""
        by_key = {(r["task"], r["model"], r["fold"], r["kind"]): str(r["path"]) for r in rows}
        tasks = tuple(dict.fromkeys(r["task"] for r in rows if r["task"] is not None))

        def per_task(kind: str) -> dict[str, str]:
            return {t: by_key[(t, None, None, kind)] for t in tasks if (t, None, None, kind) in by_key}

        def per_fold(kind: str, model: str | None = None) -> dict[str, list[str]]:
            return {
                t: [
                    path
                    for (task, m, _, k), path in sorted(by_key.items(), key=lambda item: item[0][2] or 0)
                    if task == t and m == model and k == kind
                ]
                for t in tasks
            }

        trained = {(t, m, f) for t, m, f, _ in by_key if m not in (None, BASELINE_NAME) and f is not None}
        names = dict.fromkeys(m for _, m, f, _ in by_key if m not in (None, BASELINE_NAME) and f is not None)
        folds = sorted({f for _, _, f in trained})
        models = [(t, m, f) for t in tasks for m in names for f in folds if (t, m, f) in trained]
        augmentation = per_task("augmentation")
        return cls(
            provenance=by_key[(None, None, None, "provenance")],
            audit=by_key[(None, None, None, "audit")],
            quarantine=by_key[(None, None, None, "quarantine")],
            duplicates=by_key[(None, None, None, "duplicates")],
            images=by_key.get((None, None, None, "images"), ""),
            masks=by_key.get((None, None, None, "masks"), ""),
            tasks=tasks,
            split_manifests=per_fold("manifest"),
            leakage=per_task("leakage"),
            augmentation=next(iter(augmentation.values()), ""),
            previews=per_task("preview"),
            models=tuple(
                ModelResult(t, m, f, **{k: by_key[(t, m, f, k)] for k in MODEL_OUTPUT_KINDS if (t, m, f, k) in by_key})
                for t, m, f in models
            ),
            comparisons={
                t: {
                    part: by_key[(t, None, None, kind)]
                    for part, kind in COMPARISON_KINDS.items()
                    if (t, None, None, kind) in by_key
                }
                for t in tasks
            },
            baseline_metrics=per_fold("metrics", BASELINE_NAME),
            stain_probes=per_task("stain_probes"),
            external={
                name: {t: p for (t, m, _, k), p in by_key.items() if k == "external" and m == name}
                for name in dict.fromkeys(m for _, m, _, k in by_key if k == "external")
            },
        )


@dataclass(frozen=True)
class ReportOutputs:
    """The files the report writes (paths)."""

    page: str  # report.html
    table: str  # results_table.tsv: one row per model and fold
    fold_means: str  # results_summary.tsv: mean and SD over folds per task and model
    headline: str | None = None  # summary.json: the page's numbers, machine-readable


def data_uri(path: str | os.PathLike) -> str | None:
    """A PNG file as an inline data: URI (keeps the page self-contained); None if the file is missing."""
    if not Path(path).is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def outlined_mask_uri(image_path, mask_path, size: int = 160) -> str | None:
    """A field with its leukocyte mask outlined in yellow, as an inline PNG data: URI; None without both files."""
    import io

    from PIL import Image
    from scipy import ndimage

    from alldag.masks import read_mask_file, read_rgb

    image, mask = read_rgb(image_path), read_mask_file(mask_path)
    if image is None or mask is None:
        return None
    outline = mask & ~ndimage.binary_erosion(mask, iterations=2)
    image = image.copy()
    image[outline] = (255, 220, 0)
    buffer = io.BytesIO()
    Image.fromarray(image).resize((size, size), Image.LANCZOS).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def mask_section(images_tsv) -> dict | None:
    """The report's leukocyte-mask quality: per class and mask source the images, median share of the field and
    median pieces (alldag.masks.mask_quality), and one field per class with its mask outlined (the first with a
    mask); None without the audit's image table or its mask columns."""
    from alldag.masks import mask_quality

    if not _exists(images_tsv):
        return None
    images = read_tsv(images_tsv)
    if "mask_file" not in images:
        return None
    images["leukocyte_fraction"] = pd.to_numeric(images["leukocyte_fraction"], errors="coerce")
    images["mask_pieces"] = pd.to_numeric(images["mask_pieces"], errors="coerce")
    examples = []
    for label, rows in images[images["mask_file"].astype(str) != ""].groupby("label", sort=False):
        row = rows.iloc[0]
        examples.append(
            {"label": label, "source": row["mask_source"], "uri": outlined_mask_uri(row["path"], row["mask_file"])}
        )
    return {"table": _table_html(mask_quality(images).round(3)), "examples": examples}


def _exists(*paths) -> bool:
    return all(Path(p).is_file() for p in paths)


def _json(path) -> dict | None:
    return json.loads(Path(path).read_text()) if _exists(path) else None


def explanation_columns() -> dict[str, tuple[str, str]]:
    """Results-table column -> (method, metric) of explanation_summary.tsv (means over the explained images):
    the agreement of the study's two methods (alldag.methods.study_pair), the leukocyte share of each study
    method and of the uniform map, and each study method's leukocyte ratio to chance."""
    a, b = study_pair()
    study = study_methods()
    return {
        f"{a}_{b}_spearman": (pair_name(a, b), "spearman"),
        f"{a}_{b}_top_iou": (pair_name(a, b), "top_iou"),
        **{f"{m}_mask_mass": (m, "mask_mass") for m in (*study, "uniform")},
        **{f"{m}_mask_ratio": (m, "mask_ratio") for m in study},
    }


def results_table(models: list[ModelResult]) -> pd.DataFrame:
    """One row per model: test metrics, chance level, best epoch, explanation agreement, study's number."""
    rows = []
    nan = float("nan")
    for m in models:
        metrics = _json(m.metrics) or {}
        history = read_tsv(m.history) if _exists(m.history) else pd.DataFrame({"val_loss": [], "epoch": []})
        explained = (
            _overall_rows(read_tsv(m.explanation_summary)).set_index(["method", "metric"])["mean"]
            if _exists(m.explanation_summary)
            else pd.Series(dtype=float)
        )
        status = (
            "ok"
            if _exists(m.metrics, m.history, m.explanation_summary)
            else "MISSING: "
            + ", ".join(Path(p).name for p in (m.history, m.metrics, m.explanation_summary) if not _exists(p))
        )
        rows.append(
            {
                "task": m.task,
                "backbone": m.backbone,
                "fold": m.fold,
                "status": status,
                **{k: metrics.get(k, nan) for k in METRICS},
                "n_test": metrics.get("n_test", nan),
                "chance_accuracy": metrics.get("chance_accuracy", nan),
                "epochs": len(history) if len(history) else nan,
                "best_epoch": _kept_epoch(history),
                **{column: explained.get(key, nan) for column, key in explanation_columns().items()},
                "study_accuracy": study_accuracy(m.task, m.backbone),
            }
        )
    return pd.DataFrame(rows)


def _kept_epoch(history: pd.DataFrame) -> float:
    """The epoch whose weights the model kept (history's `kept` column, train.mark_kept_epoch); NaN if unknown."""
    if "kept" not in history:
        return float("nan")
    kept = history.loc[history["kept"].astype(str).str.lower() == "true", "epoch"]
    return int(kept.iloc[0]) if len(kept) else float("nan")


def fold_means(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over folds of each registered test metric, per task and backbone."""
    grouped = table.groupby(["task", "backbone"], sort=False)
    out = grouped[list(METRICS)].agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out.insert(0, "folds", grouped.size())
    out["study_accuracy"] = grouped["study_accuracy"].first()
    return out.reset_index()


def sig3(value) -> str:
    """A number rounded for reading: 3 significant digits (0.950, 1.00, 0.0213, 12.5), whole counts as
    integers (40, 1234), '—' for a missing value. TSVs keep full precision; only pages use this."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return MISSING if value is None else str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if np.isnan(number):
        return MISSING
    if number.is_integer() and (isinstance(value, (int, np.integer)) or abs(number) >= 2):
        return str(int(number))
    if abs(number) >= 1000:
        return f"{number:.0f}"
    text = f"{number:#.3g}"
    return f"{number:.2e}" if "e" in text else text.rstrip(".")


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        return sig3(value)
    return html.escape(str(value))


def _table_html(frame: pd.DataFrame) -> str:
    """A table in a box that scrolls sideways when it is wider than the page."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in frame.itertuples(index=False)
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _cell(row: pd.Series, column: str):
    """row[column] as a float, None when the column is absent or the cell empty."""
    try:
        value = float(row.get(column))
    except (TypeError, ValueError):
        return None
    return None if np.isnan(value) else value


def _with_interval(value, low, high, signed: bool = False) -> str:
    """'0.950 (0.900–1.00)'; '+0.0500 (−0.0100 to +0.120)' for a signed difference; '—' when missing."""
    if value is None:
        return MISSING
    show = (lambda v: ("+" if v > 0 else "−" if v < 0 else "") + sig3(abs(v))) if signed else sig3
    if low is None or high is None:
        return show(value)
    return f"{show(value)} ({show(low)} to {show(high)})" if signed else f"{show(value)} ({show(low)}–{show(high)})"


def verdict_rows(comparison: pd.DataFrame) -> list[dict]:
    """The first screen's rows of one task, straight from its comparison table (nothing recomputed).

    Per model: balanced accuracy with its 95% interval, the difference to the colour baseline with its
    interval and the verdict (verdicts.VERDICTS, shown as verdicts.DISPLAY); columns a table does not have
    show '—'.
    """
    rows = []
    for _, row in comparison.iterrows():
        model = str(row["model"])
        baseline = model == BASELINE_NAME
        mark, css, _ = DISPLAY.get(verdict_of(row.get(VERDICT_COLUMN)), (MISSING, "verdict-missing", ""))
        rows.append(
            {
                "model": model,
                "balanced_accuracy": _with_interval(
                    *(_cell(row, f"{HEADLINE_METRIC}{k}") for k in ("", "_ci_low", "_ci_high"))
                ),
                "difference": "reference"
                if baseline
                else _with_interval(
                    *(_cell(row, f"diff_vs_colour_baseline{k}") for k in ("", "_ci_low", "_ci_high")), signed=True
                ),
                "verdict": "reference" if baseline else mark,
                "verdict_class": "verdict-reference" if baseline else css,
            }
        )
    return rows


def first_screen(tables: dict[str, pd.DataFrame | None], headline_tasks: dict) -> list[dict]:
    """Per task: the verdict rows, the test-set size when the table has it, and the one sentence on where
    the models look (summary.json's tasks.<task>.where_models_look.sentence, when present)."""
    screens = []
    for task, table in tables.items():
        look = (headline_tasks.get(task) or {}).get("where_models_look") or {}
        sentence = look.get("sentence") if isinstance(look, dict) else None
        if table is None:
            screens.append({"task": task, "rows": None, "sentence": sentence})
            continue
        first = table.iloc[0] if len(table) else pd.Series(dtype=object)
        sizes = [
            f"{sig3(_cell(first, c))} {name}"
            for c, name in (("n_test", "test images"), ("n_groups", "groups"))
            if _cell(first, c) is not None
        ]
        screens.append({"task": task, "rows": verdict_rows(table), "sizes": ", ".join(sizes), "sentence": sentence})
    return screens


def comparison_section(task: str, *, comparison, paired, figure, groupings=None) -> dict:
    """One task's comparison from its files comparison.tsv, paired_tests.tsv and comparison.png: the table
    (with CIs, flags, study numbers), the paired tests and the plot; grouping_sensitivity.tsv (groupings): the
    colour baseline under every split grouping, in the headline as `grouping_sensitivity`.

    A missing comparison (a model of the task failed) gives a section that says so.
    """
    if not _exists(comparison, paired):
        return {"task": task, "missing": str(comparison), "headline": {}}
    table, paired_table = read_tsv(comparison), read_tsv(paired)
    columns = (
        ["model", *VERDICT_COLUMNS, "n_test", "n_groups"]
        + [
            c
            for m in (HEADLINE_METRIC, *(m for m in METRICS if m != HEADLINE_METRIC))
            for c in (m, f"{m}_ci_low", f"{m}_ci_high", f"{m}_fold_sd")
        ]
        + [
            "study_accuracy",
            f"image_level_{HEADLINE_METRIC}",
            f"image_level_{HEADLINE_METRIC}_ci_low",
            f"image_level_{HEADLINE_METRIC}_ci_high",
            "image_level_n_test",
        ]
    )
    headline = task_headline(table, paired_table, task)
    sensitivity = read_tsv(groupings) if groupings and _exists(groupings) else None
    if sensitivity is not None:
        headline["grouping_sensitivity"] = grouping_headline(sensitivity)
    verdicts = {m: v[VERDICT_COLUMN] for m, v in headline["models"].items() if m != BASELINE_NAME}
    return {
        "task": task,
        "comparison_tsv": str(comparison),
        "table": _table_html(table[[c for c in columns if c in table]]),
        "paired": _table_html(paired_table),
        "groupings": _table_html(sensitivity) if sensitivity is not None else "",
        "figure": data_uri(figure),
        "headline": headline,
        "by_verdict": {word: [m for m, v in verdicts.items() if (v or VERDICTS[-1]) == word] for word in VERDICTS},
        "study": headline.get("study"),
    }


def figure_uri(fig) -> str:
    """A matplotlib figure as an inline PNG data: URI (the figure is closed)."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def per_class_recall(task: str, models: list[ModelResult], baseline_metrics: list[str]) -> pd.DataFrame:
    """Recall of each class on the test split, per model and fold of a task (the colour baseline's from
    its metrics.json files, one per fold); models whose metrics are missing are left out."""
    sources = [(m.backbone, m.fold, m.metrics) for m in models if m.task == task]
    sources += [(BASELINE_NAME, fold, path) for fold, path in enumerate(baseline_metrics)]
    rows = [
        {"model": model, "fold": fold, "class": cls, "recall": values["recall"]}
        for model, fold, path in sources
        for cls, values in ((_json(path) or {}).get("per_class") or {}).items()
    ]
    return pd.DataFrame(rows, columns=["model", "fold", "class", "recall"])


def training_histories(task: str, models: list[ModelResult]) -> pd.DataFrame:
    """Every model's per-epoch accuracy and loss of a task, train and validation as rows of `split`."""
    frames = []
    for m in (m for m in models if m.task == task and _exists(m.history)):
        history = read_tsv(m.history)
        for split, prefix in (("train", ""), ("validation", "val_")):
            frames.append(
                pd.DataFrame(
                    {
                        "model": m.backbone,
                        "fold": m.fold,
                        "epoch": history["epoch"],
                        "split": split,
                        "accuracy": history[f"{prefix}accuracy"],
                        "loss": history[f"{prefix}loss"],
                    }
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def task_figures(task: str, models: list[ModelResult], baseline_metrics: list[str]) -> dict:
    """The per-class recall figure and the training-curves overview of a task, as data: URIs (None when
    no model of the task has the numbers)."""
    from alldag.figures import per_class_recall_figure, training_curves_overview

    recall = per_class_recall(task, models, baseline_metrics)
    history = training_histories(task, models)
    return {
        "task": task,
        "recall": figure_uri(per_class_recall_figure(recall, f"{task}: recall per class")) if len(recall) else None,
        "curves": figure_uri(training_curves_overview(history, f"{task}: training curves of every model"))
        if len(history)
        else None,
    }


def _missing(path) -> str:
    return f"{path} is missing: the job that makes it failed or did not run (see logs/)"


def _overall_rows(means: pd.DataFrame) -> pd.DataFrame:
    """An explanation-means table's rows over every class (per-class rows have the class as `label`)."""
    return means[means["label"] == "all"] if "label" in means else means


def where_section(task: str, models: list[ModelResult]) -> dict | None:
    """where_models_look over every explained image of the task's models; None without per-image tables."""
    ours = [m for m in models if m.task == task and m.explanations and _exists(m.explanations)]
    if not ours:
        return None

    def numeric(path):  # empty cells are missing values (no mask), every other cell as written
        return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])

    per_image = pd.concat([numeric(m.explanations).assign(backbone=m.backbone, fold=m.fold) for m in ours])
    pairs = [numeric(m.agreement) for m in ours if m.agreement and _exists(m.agreement)]
    verdict = where_models_look(task, per_image, pd.concat(pairs) if pairs else None)
    return {"verdict": verdict, "table": _table_html(verdict_table(verdict))}


def explanation_tables(task: str, models: list[ModelResult]) -> dict:
    """One task's explanation tables across its models: per backbone and method the mean of each
    metric (averaged over folds), per backbone and method pair the agreement, a headline (medians
    over models of the study pair's agreement and of each method's corner and mask shares) and the
    "where do the models look" verdict (`where`, see where_section)."""
    frames = [
        _overall_rows(read_tsv(m.explanation_summary)).assign(backbone=m.backbone)
        for m in models
        if m.task == task and _exists(m.explanation_summary)
    ]
    where = where_section(task, models)
    if not frames:
        return {"task": task, "methods": None, "pairs": None, "headline": {}, "where": where}
    frame = pd.concat(frames)
    # a metric no image could give (e.g. agreement of one image) is an empty cell: a missing number, not text
    frame["mean"] = pd.to_numeric(frame["mean"], errors="coerce")
    means = frame.groupby(["backbone", "method", "metric"], sort=False)["mean"].mean().unstack("metric")
    is_pair = means.index.get_level_values("method").str.contains("_vs_")
    methods, pairs = means[~is_pair], means[is_pair]
    by_method = methods.groupby(level="method")
    pair = pair_name(*study_pair())
    headline = {
        f"{pair}_spearman": _median(pairs, pair, "spearman"),
        f"{pair}_top_iou": _median(pairs, pair, "top_iou"),
        **{
            f"{method}_{metric}": float(values[metric].median())
            for method, values in by_method
            for metric in ("mask_mass", "corner_mass")
            if metric in values
        },
    }
    if where:
        headline["where_models_look"] = where["verdict"]["sentence"]
    return {
        "task": task,
        "methods": _table_html(methods[[c for c in MAP_METRICS if c in methods]].reset_index()),
        "pairs": _table_html(pairs[["top_iou", "spearman"]].reset_index()),
        "headline": headline,
        "where": where,
    }


def stress_section(inputs: ReportInputs) -> dict:
    """The stress tests' part of the page and of summary.json: per task the stain-probe table and sentence,
    per external set and task its table and sentence (alldag.stress); a missing file is marked, not guessed."""
    from alldag.stress import external_headline, external_sentence, stain_headline, stain_sentence

    out = {"stain": [], "external": [], "sentences": [], "stain_headlines": {}, "external_headlines": {}}
    for task, path in inputs.stain_probes.items():
        if not _exists(path):
            out["stain"].append({"task": task, "missing": _missing(path)})
            continue
        table = read_tsv(path)
        out["stain_headlines"][task] = headline = stain_headline(table)
        out["stain"].append({"task": task, "table": _table_html(table)})
        out["sentences"].append(stain_sentence(task, headline))
    for name, by_task in inputs.external.items():
        for task, path in by_task.items():
            if not _exists(path):
                out["external"].append({"name": name, "task": task, "missing": _missing(path)})
                continue
            table = read_tsv(path)
            headline = external_headline(table)
            out["external_headlines"].setdefault(name, {})[task] = headline
            out["external"].append({"name": name, "task": task, "table": _table_html(table)})
            out["sentences"].append(external_sentence(name, task, headline))
    out["sentences"] = [s for s in out["sentences"] if s]
    return out


def _median(frame: pd.DataFrame, method: str, metric: str) -> float | None:
    rows = frame[frame.index.get_level_values("method") == method]
    return float(rows[metric].median()) if len(rows) and metric in rows else None


def _provenance(path) -> dict:
    """The dataset's provenance, or what the report says of it when the file is missing."""
    return _json(path) or {
        "synthetic": False,
        "demo": False,
        "source": "unknown",
        "reason": _missing(path),
        "counts": {},
    }


def _missing_files(models: list[ModelResult], comparisons: list[dict]) -> list[str]:
    """Every per-model file and comparison the report reads that is not there (a failed job)."""
    kinds = ("metrics", "history", "explanation_summary", "curves", "confusion", "roc", "reliability", "explanation")
    absent = {str(p) for m in models for p in [*(getattr(m, k) for k in kinds), m.run] if not _exists(p)}
    return sorted(absent | {c["missing"] for c in comparisons if c.get("missing")})


def _model_figures(models: list[ModelResult]) -> list[dict]:
    """The figures of each model's first fold (every fold is in the tables), with its MLflow run's record id."""
    shown = [
        ("Training curves", "curves"),
        ("Confusion matrix", "confusion"),
        ("ROC", "roc"),
        ("Calibration", "reliability"),
        ("Explanation gallery", "explanation"),
    ]
    return [
        {
            "title": f"{m.task} / {m.backbone}",
            "images": [(name, data_uri(getattr(m, k)), _missing(getattr(m, k))) for name, k in shown],
            "record": (_json(m.run) or {}).get("record", "missing"),
            "explanation_summary": _table_html(read_tsv(m.explanation_summary))
            if _exists(m.explanation_summary)
            else None,
            "explanation_missing": _missing(m.explanation_summary),
        }
        for m in models
        if m.fold == 0
    ]


def _study_facts(inputs: ReportInputs, parent_run_file) -> dict:
    """What the page and summary.json both say: tables, comparisons, headlines, checks, runs, the opening
    paragraph (with the stress tests' sentences)."""
    from alldag.provenance import git_commit, package_versions

    models = list(inputs.models)
    comparisons = [comparison_section(t, **inputs.comparisons[t]) for t in inputs.tasks]
    provenance, audit = _provenance(inputs.provenance), _json(inputs.audit)
    table = results_table(models)
    missing = _missing_files(models, comparisons)
    leaks = {task: len(read_tsv(path)) if _exists(path) else None for task, path in inputs.leakage.items()}
    headlines = {c["task"]: c["headline"] for c in comparisons}
    explanations = [explanation_tables(t, models) for t in inputs.tasks]
    for e in explanations:
        if e["where"]:
            headlines.setdefault(e["task"], {})["where_models_look"] = e["where"]["verdict"]
    stress = stress_section(inputs)
    paragraph = opening_paragraph(
        headlines,
        audit=audit,
        leaks=leaks,
        synthetic=bool(provenance.get("synthetic")),
        missing=missing,
        explanations={e["task"]: e["headline"] for e in explanations},
    )
    return {
        "models": models,
        "comparisons": comparisons,
        "provenance": provenance,
        "audit": audit,
        "table": table,
        "means": fold_means(table),
        "missing": missing,
        "leaks": leaks,
        "headlines": headlines,
        "explanations": explanations,
        "stress": stress,
        "paragraph": " ".join([paragraph, *stress["sentences"]]),
        "checks": skipped_checks(provenance, audit),
        "runs": mlflow_runs({f"{m.task}/{m.backbone}/fold{m.fold}": m.run for m in models}, parent_run_file),
        "commit": git_commit(),
        "versions": package_versions(),
    }


def _summary_doc(f: dict) -> dict:
    """summary.json: the headline numbers and sentences of the study, and where they came from."""
    provenance, audit = f["provenance"], f["audit"]
    return {
        "synthetic": bool(provenance.get("synthetic")),
        "demo": bool(provenance.get("demo")),
        "data_source": provenance.get("source"),
        "summary": f["paragraph"],
        "study": {"citation": STUDY_CITATION, "doi": STUDY_DOI},
        "tasks": f["headlines"],
        "explanations": {e["task"]: e["headline"] for e in f["explanations"]},
        "stain_probes": f["stress"]["stain_headlines"],
        "external": f["stress"]["external_headlines"],
        "skipped_checks": f["checks"],
        "missing": f["missing"],
        "leakage_crossing_clusters": f["leaks"],
        "audit": {k: audit[k] for k in ("checked", "usable", "quarantined", "duplicate_clusters")} if audit else None,
        "git_commit": f["commit"],
        "versions": f["versions"],
        "mlflow": f["runs"],
    }


def _render_page(f: dict, tasks_headline: dict, inputs: ReportInputs, config: dict) -> str:
    """The report page (templates/report.html.j2) of the study's facts `f`."""
    provenance, audit, table, comparisons = f["provenance"], f["audit"], f["table"], f["comparisons"]
    verdicts = first_screen(
        {c["task"]: read_tsv(c["comparison_tsv"]) if c.get("comparison_tsv") else None for c in comparisons},
        tasks_headline,
    )
    splits = {
        task: _table_html(split_counts(read_tsv(paths[0])).reset_index()) if _exists(paths[0]) else None
        for task, paths in inputs.split_manifests.items()
    }
    env = Environment(loader=PackageLoader("alldag", "templates"), autoescape=select_autoescape(["html"]))
    return env.get_template("report.html.j2").render(
        synthetic=provenance.get("synthetic"),
        demo=provenance.get("demo"),
        provenance=provenance,
        audit=audit,
        audit_missing=_missing(inputs.audit),
        paragraph=f["paragraph"],
        checks=f["checks"],
        missing=f["missing"],
        quarantine=_table_html(read_tsv(inputs.quarantine)) if audit else "",
        duplicates=_table_html(read_tsv(inputs.duplicates).head(200)) if audit else "",
        masks=mask_section(inputs.images) if audit and inputs.images else None,
        leaks=f["leaks"],
        folds=int(table["fold"].max()) + 1,
        results=_table_html(table),
        fold_means=_table_html(f["means"]),
        splits=splits,
        augmentation=_json(inputs.augmentation) or {},
        previews={t: data_uri(p) for t, p in inputs.previews.items()},
        figures=_model_figures(f["models"]),
        config=config,
        config_yaml=yaml.safe_dump(config, sort_keys=False),
        comparisons=comparisons,
        explanations=f["explanations"],
        commit=f["commit"],
        versions=f["versions"],
        runs=f["runs"],
        citations=CITATIONS,
        verdicts=verdicts,
        verdict_legend=legend((config.get("evaluate") or {}).get("equivalence_margin")),
        verdict_marks={word: DISPLAY[word][0] for word in VERDICTS},
        exact_below_groups=EXACT_BELOW_GROUPS,
        task_figures=[task_figures(t, f["models"], inputs.baseline_metrics.get(t, [])) for t in inputs.tasks],
        study_short=STUDY_SHORT,
        stress=f["stress"],
    )


def build_report(*, inputs: ReportInputs, config: dict, outputs: ReportOutputs, parent_run_file=None) -> str:
    """Render the report page, the per-fold results table, the across-fold means TSV and summary.json.

    Missing inputs (a job failed under --keep-going) are marked in place, listed at the top and in
    summary.json's `missing`. config: the run's configuration, shown on the page. Returns the HTML.
    """
    facts = _study_facts(inputs, parent_run_file)
    write_tsv_atomic(facts["table"], outputs.table)
    write_tsv_atomic(facts["means"], outputs.fold_means)
    summary = _summary_doc(facts)
    if outputs.headline:
        write_text_atomic(json.dumps(summary, indent=2, default=str), outputs.headline)
    page = _render_page(facts, summary["tasks"], inputs, config)
    write_text_atomic(page, outputs.page)
    return page


def write_partial_report(*, rows: list[dict], config: dict, outputs: dict, parent_run_file: str) -> bool:
    """The report of a run that failed with --keep-going: every missing result is marked in place.

    rows: the report's keyed input table (ReportInputs.from_table); outputs: ReportOutputs' fields by name.
    Never raises (the run already failed): says on stderr what it wrote, or why there is no report.
    Returns whether the report was written."""
    try:
        build_report(
            inputs=ReportInputs.from_table(rows),
            config=config,
            outputs=ReportOutputs(**outputs),
            parent_run_file=parent_run_file,
        )
    except Exception as exc:  # the run already failed; say why the report is absent too
        print(f"alldag: error: no partial report ({exc})", file=sys.stderr)
        return False
    print(f"alldag: wrote a partial report marking the missing results: {outputs['page']}", file=sys.stderr)
    return True
