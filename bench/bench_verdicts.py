"""Benchmark: how often the verdict against the colour baseline is wrong on grouped (patient-like) test sets.

Usage: .venv/bin/python bench/bench_verdicts.py [--seeds 2000] [--power-seeds 2500] [--family-seeds 1000]
Grid: baseline accuracy 0.90 / 0.97 / 0.99 x 5 / 8 / 13 / 25 groups per class (binary task, groups of 4-60
images, patient effects shared by the models; alldag.verdict_simulation), measured without the minimum number
of groups so that the table shows what that minimum must be. Per grid point: false "beats" and false "worse"
with no true difference; power (share "beats") for a true +2-point gain (+1 at 0.99, a perfect model);
false "equivalent" at a true difference of exactly ±δ (the larger); and the family-wise false "beats" rate
of 4 null models against one baseline, Holm-adjusted, beside the rate without adjustment. Rates in %,
with the largest Monte Carlo standard error in the footer.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from alldag.verdict_simulation import Scenario, simulated_rows, true_gain
from alldag.verdicts import ALPHA, BEATS, EQUIVALENT, VERDICT_COLUMN, WORSE

ACCURACIES = (0.90, 0.97, 0.99)
GROUPS = (5, 8, 13, 25)


def rate(scenario: Scenario, seeds: int, hit) -> float:
    """% of seeds whose rows satisfy hit(rows)."""
    return 100 * float(np.mean([hit(simulated_rows(scenario, seed)) for seed in range(seeds)]))


def _first_is(word: str):
    return lambda rows: rows[0][VERDICT_COLUMN] == word


def grid_point(accuracy: float, groups: int, args) -> dict:
    null = Scenario(accuracy, groups, min_groups=1)
    words = [[r[VERDICT_COLUMN] for r in simulated_rows(null, seed)][0] for seed in range(args.seeds)]
    gain = replace(null, gain=0.02)
    family = [simulated_rows(replace(null, models=4), seed) for seed in range(args.family_seeds)]
    return {
        "false_beats": 100 * words.count(BEATS) / args.seeds,
        "false_worse": 100 * words.count(WORSE) / args.seeds,
        "null_equivalent": 100 * words.count(EQUIVALENT) / args.seeds,
        "gain": true_gain(gain),
        "power": rate(gain, args.power_seeds, _first_is(BEATS)),
        "false_equivalent": max(
            rate(replace(null, gain=sign * null.margin), args.family_seeds, _first_is(EQUIVALENT)) for sign in (1, -1)
        ),
        "family_holm": 100 * np.mean([any(r[VERDICT_COLUMN] == BEATS for r in rows) for rows in family]),
        "family_raw": 100 * np.mean([any(r["p_vs_colour_baseline"] <= ALPHA for r in rows) for rows in family]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2000, help="null test sets per grid point")
    parser.add_argument("--power-seeds", type=int, default=2500, help="test sets with a true gain per point")
    parser.add_argument("--family-seeds", type=int, default=1000, help="test sets for the ±δ and 4-model rows")
    args = parser.parse_args()
    print(
        "| baseline acc. | groups per class | false beats % | false worse % | equivalent, no difference % | "
        "true gain | power % | false equivalent at ±δ % | 4 null models, any beats % (Holm) | without Holm % |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    start = time.perf_counter()
    for accuracy in ACCURACIES:
        for groups in GROUPS:
            r = grid_point(accuracy, groups, args)
            print(
                f"| {accuracy:.2f} | {groups} | {r['false_beats']:.1f} | {r['false_worse']:.1f} | "
                f"{r['null_equivalent']:.1f} | +{r['gain']:.3f} | {r['power']:.1f} | {r['false_equivalent']:.1f} | "
                f"{r['family_holm']:.1f} | {r['family_raw']:.1f} |",
                flush=True,
            )
    se = max(100 * np.sqrt(0.025 * 0.975 / min(args.seeds, args.family_seeds)), 100 * np.sqrt(0.25 / args.power_seeds))
    print(
        f"\nMonte Carlo SE: at most {100 * np.sqrt(0.025 * 0.975 / min(args.seeds, args.family_seeds)):.2f} points on "
        f"a 2.5 % rate, {100 * np.sqrt(0.25 / args.power_seeds):.2f} on a 50 % power (largest {se:.2f}); "
        f"{time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
