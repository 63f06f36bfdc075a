"""Where do a task's models look? A verdict from the measured explanations, in one readable sentence.

For every attribution method, over every explained image of every model of the task: each image's share
of attribution on the leukocytes, on the background and in the scale-bar corner as a ratio to chance (the
share over the region's share of the field, what a uniform map puts there: 1.0 = no better than chance),
summarised by the median and the mean of those per-image ratios (per task, per class and per mask source)
with intervals from a bootstrap that resamples IMAGES (every backbone explains the same images, so one
image's rows move together); the pointing game with the same interval; each faithfulness AUC minus a random
pixel order's; and how well the methods agree. Images without a usable leukocyte mask and maps without
positive attribution are counted and left out of the ratios, never scored as 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alldag.attribution_metrics import (
    BEATS_RANDOM_SIGN,
    CURVES,
    FILLS,
    NO_POSITIVE,
    image_bootstrap,
    no_positive_attribution,
    vs_random_column,
)
from alldag.masks import SOURCES
from alldag.methods import METHODS, method_title, pair_name, study_methods, study_pair

HEADLINE = "median"  # the statistic of per-image ratios the verdict rests on (the mean is reported beside it)
# every mask source but the cleaned twin and 'none' is a fallback, whatever the audit names it
FALLBACK_SOURCES = tuple(s for s in SOURCES if s not in ("segmented", "none"))
REGIONS = {  # region -> its per-image ratio to chance from a per-image row (share over the region's area)
    "leukocytes": lambda rows: rows["mask_mass"] / rows["mask_area"],
    "background": lambda rows: rows["background_mass"] / (1 - rows["mask_area"]),
    "corner": lambda rows: rows["corner_ratio"],  # a fixed square: its area needs no mask
}
LOOKS_AT = {
    "leukocytes": "they look at the leukocytes",
    "corner": "they look at the scale-bar corner, a shortcut",
    "background": "they mostly look at the background",
    "chance": "they look at the leukocytes no more than at the rest of the field",
}


def region_ratios(rows: pd.DataFrame, region: str) -> np.ndarray:
    """Each row's share of attribution in `region` over the region's share of the field (NaN: not scored)."""
    ratios = np.asarray(REGIONS[region](rows.astype({"mask_area": np.float64})), np.float64)
    return np.where(np.isfinite(ratios), ratios, np.nan)


def ratio_summary(ratios: np.ndarray, images: np.ndarray, seed: int = 0) -> dict:
    """Median and mean of per-image ratios, each with its image-bootstrap interval: n (rows), images,
    median, median_ci, mean, mean_ci."""
    out = {}
    for statistic in ("median", "mean"):
        found = image_bootstrap(ratios, images, statistic, seed=seed)
        out |= {"n": found["n"], "images": found["images"], statistic: found["value"], f"{statistic}_ci": found["ci"]}
    return out


def _grouped(rows: pd.DataFrame, column: str, seed: int) -> dict:
    """ratio_summary of the leukocyte ratios per value of `column` (class or mask source)."""
    if column not in rows:
        return {}
    return {
        str(key): ratio_summary(region_ratios(group, "leukocytes"), group["image_id"].to_numpy(), seed)
        for key, group in rows.groupby(column, sort=False)
    }


def faithfulness_vs_random(rows: pd.DataFrame, seed: int = 0) -> dict:
    """Per faithfulness column (vs_random_column) present: the mean difference from random pixel orders with
    its image-bootstrap interval, and beats_random (the interval lies on the better side of 0)."""
    out = {}
    for fill in FILLS:
        for curve in CURVES:
            column = vs_random_column(curve, fill)
            if column not in rows:
                continue
            found = image_bootstrap(rows[column].to_numpy(np.float64), rows["image_id"].to_numpy(), "mean", seed=seed)
            sign = BEATS_RANDOM_SIGN[curve]
            out[column] = {
                "n": found["n"],
                "images": found["images"],
                "mean": found["value"],
                "ci": found["ci"],
                "beats_random": bool(min(sign * found["ci"][0], sign * found["ci"][1]) > 0),
            }
    return out


def method_verdict(regions: dict) -> str:
    """'corner', 'leukocytes', 'background' or 'chance' from one method's region summaries (ratio_summary):
    the HEADLINE statistic of per-image ratios and its interval."""
    corner, cells = regions["corner"], regions["leukocytes"]
    ci = f"{HEADLINE}_ci"
    if corner[ci][0] > 1 and not corner[HEADLINE] < cells[HEADLINE]:
        return "corner"
    if cells[ci][0] > 1:
        return "leukocytes"
    if cells[ci][1] < 1:
        return "background"
    return "chance"


def _agreement(agreement: pd.DataFrame, seed: int = 0) -> dict:
    """Per method pair and agreement metric: n, mean and its image-bootstrap interval (rows without image ids
    are taken as one image each)."""
    out = {}
    for pair, rows in agreement.groupby("pair", sort=False):
        images = rows["image_id"].to_numpy() if "image_id" in rows else np.arange(len(rows))
        out[pair] = {}
        for metric in ("top_iou", "spearman"):
            values = rows[metric].to_numpy(np.float64) if metric in rows else np.array([])
            found = image_bootstrap(values, images[: len(values)], "mean", seed=seed)
            out[pair][metric] = {"n": found["n"], "mean": found["value"], "ci": found["ci"]}
    return out


def _strength(iou: float) -> str:
    return "barely" if not iou >= 0.2 else "weakly" if iou < 0.4 else "moderately" if iou < 0.6 else "strongly"


def mask_sources_by_class(per_image: pd.DataFrame) -> dict:
    """Per class, how many distinct explained images have each mask source."""
    if "label" not in per_image or "mask_source" not in per_image:
        return {}
    images = per_image.drop_duplicates("image_id")
    return {
        str(label): {s: int((group["mask_source"] == s).sum()) for s in SOURCES}
        for label, group in images.groupby("label", sort=False)
    }


def fallback_classes(by_class: dict) -> dict:
    """The classes whose masked images mostly (over half) have a fallback mask: {class: (fallback, masked)}."""
    out = {}
    for label, counts in by_class.items():
        masked = sum(n for s, n in counts.items() if s != "none")
        fallback = sum(counts.get(s, 0) for s in FALLBACK_SOURCES)
        if masked and fallback > masked / 2:
            out[label] = (fallback, masked)
    return out


def method_summary(rows: pd.DataFrame, seed: int = 0) -> dict:
    """One method's numbers over its per-image rows: each region's ratio_summary, the leukocytes per class and
    per mask source, the pointing game (mean, image bootstrap), faithfulness against random orders, how many
    maps had no positive attribution, and the verdict."""
    images = rows["image_id"].to_numpy()
    regions = {name: ratio_summary(region_ratios(rows, name), images, seed) for name in REGIONS}
    pointing = (
        image_bootstrap(rows["pointing"].to_numpy(np.float64), images, "mean", seed=seed) if "pointing" in rows else {}
    )
    faithful = faithfulness_vs_random(rows, seed)
    return {
        **regions,
        "leukocytes_by_class": _grouped(rows, "label", seed),
        "leukocytes_by_source": _grouped(rows, "mask_source", seed),
        "pointing": {"n": pointing["n"], "mean": pointing["value"], "ci": pointing["ci"]} if pointing else {},
        "faithfulness_vs_random": faithful,
        "beats_random": sum(f["beats_random"] for f in faithful.values()),
        NO_POSITIVE: int(no_positive_attribution(rows).sum()),
        "verdict": method_verdict(regions),
    }


def where_models_look(task: str, per_image: pd.DataFrame, agreement: pd.DataFrame | None = None, seed: int = 0) -> dict:
    """The verdict of one task: per method (method_summary) the leukocyte, background and corner ratios to
    chance (median and mean of per-image ratios with image-bootstrap intervals), per class and per mask
    source, pointing, faithfulness against random orders and a verdict; the agreement between methods, mask
    counts (per class: distinct images) and a one-sentence summary.

    per_image: the explanations.tsv rows of all the task's models (image_id, label, method, mask_source,
    mask_mass, background_mass, mask_area, corner_ratio, pointing, the *_vs_random columns); agreement:
    their agreement.tsv rows.
    """
    reference = per_image[per_image["method"] == "uniform"]  # one row per explained image and model
    sources = reference.get("mask_source", pd.Series(["none"] * len(reference)))
    by_class = mask_sources_by_class(per_image)
    out = {
        "task": task,
        "statistic": HEADLINE,
        "explained": int(len(reference)),
        "mask_sources": {s: int((sources == s).sum()) for s in SOURCES},
        "mask_sources_by_class": by_class,
        "fallback_classes": {
            label: {"fallback": f, "masked": m} for label, (f, m) in fallback_classes(by_class).items()
        },
        "not_scored_without_mask": int(pd.to_numeric(reference["mask_area"], errors="coerce").isna().sum()),
        "methods": {
            method: method_summary(per_image[per_image["method"] == method], seed)
            for method in METHODS
            if method in set(per_image["method"])
        },
    }
    out["agreement"] = _agreement(agreement, seed) if agreement is not None and len(agreement) else {}
    out["verdict"] = _overall(out["methods"])
    out["sentence"] = verdict_sentence(task, out)
    return out


def _overall(methods: dict) -> str:
    """The study methods' (alldag.methods: Method.study) common verdict; 'disagree' when they differ."""
    verdicts = {methods[m]["verdict"] for m in study_methods() if m in methods}
    return verdicts.pop() if len(verdicts) == 1 else "disagree" if verdicts else "unmeasured"


