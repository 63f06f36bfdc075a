"""The metric registry: one entry per test metric, which evaluation (metrics.json), the bootstrap intervals,
the comparison table, the report's tables and summary.json iterate over.

Light on purpose: an entry names its functions by "module:function", imported only when first called, so
importing the registry loads nothing else. Adding a metric is one `register(Metric(...))` (or one entry
below); only `point` is required.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from alldag.lazy import function_of


@dataclass(frozen=True)
class Metric:
    """One test metric of class probabilities.

    point: (y_true (n,) int labels, proba (n, k)) -> float.
    resampled: (weights (n_boot, n) bootstrap counts, y_true, proba) -> (n_boot,) values, the same metric on
    every resample at once; None: `point` on each resample in turn (exact, slower).
    exact: (y_true, correct (n,) bool, groups (n,), level) -> (low, high) or None: an exact interval joined
    with the bootstrap's where a group bootstrap cannot see the spread (None: the bootstrap's stands).
    """

    name: str
    title: str  # display title in sentences and figures
    point: Callable | str = field(repr=False)
    resampled: Callable | str | None = field(default=None, repr=False)
    exact: Callable | str | None = field(default=None, repr=False)
    higher_is_better: bool = True  # ranks models (the best model, the registry's champion)
    summary_interval: bool = False  # summary.json gives its 95% interval beside its value

    def value(self, y_true, proba) -> float:
        """The metric of class probabilities (point)."""
        return float(function_of(self.point)(y_true, proba))

    def on_resamples(self, weights, y_true, proba):
        """The metric on every bootstrap resample: (n_boot,) values."""
        if self.resampled is not None:
            return function_of(self.resampled)(weights, y_true, proba)
        import numpy as np

        rows = np.arange(len(y_true))
        return np.array(
            [self.value(y_true[picks], proba[picks]) for picks in (np.repeat(rows, w.astype(int)) for w in weights)]
        )

    def exact_interval(self, y_true, correct, groups, level: float):
        """The exact interval to join with the bootstrap's, or None."""
        return None if self.exact is None else function_of(self.exact)(y_true, correct, groups, level)


# name -> metric; the order is the tables' column order
METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add (or replace) a metric in the registry; returns it."""
    METRICS[metric.name] = metric
    return metric


register(
    Metric(
        "accuracy",
        "accuracy",
        "alldag.evaluate:accuracy",
        "alldag.stats:resampled_accuracy",
        "alldag.stats:accuracy_exact_interval",
        summary_interval=True,
    )
)
register(
    Metric(
        "balanced_accuracy",
        "balanced accuracy",
        "alldag.evaluate:balanced_accuracy",
        "alldag.stats:resampled_balanced_accuracy",
        "alldag.stats:balanced_accuracy_exact_interval",
        summary_interval=True,
    )
)
register(Metric("macro_f1", "macro F1", "alldag.evaluate:macro_f1", "alldag.stats:resampled_macro_f1"))
register(Metric("roc_auc", "ROC AUC", "alldag.evaluate:roc_auc", "alldag.stats:resampled_roc_auc"))
