"""Glue for rule scripts: log to the rule's log file, pin thread counts, turn AlldagError into one line."""

from __future__ import annotations

import logging
import os
import sys


def run_rule(log_path: str, threads: int, step) -> None:
    """Run step() with stderr and logging sent to log_path; exit 1 with one line on AlldagError.

    threads caps TensorFlow's and BLAS's thread pools so concurrent jobs share cores fairly. Progress
    lines (alldag.progress) go to the log and to the job's original stderr, the console under Snakemake.
    """
    for var in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(max(1, threads)))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    log_file = open(log_path, "w", buffering=1)  # noqa: SIM115 (the job's log, open until it exits)
    console = os.fdopen(os.dup(2), "w", buffering=1)  # the console, before fd 2 goes to the log
    sys.stderr = sys.stdout = log_file
    os.dup2(log_file.fileno(), 2)  # native libraries (TensorFlow) write to fd 2 directly
    logging.basicConfig(
        stream=log_file, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    _copy_progress_to(console)
    from alldag import AlldagError

    try:
        step()
    except AlldagError as exc:
        logging.getLogger("alldag").error("%s", exc)
        sys.exit(1)


def _copy_progress_to(stream) -> None:
    """Also write progress lines (logger alldag.progress) to stream, once per process."""
    from alldag.progress import LOGGER_NAME

    progress_log = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in progress_log.handlers if getattr(h, "alldag_console", False)]:
        progress_log.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.alldag_console = True
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    progress_log.addHandler(handler)
