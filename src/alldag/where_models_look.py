"""Where do a task's models look? A verdict from the measured explanations, in one readable sentence.

For every attribution method, over every explained image of every model of the task: the share of
attribution on the leukocytes, on the background and in the scale-bar corner, each as a ratio to
chance (the region's share of the field, what a uniform map puts there: 1.0 = no better than
chance), pooled as mean share / mean area with a bootstrap interval over images; plus how well the
methods agree. Images without a usable leukocyte mask are counted and left out of the leukocyte and
background ratios, never scored as 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alldag.attribution_metrics import BOOTSTRAP_RESAMPLES, bootstrap_mean_ci
from alldag.masks import SOURCES

METHOD_NAMES = {"gradcam": "Grad-CAM", "gradcam_pp": "Grad-CAM++", "lime": "LIME"}
STUDY_METHODS = ("gradcam", "lime")  # the study's two methods: the verdict's conclusion rests on them
REGIONS = {
    "leukocytes": ("mask_mass", "mask_area"),
    "background": ("background_mass", "background_area"),
    "corner": ("corner_mass", "corner_area"),
}
LOOKS_AT = {
    "leukocytes": "they look at the leukocytes",
    "corner": "they look at the scale-bar corner, a shortcut",
    "background": "they mostly look at the background",
    "chance": "they look at the leukocytes no more than at the rest of the field",
}


def pooled_ratio(mass: np.ndarray, area: np.ndarray, seed: int = 0, confidence: float = 0.95) -> dict:
    """Mean share over mean area (1.0 = chance) and its percentile bootstrap interval over the images
    (rows with a NaN share or area left out); NaNs when no row is left, the interval NaN for one."""
    ok = ~(np.isnan(mass) | np.isnan(area))
    mass, area = mass[ok], area[ok]
    nan = float("nan")
    if len(mass) == 0 or area.sum() <= 0:
        return {"n": int(len(mass)), "ratio": nan, "ci": [nan, nan], "share": nan}
    out = {
        "n": int(len(mass)),
        "ratio": float(mass.mean() / area.mean()),
        "share": float(mass.mean()),
        "ci": [nan, nan],
    }
    if len(mass) > 1:
        picks = np.random.default_rng(seed).integers(0, len(mass), (BOOTSTRAP_RESAMPLES, len(mass)))
        ratios = mass[picks].mean(axis=1) / np.maximum(area[picks].mean(axis=1), 1e-12)
        tail = (1 - confidence) / 2
        out["ci"] = [float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1 - tail))]
    return out


def method_verdict(regions: dict) -> str:
    """'corner', 'leukocytes', 'background' or 'chance' from one method's region ratios and intervals."""
    corner, cells = regions["corner"], regions["leukocytes"]
    if corner["ci"][0] > 1 and not corner["ratio"] < cells["ratio"]:
        return "corner"
    if cells["ci"][0] > 1:
        return "leukocytes"
    if cells["ci"][1] < 1:
        return "background"
    return "chance"


def _agreement(agreement: pd.DataFrame) -> dict:
    out = {}
    for pair, rows in agreement.groupby("pair", sort=False):
        out[pair] = {}
        for metric in ("top_iou", "spearman"):
            values = rows[metric].dropna().to_numpy(np.float64) if metric in rows else np.array([])
            low, high = bootstrap_mean_ci(values)
            out[pair][metric] = {
                "n": int(len(values)),
                "mean": float(values.mean()) if len(values) else float("nan"),
                "ci": [low, high],
            }
    return out


def _strength(iou: float) -> str:
    return "barely" if not iou >= 0.2 else "weakly" if iou < 0.4 else "moderately" if iou < 0.6 else "strongly"