def _times(region: dict) -> str:
    return "–" if np.isnan(region[HEADLINE]) else f"{region[HEADLINE]:.1f}×"


def _interval(low: float, high: float, digits: int = 1) -> str:
    return "" if np.isnan(low) else f"{low:.{digits}f}–{high:.{digits}f}"


def _looks_clause(verdict: dict) -> str:
    methods, overall = verdict["methods"], verdict["verdict"]
    if overall == "disagree":
        return (
            ": the methods disagree ("
            + ", ".join(
                f"{method_title(m)}: {LOOKS_AT[methods[m]['verdict']].removeprefix('they ')}"
                for m in study_methods()
                if m in methods
            )
            + ")"
        )
    return f": {LOOKS_AT[overall]}" if overall in LOOKS_AT else ""


def _agreement_clause(agreement: dict) -> str:
    """'; Grad-CAM and LIME agree weakly (their top regions overlap 0.31 by IoU)': the study's two methods
    (alldag.methods.study_pair); '' when their agreement was not measured."""
    a, b = study_pair()
    pair = agreement.get(pair_name(a, b), {}).get("top_iou")
    if not (pair and pair["n"]):
        return ""
    return (
        f"; {method_title(a)} and {method_title(b)} agree {_strength(pair['mean'])} "
        f"(their top regions overlap {pair['mean']:.2f} by IoU)"
    )


