"""Where a result came from: the workflow's git commit and the versions of the packages that made it."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from alldag import __version__

REPO = Path(__file__).resolve().parents[2]  # the checkout the workflow runs from
# What the report lists, and what each training run logs as params
REPORT_PACKAGES = (
    "tensorflow",
    "keras",
    "scikit-learn",
    "lime",
    "mlflow",
    "snakemake",
    "pandas",
    "numpy",
    "scipy",
    "seaborn",
    "matplotlib",
)
TRAINING_PACKAGES = ("tensorflow", "keras", "numpy", "mlflow")


def git_commit(repo: str | os.PathLike = REPO) -> str:
    """The workflow's git commit, with '-dirty' if tracked files changed; 'unknown' outside git."""

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=20)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty else "")


def package_versions(packages: tuple[str, ...] = REPORT_PACKAGES) -> dict[str, str]:
    """Versions of Python, alldag and the given packages in this environment ('not installed' where absent)."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return {**out, "alldag": __version__}
