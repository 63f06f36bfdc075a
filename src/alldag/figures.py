"""Figures for the report and MLflow: the math lives elsewhere, these only draw."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from alldag.attribution_metrics import NO_POSITIVE  # noqa: E402
from alldag.methods import METHODS, method_title  # noqa: E402
from alldag.names import BASELINE_NAME  # noqa: E402


def training_curves_figure(history: pd.DataFrame, title: str):
    """Accuracy and loss per epoch, train vs validation (like the study's graphs)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key in zip(axes, ("accuracy", "loss")):
        ax.plot(history["epoch"], history[key], marker="o", label="train")
        ax.plot(history["epoch"], history[f"val_{key}"], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix_figure(matrix: np.ndarray, class_names: list[str], title: str):
    """Confusion matrix with counts (rows: true class, columns: predicted)."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 1.1 * len(class_names) + 1.5))
    sns.heatmap(
        matrix, annot=True, fmt="d", cmap="Blues", cbar=False, xticklabels=class_names, yticklabels=class_names, ax=ax
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str):
    """One ROC curve per class (one-vs-rest): curves maps class -> (fpr, tpr, auc)."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def reliability_figure(bins: list[dict], ece: float, title: str):
    """Reliability diagram: accuracy vs mean confidence per confidence bin, with bin counts."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    width = bins[0]["high"] - bins[0]["low"]
    acc = [b["accuracy"] if b["count"] else 0 for b in bins]
    ax.bar(centres, acc, width=width * 0.9, color="#4c72b0", edgecolor="black", label="accuracy")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect calibration")
    for c, a, b in zip(centres, acc, bins):
        if b["count"]:
            ax.text(c, a + 0.02, str(b["count"]), ha="center", fontsize=7)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.1)
    ax.set_title(f"{title} (ECE {ece:.3f})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def comparison_figure(summary: pd.DataFrame, metric: str, title: str):
    """Point estimates with bootstrap 95% intervals per model; the colour baseline in grey, study marks in red."""
    fig, ax = plt.subplots(figsize=(1.2 * len(summary) + 2.5, 3.6))
    x = np.arange(len(summary))
    colours = ["grey" if m == BASELINE_NAME else "#4c72b0" for m in summary["model"]]
    low = summary[metric] - summary[f"{metric}_ci_low"]
    high = summary[f"{metric}_ci_high"] - summary[metric]
    ax.errorbar(x, summary[metric], yerr=[low.clip(lower=0), high.clip(lower=0)], fmt="none", ecolor="black", capsize=4)
    ax.scatter(x, summary[metric], c=colours, s=50, zorder=3)
    if "study_accuracy" in summary and metric == "accuracy":
        ax.scatter(x, summary["study_accuracy"], marker="x", c="red", s=50, zorder=4, label="study (reported)")
        ax.legend(fontsize=7)
    ax.set_xticks(x, summary["model"], rotation=20)
    ax.set_ylabel(f"{metric} (95% bootstrap CI)")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def per_class_recall_figure(recall: pd.DataFrame, title: str):
    """Recall of each class per model (bars; mean over folds with their SD when there are several folds).

    recall: one row per model, fold and class, columns model, fold, class, recall.
    """
    import seaborn as sns

    n_models, n_classes = recall["model"].nunique(), recall["class"].nunique()
    fig, ax = plt.subplots(figsize=(min(9.0, 1.6 + 0.45 * n_models * n_classes), 3.4))
    sns.barplot(
        data=recall,
        x="class",
        y="recall",
        hue="model",
        errorbar="sd" if recall["fold"].nunique() > 1 else None,
        palette=_model_palette(recall["model"].unique()),
        ax=ax,
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall (test split)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def training_curves_overview(history: pd.DataFrame, title: str):
    """Accuracy and loss per epoch of every model of a task on one figure: colour = model, solid = train,
    dashed = validation (mean over folds, with their SD when there are several).

    history: columns model, fold, epoch, split ('train' | 'validation'), accuracy, loss.
    """
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    palette = _model_palette(history["model"].unique())
    errorbar = "sd" if history["fold"].nunique() > 1 else None
    for ax, key in zip(axes, ("accuracy", "loss")):
        sns.lineplot(
            data=history,
            x="epoch",
            y=key,
            hue="model",
            style="split",
            style_order=["train", "validation"],
            palette=palette,
            errorbar=errorbar,
            ax=ax,
            legend=key == "loss",
        )
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _model_palette(models) -> dict:
    """One colour per model, the colour baseline always grey."""
    import seaborn as sns

    cnns = [m for m in models if m != BASELINE_NAME]
    colours = dict(zip(cnns, sns.color_palette("tab10", max(1, len(cnns)))))
    return colours | ({BASELINE_NAME: (0.5, 0.5, 0.5)} if BASELINE_NAME in models else {})


def image_grid_figure(images: np.ndarray, titles: list[str], title: str, ncols: int = 6):
    """A grid of RGB images in [0, 255]."""
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.8 * ncols, 1.9 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t in zip(axes.flat, images, titles):
        ax.imshow(np.clip(img, 0, 255).astype(np.uint8))
        ax.set_title(t, fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def map_caption(metrics) -> str:
    """A gallery map's caption from its explanations.tsv row (mapping): its leukocyte and corner ratios to
    chance, "no positive attribution" for an all-zero map (LIME when no superpixel helps), "no mask" without
    a usable leukocyte mask."""
    if bool(metrics.get(NO_POSITIVE, False)):
        return "no positive attribution"
    cells, corner = float(metrics["mask_ratio"]), float(metrics["corner_ratio"])
    leukocytes = "no mask" if np.isnan(cells) else f"leukocytes {cells:.1f}x"
    return f"{leukocytes}, corner {corner:.1f}x chance"


def explanation_gallery(
    images: np.ndarray,
    maps: dict[str, np.ndarray],
    notes: dict[str, list[str]],
    segments: np.ndarray,
    masks: list,
    sources: list[str],
    corner: np.ndarray,
    titles: list[str],
    title: str,
):
    """One row per image: the image with the leukocyte mask outlined (green) and the scale-bar corner
    (orange), its mask's source in the caption, then each method's map over it (a method painted on
    superpixels, alldag.methods' LIME, with their boundaries).

    maps: method -> (n, H, W) in [0, 1]; notes: method -> one caption line per image; masks: bool (H, W)
    or None per image; sources: 'segmented', 'stain' or 'none' per image.
    """
    from matplotlib.colors import ListedColormap
    from skimage.segmentation import find_boundaries

    n, size = len(images), images.shape[1]
    ncols = len(maps) + 1
    fig, axes = plt.subplots(n, ncols, figsize=(2.2 * ncols, 2.3 * n + 0.5), squeeze=False, layout="constrained")
    corner_side = int(corner.sum() ** 0.5)
    for i in range(n):
        img = np.clip(images[i], 0, 255).astype(np.uint8)
        ax = axes[i, 0]
        ax.imshow(img)
        if masks[i] is not None:
            outline = np.ma.masked_where(~find_boundaries(masks[i], mode="inner"), np.ones((size, size)))
            ax.imshow(outline, cmap=ListedColormap(["lime"]), interpolation="nearest")
        ax.add_patch(
            plt.Rectangle(
                (size - corner_side - 0.5, size - corner_side - 0.5),
                corner_side,
                corner_side,
                fill=False,
                ec="orange",
                lw=1.2,
            )
        )
        ax.set_title(f"{titles[i]}\nmask: {sources[i]}", fontsize=7)
        for ax, (method, heat) in zip(axes[i, 1:], maps.items()):
            ax.imshow(img)
            ax.imshow(heat[i], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            if method in METHODS and METHODS[method].superpixels:
                edges = np.ma.masked_where(~find_boundaries(segments[i], mode="inner"), np.ones((size, size)))
                ax.imshow(edges, cmap="Greys", vmin=0, vmax=1, alpha=0.6)
            ax.set_title(f"{method_title(method)}\n{notes[method][i]}", fontsize=7)
        for ax in axes[i]:
            ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return fig


def save(fig, path, dpi: int = 110) -> None:
    """Save and close a figure."""
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