def _random_clause(methods: dict) -> str:
    """'against a random pixel order Grad-CAM beats it on 4 of 4 deletion and insertion curves, ...'; '' when
    no faithfulness difference was measured."""
    counts = [
        f"{method_title(m)} on {v['beats_random']} of {len(v['faithfulness_vs_random'])}"
        for m, v in methods.items()
        if v.get("faithfulness_vs_random")
    ]
    return (
        f"; a random pixel order is beaten (deletion and insertion, both fills) by {', '.join(counts)}"
        if counts
        else ""
    )


def verdict_sentence(task: str, verdict: dict) -> str:
    """One sentence a haematologist can read, e.g. "four_class: by Grad-CAM the models put a median 1.2× chance
    on the leukocytes per image (0.9–1.5; mean 1.4×), 1.0× on the background and 0.8× in the scale-bar corner
    (LIME: 1.1×, ...): they look at the leukocytes no more than at the rest of the field; Grad-CAM and LIME
    agree weakly ...; a random pixel order is beaten ... by Grad-CAM on 4 of 4, ...; the Pro-B masks come
    mostly from the stain fallback ...". It names classes whose masks are mostly fallback masks, maps without
    positive attribution and images without a usable mask."""
    methods = verdict["methods"]
    if not methods:
        return f"{task}: where the models look was not measured (no explanation results)."
    lead = next((m for m in METHODS if m in methods), next(iter(methods)))  # the first registered method
    first = methods[lead]
    cells = first["leukocytes"]
    ci = _interval(*cells[f"{HEADLINE}_ci"])
    mean = "–" if np.isnan(cells["mean"]) else f"{cells['mean']:.1f}×"
    text = (
        f"{task}: by {method_title(lead)} the models put a {HEADLINE} {_times(cells)} chance on the leukocytes "
        f"per image ({f'{ci}; ' if ci else ''}mean {mean}), {_times(first['background'])} on the background and "
        f"{_times(first['corner'])} in the scale-bar corner"
    )
    others = [
        f"{method_title(m)}: {_times(v['leukocytes'])}, {_times(v['background'])}, {_times(v['corner'])}"
        for m, v in methods.items()
        if m != lead
    ]
    if others:
        text += f" ({'; '.join(others)})"
    text += _looks_clause(verdict)
    text += _agreement_clause(verdict["agreement"])
    text += _random_clause(methods)
    for label, counts in verdict.get("fallback_classes", {}).items():
        text += (
            f"; the {label} masks come mostly from the fallback ({counts['fallback']} of {counts['masked']} images), "
            "not the dataset's segmentations"
        )
    blank = [f"{method_title(m)} {v[NO_POSITIVE]}" for m, v in methods.items() if v.get(NO_POSITIVE)]
    if blank:
        text += f"; maps with no positive attribution (not scored): {', '.join(blank)}"
    if verdict["not_scored_without_mask"]:
        text += f"; {verdict['not_scored_without_mask']} image(s) without a usable leukocyte mask are not scored"
    return text + "."


