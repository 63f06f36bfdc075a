"""The vocabulary module: light, imported by everything, and the end of the old import circles."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from alldag.names import BASELINE_NAME, HEADLINE_METRIC
from alldag.verdicts import best_model


def _imported_by(module: str) -> set[str]:
    """The alldag modules a fresh interpreter has loaded after importing `module`."""
    code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('alldag')))"
    return set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split())


@pytest.mark.parametrize(
    ("module", "must_not_load"),
    [
        ("alldag.names", {"alldag.baseline", "alldag.figures"}),  # names only: nothing else loads
        ("alldag.figures", {"alldag.baseline", "alldag.evaluate"}),  # the old figures -> baseline -> evaluate circle
        ("alldag.registry", {"alldag.headline"}),  # the champion comes from comparison.tsv, not the report's prose
        ("alldag.methods", {"alldag.explain", "alldag.figures"}),  # compute functions are imported when run
        ("alldag.metrics", {"alldag.evaluate", "alldag.stats"}),
    ],
)
def test_light_imports(module, must_not_load):
    loaded = _imported_by(module)
    assert module in loaded
    assert not loaded & must_not_load


def test_names_module_imports_nothing():
    assert _imported_by("alldag.names") == {"alldag", "alldag.names"}


def test_best_model_is_the_highest_trained_model_by_the_headline_metric():
    comparison = pd.DataFrame(
        {"model": [BASELINE_NAME, "A", "B", "C"], HEADLINE_METRIC: [0.99, 0.7, 0.9, 0.8]},
    )
    assert best_model(comparison) == "B"  # the baseline's higher score does not make it the champion
    assert best_model(comparison[comparison["model"] == BASELINE_NAME]) is None
