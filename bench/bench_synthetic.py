"""Benchmark: synthetic smear generator throughput on one core (target: >= 200 images/s).

Usage: .venv/bin/python bench/bench_synthetic.py [--images N]
Reports rendering alone and rendering + writing the Original/ and Segmented/ JPEGs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from alldag.classes import CLASSES  # noqa: E402
from alldag.synthetic import generate_dataset, image_rng, render_smear  # noqa: E402

TARGET = 200.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=800, help="images in total (split over the 4 classes)")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    per_class = args.images // len(CLASSES)
    render_smear("Pro", image_rng(0, "Pro", 0))  # warm caches
    start = time.perf_counter()
    for cls in CLASSES:
        for i in range(per_class):
            render_smear(cls, image_rng(1, cls, i))
    render_rate = per_class * len(CLASSES) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR", ".")) as tmp:
        start = time.perf_counter()
        n = generate_dataset(os.path.join(tmp, "ALL"), {c: per_class for c in CLASSES}, seed=1)
        write_rate = n / (time.perf_counter() - start)
    print(f"render only:          {render_rate:7.1f} images/s (one core)")
    print(f"render + write JPEGs: {write_rate:7.1f} images/s (one core; Original/ + Segmented/)")
    ok = write_rate >= TARGET
    print(f"target >= {TARGET:.0f} images/s written: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
