"""What a model's MLflow run records as metrics, named from its jobs' files: each epoch's losses and
accuracies (step = epoch - 1), the best epoch, the test metrics and the explanation means.

Light on purpose (numpy, pandas, MLflow): the track jobs import it, and they start without TensorFlow,
scikit-learn or matplotlib.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alldag.attribution_metrics import ALL_CLASSES, NO_POSITIVE
from alldag.tracking import log_steps_once

EPOCH_COLUMNS = ("epoch", "phase", "learning_rate", "kept")  # history columns that are not per-epoch metrics


def log_missing_epochs(run_id: str, history: pd.DataFrame) -> int:
    """Log the epochs of history the run lacks (step = epoch - 1); returns how many epochs got metrics."""
    import mlflow

    epochs = [
        {"step": row["epoch"] - 1, "metrics": {k: v for k, v in row.items() if k not in EPOCH_COLUMNS}}
        for row in history.to_dict("records")
    ]
    return len({m.step for m in log_steps_once(mlflow.MlflowClient(), run_id, epochs)})


def best_epoch_metrics(history: pd.DataFrame) -> dict:
    """best_epoch (the epoch whose weights the model ends with), its val_accuracy, and epochs_run."""
    best = history[history["kept"]].iloc[0]
    return {
        "best_epoch": int(best["epoch"]),
        "best_val_accuracy": float(best["val_accuracy"]),
        "epochs_run": len(history),
    }


def test_metrics(result: dict) -> dict:
    """The MLflow metrics of an evaluation (metrics.json): its scalars and per-class scores, prefixed test_."""
    scalars = {k: v for k, v in result.items() if isinstance(v, float) and not np.isnan(v)}
    scalars.update({f"{c}_{m}": v for c, d in result["per_class"].items() for m, v in d.items() if m != "support"})
    return {f"test_{k}": v for k, v in scalars.items()}


def explanation_metrics(means: pd.DataFrame) -> dict:
    """The MLflow metrics of an explanation-means table: each method's (or pair's) mean over all classes
    (explain_<method>_<metric>), and per method how many maps had no positive attribution
    (explain_<method>_no_positive_attribution)."""
    overall = means[means["label"] == ALL_CLASSES]
    out = {f"explain_{r.method}_{r.metric}": r.mean for r in overall.itertuples() if not np.isnan(r.mean)}
    if NO_POSITIVE in overall:
        counts = pd.to_numeric(overall.groupby("method", sort=False)[NO_POSITIVE].first(), errors="coerce")
        out |= {f"explain_{method}_{NO_POSITIVE}": float(n) for method, n in counts.dropna().items()}
    return out
