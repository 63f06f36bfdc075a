"""The verdict of a model against the colour baseline, as vocabulary and rule: its four words, how the
report shows them, the reason beside each, and the rule that turns a paired comparison into one of them.

Light on purpose (no scipy): the compare stage, the headline, the report, the registry and the track jobs
all import it, so every place that shows a verdict says the same thing.
"""

from __future__ import annotations

import math

from alldag.metrics import METRICS
from alldag.names import BASELINE_NAME, HEADLINE_METRIC

BEATS, EQUIVALENT, WORSE, UNDETERMINED = "beats", "equivalent", "worse", "undetermined"
VERDICTS = (BEATS, EQUIVALENT, WORSE, UNDETERMINED)
VERDICT_COLUMN = "verdict_vs_colour_baseline"  # comparison.tsv, summary.json, MLflow tags
REASON_COLUMN = "verdict_reason"
ALPHA = 0.025  # one-sided level of each test: false "beats" and false "worse" at most 2.5 % each
# Fewer test groups (patients) than this in some class: no verdict. bench/bench_verdicts.py holds every false
# rate at 2.5 % from 5 on (docs/evaluation-and-verdicts.md); its grid measures nothing below.
MIN_GROUPS_PER_CLASS = 5

# verdict -> (mark shown on the report's first screen, CSS class, what it means: the legend)
DISPLAY = {
    BEATS: (
        "✔ beats",
        "verdict-beats",
        "better than the baseline: the exact group sign-flip test and the 95% interval both say so, at 2.5% "
        "one-sided after Holm adjustment across the models of the task",
    ),
    EQUIVALENT: (
        "= equivalent",
        "verdict-equivalent",
        "no better and no worse: the 95% interval of the difference lies within ±δ (two one-sided tests)",
    ),
    WORSE: ("✘ worse", "verdict-worse", "worse than the baseline: the interval lies below 0 and the test agrees"),
    UNDETERMINED: (
        "? undetermined",
        "verdict-undetermined",
        "the test images cannot tell: too few groups (patients) per class, or an interval too wide for ±δ",
    ),
}
# verdict -> how the headline sentence states it about the best model
HEADLINE_WORDS = {
    BEATS: "it beats",
    EQUIVALENT: "it is equivalent to",
    WORSE: "it is worse than",
    UNDETERMINED: "it is undetermined whether it beats",
}


def best_model(comparison) -> str | None:
    """The task's best trained model: the best headline metric (its registry entry says which end is best)
    among comparison.tsv's rows (a pandas table, one row per model) other than the colour baseline's; None when
    it has no trained model."""
    models = comparison[comparison["model"] != BASELINE_NAME].sort_values(
        HEADLINE_METRIC, ascending=not METRICS[HEADLINE_METRIC].higher_is_better
    )
    return None if models.empty else models.iloc[0]["model"]


def verdict_of(value) -> str | None:
    """A verdict cell as one of VERDICTS; None when empty or unknown (the baseline's own row)."""
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip().lower()
    return text if text in VERDICTS else None


def decide(
    *,
    p_beats: float,
    p_worse: float,
    ci: tuple[float, float],
    margin: float,
    fewest_groups: int,
    min_groups: int = MIN_GROUPS_PER_CLASS,
) -> tuple[str, str]:
    """(verdict, reason) of one model against the colour baseline.

    p_beats: one-sided p of 'not better', already adjusted across the task's models; p_worse: one-sided p
    of 'not worse'; ci: the 95% interval of the balanced-accuracy difference; margin: δ of equivalence;
    fewest_groups: the test images' fewest groups in a class; min_groups: fewer give no verdict (the
    simulation lowers it to measure the test itself).
    """
    low, high = ci
    if fewest_groups < min_groups:
        return UNDETERMINED, f"too few groups: {fewest_groups} in a class, {min_groups} needed"
    if any(math.isnan(v) for v in (p_beats, p_worse, low, high)):
        return UNDETERMINED, "no paired difference"
    if p_beats <= ALPHA:
        return BEATS, f"better: one-sided p = {p_beats:.2g} after Holm"
    if p_worse <= ALPHA:
        return WORSE, f"worse: one-sided p = {p_worse:.2g}"
    if -margin < low and high < margin:
        return EQUIVALENT, f"interval within ±{margin:g}"
    return UNDETERMINED, f"interval too wide for ±{margin:g}"


def legend(margin: float | None = None) -> list[tuple[str, str]]:
    """(mark, meaning) of every verdict, δ filled in when given."""
    delta = f"{margin:g}" if margin is not None else "δ"
    return [(mark, meaning.replace("δ", delta)) for mark, _, meaning in DISPLAY.values()]
