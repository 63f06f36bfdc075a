"""Benchmark: the audit's decode, hash and fingerprint pass on 1 thread and on N threads.

Usage: .venv/bin/python bench/bench_audit.py [--images N] [--threads T]
Generates N synthetic 224-px smears (JPEG, with Segmented/ twins), runs alldag.audit.audit_dataset
with threads=1 and threads=T on the same files (best of 2 each) and prints images/s and the speed-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from alldag.audit import AuditOutputs, AuditSettings, audit_dataset
from alldag.classes import CLASSES
from alldag.data import scan_dataset
from alldag.synthetic import generate_dataset
from alldag.tables import write_tsv_atomic


def timed_audit(root: Path, dataset_tsv: Path, threads: int) -> float:
    """Seconds for one audit of dataset_tsv on `threads` threads (outputs under root)."""
    out = root / f"audit{threads}"
    out.mkdir(exist_ok=True)
    start = time.perf_counter()
    audit_dataset(
        dataset=dataset_tsv,
        fixed_dir=out / "fixed",
        settings=AuditSettings(image_size=224, near_threshold=0.97, mask_min_fraction=0.02),
        outputs=AuditOutputs(
            images=out / "images.tsv",
            quarantine=out / "quarantine.tsv",
            duplicates=out / "duplicates.tsv",
            summary=out / "audit.json",
        ),
        threads=threads,
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=800, help="images in total (split over the 4 classes)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="pool size to compare")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR", ".")) as tmp:
        root = Path(tmp)
        generate_dataset(root / "ALL", {c: args.images // len(CLASSES) for c in CLASSES}, seed=1)
        write_tsv_atomic(scan_dataset(root / "ALL"), root / "dataset.tsv")
        n = len(scan_dataset(root / "ALL"))
        times = {t: min(timed_audit(root, root / "dataset.tsv", t) for _ in range(2)) for t in (1, args.threads)}
    for t, seconds in times.items():
        print(f"audit, {n} images, threads={t}: {seconds:.2f} s ({n / seconds:.0f} images/s)")
    print(f"speed-up with {args.threads} threads: {times[1] / times[args.threads]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