def _cell(summary: dict, statistic: str = HEADLINE, digits: int = 2) -> str:
    value = summary.get(statistic, float("nan"))
    if value is None or np.isnan(value):
        return "–"
    ci = _interval(*summary.get(f"{statistic}_ci", summary.get("ci", [float("nan")] * 2)), digits=digits)
    return f"{value:.{digits}f}" + (f" ({ci})" if ci else "")


def verdict_table(verdict: dict) -> pd.DataFrame:
    """The verdict as a small table: one row per method, each region's median per-image ratio to chance with
    its image-bootstrap interval, the leukocytes' mean ratio, per class and per mask source, the pointing
    game, each faithfulness AUC minus a random order's, the counts and the verdict."""
    rows = []
    for method, v in verdict["methods"].items():
        row = {"method": method_title(method)}
        for region in REGIONS:
            row[f"{region} (× chance, {HEADLINE})"] = _cell(v[region])
        row["leukocytes (× chance, mean)"] = _cell(v["leukocytes"], "mean")
        for key, title in (("leukocytes_by_class", "class"), ("leukocytes_by_source", "mask source")):
            row[f"leukocytes by {title} ({HEADLINE}; mean)"] = ", ".join(
                f"{label} {_times(r)}; {r['mean']:.1f}×"
                for label, r in v.get(key, {}).items()
                if not np.isnan(r["mean"])
            )
        row["pointing"] = _cell(v["pointing"], "mean") if v.get("pointing") else "–"
        for column, found in v.get("faithfulness_vs_random", {}).items():
            row[column] = _cell(found, "mean", 3) + (" ✔" if found["beats_random"] else "")
        row["images"] = v["leukocytes"]["images"]
        row[NO_POSITIVE] = v[NO_POSITIVE]
        row["verdict"] = LOOKS_AT[v["verdict"]].removeprefix("they ")
        rows.append(row)
    return pd.DataFrame(rows)
