"""The colour shortcut baseline: logistic regression on 15 global colour statistics of each image.

On the real dataset such a baseline reaches about 97 % (4-class) and 99 % (benign vs Pro-B) under a
random split: a CNN that does not beat it may have learned the stain, not the cells.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from alldag.colour_stats import FEATURE_NAMES, colour_features, features_of  # noqa: F401 (the baseline's features)
from alldag.jobs import ModelKey
from alldag.names import BASELINE_NAME
from alldag.split import SplitSettings
from alldag.tables import read_tsv, write_tsv_atomic

if TYPE_CHECKING:  # evaluate imports scikit-learn, which the train env (importing BASELINE_NAME) lacks
    from alldag.evaluate import EvaluationOutputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaselineSettings:
    """What a colour-baseline job needs besides its files."""

    key: ModelKey  # backbone is BASELINE_NAME
    classes: tuple[str, ...]
    seed: int
    image_level_split: SplitSettings | None = None  # the grouped split's settings without its groups
    groupings: tuple[tuple[str, SplitSettings], ...] = ()  # (name, split) of every grouping it is also fitted under

    @classmethod
    def from_params(cls, params, wildcards) -> BaselineSettings:
        """From the colour_baseline rule's params (classes, seed, split, groupings: name -> {grouping,
        block_size}) and wildcards."""
        split = SplitSettings(**dict(params.split), seed=params.seed, block_size=None, grouping="none")
        groupings = tuple((name, replace(split, **g)) for name, g in dict(params.groupings).items())
        return cls(
            ModelKey.from_wildcards(wildcards, backbone=BASELINE_NAME),
            tuple(params.classes),
            params.seed,
            split,
            groupings,
        )


@dataclass(frozen=True)
class BaselineOutputs:
    """The files a colour-baseline job writes: a model's evaluation files, its run record, and the test
    predictions under an image-level split and under every grouping (None: not made)."""

    evaluation: EvaluationOutputs
    run: str  # mlflow_run.json
    image_level: str | None = None  # predictions_image_level.tsv
    by_grouping: str | None = None  # predictions_by_grouping.tsv: a `grouping` column names the split's grouping


def fit_colour_baseline(features: np.ndarray, y: np.ndarray, seed: int):
    """Standardised multinomial logistic regression (balanced class weights) on colour features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=5000, class_weight="balanced", random_state=seed)
    )
    return model.fit(features, y)


def image_level_predictions(manifest, classes: list[str], split: SplitSettings, *, threads: int = 1) -> pd.DataFrame:
    """The baseline under another split of the same images (split.grouping 'none': image-level, no duplicate
    clusters or patient proxies kept together, as a naive split would do): test predictions of this fold, with
    that split's groups.

    split: folds, fractions and seed of the grouped split, reused so only the grouping differs.
    """
    from alldag.split import make_folds

    fold = int(manifest["fold"].iloc[0])
    rows = manifest.drop(columns=[c for c in ("group", "split", "fold") if c in manifest])
    if split.grouping == "none":  # image-level: duplicate clusters not kept together either
        rows = rows.drop(columns=[c for c in ("cluster",) if c in rows])
    naive = make_folds(rows, split, task=f"{split.grouping} split")[fold]
    fit_rows, test = naive[naive["split"] == "train"], naive[naive["split"] == "test"].reset_index(drop=True)
    what = f"colour baseline, {split.grouping} split"
    model = fit_colour_baseline(
        features_of(fit_rows["path"], threads, f"{what}: training images"), fit_rows["y"].to_numpy(), split.seed
    )
    proba = np.zeros((len(test), len(classes)))
    proba[:, model.classes_] = model.predict_proba(features_of(test["path"], threads, f"{what}: test images"))
    predicted = proba.argmax(axis=1)
    return test[["image_id", "label", "y", "group"]].assign(
        predicted=[classes[i] for i in predicted],
        correct=predicted == test["y"].to_numpy(),
        **{f"p_{c}": proba[:, i] for i, c in enumerate(classes)},
    )


def grouping_predictions(manifest, classes: list[str], groupings, *, threads: int = 1) -> pd.DataFrame:
    """The baseline's test predictions of this fold under every (name, split) of groupings, one table with a
    `grouping` column: how much the choice of patient proxy moves the colour shortcut's score."""
    from alldag import AlldagError

    tables = []
    for name, split in groupings:
        try:
            tables.append(image_level_predictions(manifest, classes, split, threads=threads).assign(grouping=name))
        except AlldagError as error:  # a grouping these images cannot be split by: a sensitivity row fewer
            log.warning("colour baseline under the %s grouping: not made (%s)", name, error)
    columns = ["image_id", "label", "y", "group", "predicted", "correct", "grouping"]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)


def run_colour_baseline(
    *, manifest, settings: BaselineSettings, tracking, outputs: BaselineOutputs, threads: int = 1
) -> dict:
    """Fit the baseline on the training images of the fold's split `manifest`, evaluate on its test images
    (files only: outputs.run holds the record the track rule logs like a model's).

    outputs.image_level (with settings.image_level_split): also fit it under an image-level split and write
    those test predictions there (image_level_predictions). threads: images read at once.
    """
    from alldag.evaluate import EvaluationSettings, write_evaluation
    from alldag.tracking import child_run_record, write_run_file

    key, classes, seed, label = settings.key, list(settings.classes), settings.seed, settings.key.label
    manifest = read_tsv(manifest)
    fit_rows = manifest[manifest["split"] == "train"]
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    model = fit_colour_baseline(
        features_of(fit_rows["path"], threads, f"colour baseline {label}: training images"),
        fit_rows["y"].to_numpy(),
        seed,
    )
    proba = np.zeros((len(test), len(classes)))
    proba[:, model.classes_] = model.predict_proba(
        features_of(test["path"], threads, f"colour baseline {label}: test images")
    )
    record = child_run_record(
        tracking,
        task=key.task,
        model=BASELINE_NAME,
        fold=str(key.fold),
        image_size="native",
        epochs=0,
        weights=None,
        seed=seed,
        params={
            "features": ",".join(FEATURE_NAMES),
            "n_fit": len(fit_rows),
            "model": "StandardScaler+LogisticRegression(balanced)",
        },
    )
    write_run_file(outputs.run, tracking, record)  # the track rule makes the MLflow run from this record
    result = write_evaluation(
        test, proba, settings=EvaluationSettings(key, settings.classes), outputs=outputs.evaluation
    )
    if outputs.by_grouping and settings.groupings:
        write_tsv_atomic(
            grouping_predictions(manifest, classes, settings.groupings, threads=threads), outputs.by_grouping
        )
    if outputs.image_level and settings.image_level_split:
        naive = image_level_predictions(manifest, classes, settings.image_level_split, threads=threads)
        write_tsv_atomic(naive, outputs.image_level)
        log.info(
            "%s under an image-level split: accuracy %.3f on %d test images", label, naive["correct"].mean(), len(naive)
        )
    return result