def where_models_look(task: str, per_image: pd.DataFrame, agreement: pd.DataFrame | None = None, seed: int = 0) -> dict:
    """The verdict of one task: per method the leukocyte, background and corner ratios to chance with
    95 % intervals, the leukocyte ratio per class, and a verdict; the agreement between methods, mask
    counts and a one-sentence summary.

    per_image: the explanations.tsv rows of all the task's models (method, mask_mass, background_mass,
    corner_mass, mask_area, corner_ratio, mask_source, image_id); agreement: their agreement.tsv rows.
    """
    per_image = per_image.assign(
        background_area=1 - per_image["mask_area"], corner_area=per_image["corner_mass"] / per_image["corner_ratio"]
    )
    reference = per_image[per_image["method"] == "uniform"]  # one row per explained image and model
    sources = reference.get("mask_source", pd.Series(["none"] * len(reference)))
    out = {
        "task": task,
        "explained": int(len(reference)),
        "mask_sources": {s: int((sources == s).sum()) for s in SOURCES},
        "not_scored_without_mask": int(reference["mask_area"].isna().sum()),
        "methods": {},
    }
    for method in (m for m in METHOD_NAMES if m in set(per_image["method"])):
        rows = per_image[per_image["method"] == method]
        regions = {
            name: pooled_ratio(rows[mass].to_numpy(np.float64), rows[area].to_numpy(np.float64), seed)
            for name, (mass, area) in REGIONS.items()
        }
        by_class = (
            {
                str(label): pooled_ratio(
                    group["mask_mass"].to_numpy(np.float64), group["mask_area"].to_numpy(np.float64), seed
                )
                for label, group in rows.groupby("label", sort=False)
            }
            if "label" in rows
            else {}
        )
        out["methods"][method] = {**regions, "leukocytes_by_class": by_class, "verdict": method_verdict(regions)}
    out["agreement"] = _agreement(agreement) if agreement is not None and len(agreement) else {}
    out["verdict"] = _overall(out["methods"])
    out["sentence"] = verdict_sentence(task, out)
    return out


def _overall(methods: dict) -> str:
    """The study methods' common verdict; 'disagree' when they differ."""
    verdicts = {methods[m]["verdict"] for m in STUDY_METHODS if m in methods}
    return verdicts.pop() if len(verdicts) == 1 else "disagree" if verdicts else "unmeasured"


def _times(region: dict) -> str:
    return "–" if np.isnan(region["ratio"]) else f"{region['ratio']:.1f}×"


def verdict_sentence(task: str, verdict: dict) -> str:
    """One sentence a haematologist can read, e.g. "four_class: by Grad-CAM the models put 1.2× chance on
    the leukocytes (0.9–1.5), 1.0× on the background and 0.8× in the scale-bar corner (LIME 1.1×, ...):
    they look at the leukocytes no more than at the rest of the field; Grad-CAM and LIME agree weakly ..."."""
    methods = verdict["methods"]
    if not methods:
        return f"{task}: where the models look was not measured (no explanation results)."
    lead = "gradcam" if "gradcam" in methods else next(iter(methods))
    first = methods[lead]
    cells = first["leukocytes"]
    ci = "" if np.isnan(cells["ci"][0]) else f" ({cells['ci'][0]:.1f}–{cells['ci'][1]:.1f})"
    text = (
        f"{task}: by {METHOD_NAMES[lead]} the models put {_times(cells)} chance on the leukocytes{ci}, "
        f"{_times(first['background'])} on the background and {_times(first['corner'])} in the scale-bar corner"
    )
    others = [
        f"{METHOD_NAMES[m]}: {_times(v['leukocytes'])}, {_times(v['background'])}, {_times(v['corner'])}"
        for m, v in methods.items()
        if m != lead
    ]
    if others:
        text += f" ({'; '.join(others)})"
    overall = verdict["verdict"]
    if overall == "disagree":
        text += (
            ": the methods disagree ("
            + ", ".join(
                f"{METHOD_NAMES[m]}: {LOOKS_AT[methods[m]['verdict']].removeprefix('they ')}"
                for m in STUDY_METHODS
                if m in methods
            )
            + ")"
        )
    elif overall in LOOKS_AT:
        text += f": {LOOKS_AT[overall]}"
    pair = verdict["agreement"].get("gradcam_vs_lime", {}).get("top_iou")
    if pair and pair["n"]:
        text += (
            f"; Grad-CAM and LIME agree {_strength(pair['mean'])} (their top regions overlap {pair['mean']:.2f} by IoU)"
        )
    if verdict["not_scored_without_mask"]:
        text += f"; {verdict['not_scored_without_mask']} image(s) without a usable leukocyte mask are not scored"
    return text + "."


def verdict_table(verdict: dict) -> pd.DataFrame:
    """The verdict as a small table: one row per method, each region's ratio to chance with its interval."""
    rows = []
    for method, v in verdict["methods"].items():
        row = {"method": METHOD_NAMES[method]}
        for region in REGIONS:
            r = v[region]
            row[f"{region} (× chance)"] = (
                "–"
                if np.isnan(r["ratio"])
                else f"{r['ratio']:.2f}" + ("" if np.isnan(r["ci"][0]) else f" ({r['ci'][0]:.2f}–{r['ci'][1]:.2f})")
            )
        row["leukocytes by class (× chance)"] = ", ".join(
            f"{label} {_times(r)}" for label, r in v.get("leukocytes_by_class", {}).items()
        )
        row["images"] = v["leukocytes"]["n"]
        row["verdict"] = LOOKS_AT[v["verdict"]].removeprefix("they ")
        rows.append(row)
    return pd.DataFrame(rows)
