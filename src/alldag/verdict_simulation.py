"""Grouped test sets with a known truth, to measure how often the verdict against the colour baseline is
wrong (bench/bench_verdicts.py, tests/unit/test_verdict_simulation.py).

A test set holds patients (groups) of 4-60 images per class. Each patient has its own error rate, shared by
the baseline and every model (a logit-normal patient effect), and each image its own difficulty, which a
model shares with the baseline with probability `image_agreement`: errors cluster by patient and by image,
as at the ceiling of the real data (REAL-SMEARS.md: 13-25 patient-sized groups per class, baselines at
0.94-0.99). A model's error rate on a patient is the baseline's times a constant chosen so that its expected
balanced accuracy is the baseline's plus `gain`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from alldag.compare import baseline_verdicts
from alldag.verdicts import MIN_GROUPS_PER_CLASS, VERDICT_COLUMN

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(60)  # expectations over a standard normal patient effect


@dataclass(frozen=True)
class Scenario:
    """One grid point: the truth and the shape of the test set."""

    baseline_accuracy: float  # expected accuracy of the baseline over patients
    groups_per_class: int
    gain: float = 0.0  # true balanced-accuracy gain of every model over the baseline (negative: worse)
    models: int = 1  # models of the task, all with the same gain (the family that Holm adjusts over)
    classes: int = 2
    group_sizes: tuple[int, int] = (4, 60)  # images per patient, uniform between the two
    patient_sd: float = 1.0  # SD of the patient effect on the logit of the error rate
    image_agreement: float = 0.5  # chance that a model's image difficulty is the baseline's
    margin: float = 0.01  # δ of equivalence
    min_groups: int = MIN_GROUPS_PER_CLASS  # 1: measure the test itself, without the minimum


def _mean_error(intercept: float, sd: float) -> float:
    return float(np.dot(_WEIGHTS, expit(intercept + sd * _NODES)) / _WEIGHTS.sum())


def error_scale(scenario: Scenario) -> tuple[float, float]:
    """(logit intercept of the baseline's error rate, factor on a model's error rate) that give the scenario's
    expected accuracies; the factor is 0 (a perfect model) where the gain exceeds the baseline's error."""
    error = 1 - scenario.baseline_accuracy
    intercept = brentq(lambda b: _mean_error(b, scenario.patient_sd) - error, -30, 30)
    return intercept, max(0.0, 1 - scenario.gain / error)


def true_gain(scenario: Scenario) -> float:
    """The expected balanced-accuracy gain the scenario can have (a perfect model caps it)."""
    return (1 - scenario.baseline_accuracy) * (1 - error_scale(scenario)[1])


def grouped_test_set(scenario: Scenario, rng: np.random.Generator) -> dict:
    """One simulated test set: y, groups, the baseline's 'was correct' and each model's (dict)."""
    intercept, factor = error_scale(scenario)
    low, high = scenario.group_sizes
    n_groups = scenario.groups_per_class * scenario.classes
    sizes = rng.integers(low, high + 1, n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    y = np.repeat(np.arange(n_groups) % scenario.classes, sizes)
    error = expit(intercept + scenario.patient_sd * rng.standard_normal(n_groups))[groups]
    difficulty = rng.uniform(size=len(y))
    models = {}
    for m in range(scenario.models):
        own = np.where(rng.uniform(size=len(y)) < scenario.image_agreement, difficulty, rng.uniform(size=len(y)))
        models[f"model{m}"] = own >= np.minimum(error * factor, 1.0)
    return {"y": y, "groups": groups, "baseline": difficulty >= error, "models": models}


def simulated_rows(scenario: Scenario, seed: int) -> list[dict]:
    """compare.baseline_verdicts of the scenario's models on one simulated test set (seed: data and flips)."""
    data = grouped_test_set(scenario, np.random.default_rng(seed))
    return baseline_verdicts(
        y=data["y"],
        groups=data["groups"],
        baseline=data["baseline"],
        models=data["models"],
        margin=scenario.margin,
        seed=seed,
        min_groups=scenario.min_groups,
    )


def simulated_verdicts(scenario: Scenario, seed: int) -> list[str]:
    """The verdicts of the scenario's models on one simulated test set."""
    return [row[VERDICT_COLUMN] for row in simulated_rows(scenario, seed)]
