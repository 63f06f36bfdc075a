"""The MLflow model registry: each task's best model (the report's headline) as `alldag-<task>`, and the
dataset provenance on the study's parent run.

The best model gets alias `champion` only when its verdict against the colour baseline is `beats`; otherwise
(equivalent, worse or undetermined) alias `challenger`, never `champion`, with a description that says why.
A re-run registers a new version only when the best model changed (another backbone, fold or training run);
otherwise it refreshes the tags.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from alldag.names import BASELINE_NAME, HEADLINE_METRIC
from alldag.tracking import DATA_SOURCE_TAG, DATA_VERIFIED_TAG, DEMO_TAG, SYNTHETIC_TAG, read_run_file
from alldag.verdicts import BEATS, REASON_COLUMN, UNDETERMINED, VERDICT_COLUMN, best_model, verdict_of

log = logging.getLogger(__name__)
PREFIX = "alldag-"
CHAMPION, CHALLENGER = "champion", "challenger"
METRIC = HEADLINE_METRIC  # the champion is picked, and its version tagged, by the headline metric
SELECT_FOLD_BY = f"test_{METRIC}"  # the headline's model has one trained model per fold: register the best fold


def registered_name(task: str) -> str:
    return f"{PREFIX}{task}"


def verdict(row: pd.Series) -> str:
    """The model's verdict against the colour baseline (verdicts.VERDICTS); undetermined when missing."""
    return verdict_of(row.get(VERDICT_COLUMN)) or UNDETERMINED


def _interval(row: pd.Series) -> str:
    return f"{row[METRIC]:.3f} [{row[f'{METRIC}_ci_low']:.3f}, {row[f'{METRIC}_ci_high']:.3f}]"


def describe(task: str, backbone: str, fold: int, row: pd.Series, baseline: pd.Series | None, beats: str) -> str:
    """The version's description: what it is, its balanced accuracy with 95% CI, and why it is (not) champion."""
    what = f"{backbone} (fold {fold}) on {task}: balanced accuracy {_interval(row)} (95% bootstrap CI)"
    base = f"the colour baseline's {_interval(baseline)}" if baseline is not None else "the colour baseline"
    if beats == BEATS:
        return f"{what}; beats {base}."
    reason = row.get(REASON_COLUMN)
    why = f" ({reason})" if isinstance(reason, str) and reason.strip() else ""
    return (
        f"Not champion ({VERDICT_COLUMN} = {beats}{why}): {what}; against {base}. A model that does not beat 15 "
        "colour statistics may have learned the stain, not the cells."
    )


def best_fold(client, run_ids: dict[int, str]) -> tuple[int, str]:
    """(fold, run id) of the fold with the highest test balanced accuracy (ties: the lowest fold)."""
    from alldag.tracking import retry

    def score(fold: int) -> float:
        return retry(client.get_run, run_ids[fold]).data.metrics.get(SELECT_FOLD_BY, float("-inf"))

    fold = max(sorted(run_ids), key=score)
    return fold, run_ids[fold]


def model_uri(run) -> str:
    """The run's logged model as `models:/<id>` (MLflow 3 keeps it apart from the run's artifacts)."""
    outputs = run.outputs.model_outputs if run.outputs else []
    return f"models:/{outputs[-1].model_id}" if outputs else f"runs:/{run.info.run_id}/model"


def _existing_version(client, name: str, run_id: str):
    from alldag.tracking import retry

    versions = retry(client.search_model_versions, f"name = '{name}'")
    return next((v for v in versions if v.run_id == run_id), None)


def _set_alias(client, name: str, alias: str, other: str, version: str) -> None:
    """Point alias at version; drop `other` from it, so no version is champion and challenger at once."""
    from alldag.tracking import retry

    retry(client.set_registered_model_alias, name, alias, version)
    try:
        holder = retry(client.get_model_version_by_alias, name, other)
    except Exception:  # alias not set
        return
    if holder.version == version:
        retry(client.delete_registered_model_alias, name, other)


def register_best(task: str, summary: pd.DataFrame, run_files: dict[str, dict[int, str]]) -> dict | None:
    """Register the task's best model (see module docstring); returns what was done, or None without a CNN.

    summary: the compare stage's table; run_files: model -> fold -> its mlflow_run.json.
    """
    import mlflow

    from alldag.tracking import client_for, retry

    best = best_model(summary)
    if best is None:
        return None
    runs = {fold: read_run_file(path) for fold, path in run_files[best].items()}
    uri = next(iter(runs.values()))["tracking_uri"]
    client = client_for(uri)
    fold, run_id = best_fold(client, {fold: run["run_id"] for fold, run in runs.items()})
    row = summary.set_index("model").loc[best]
    rows = summary.set_index("model")
    baseline = rows.loc[BASELINE_NAME] if BASELINE_NAME in rows.index else None
    beats = verdict(row)
    run = retry(client.get_run, run_id)
    run_tags = run.data.tags
    name = registered_name(task)
    version = _existing_version(client, name, run_id)
    new = version is None
    if new:
        version = retry(mlflow.register_model, model_uri(run), name, await_registration_for=0)
    tags = {
        "task": task,
        "backbone": best,
        "fold": str(fold),
        **{key: f"{row[key]:.4f}" for key in (METRIC, f"{METRIC}_ci_low", f"{METRIC}_ci_high")},
        VERDICT_COLUMN: beats,
        "data_source": run_tags.get(DATA_SOURCE_TAG, "unknown"),
        "synthetic": run_tags.get(SYNTHETIC_TAG, "unknown"),
        "run_id": run_id,
    }
    for key, value in tags.items():
        retry(client.set_model_version_tag, name, version.version, key, value)
    retry(
        client.update_model_version, name, version.version, description=describe(task, best, fold, row, baseline, beats)
    )
    alias = CHAMPION if beats == BEATS else CHALLENGER
    _set_alias(client, name, alias, CHALLENGER if alias == CHAMPION else CHAMPION, version.version)
    log.info(
        "%s version %s (%s, %s): %s fold %d, run %s",
        name,
        version.version,
        "new" if new else "unchanged",
        alias,
        best,
        fold,
        run_id,
    )
    return {
        "name": name,
        "version": str(version.version),
        "alias": alias,
        "new": new,
        "model": best,
        "fold": fold,
        "run_id": run_id,
        VERDICT_COLUMN: beats,
    }


def verification_state(provenance: dict) -> str:
    """'skipped' (synthetic data or verify: off), 'true' (every file matched the manifest) or 'false'."""
    counts = provenance.get("verification") or {"skipped": True}
    if counts.get("skipped"):
        return "skipped"
    return "true" if set(counts) <= {"ok"} else "false"


def log_provenance(parent_run_file, provenance_json) -> None:
    """Tag the parent run with where the data came from (source, verified, synthetic) and attach dataset.json."""
    from alldag.tracking import client_for, retry

    info = json.loads(Path(parent_run_file).read_text())
    provenance = json.loads(Path(provenance_json).read_text())
    client = client_for(info["tracking_uri"])
    tags = {
        DATA_SOURCE_TAG: provenance["source"],
        DATA_VERIFIED_TAG: verification_state(provenance),
        SYNTHETIC_TAG: str(bool(provenance["synthetic"])).lower(),
        DEMO_TAG: str(bool(provenance.get("demo"))).lower(),
    }
    for key, value in tags.items():
        retry(client.set_tag, info["run_id"], key, value)
    retry(client.log_artifact, info["run_id"], str(provenance_json), "data")
