"""A fresh virtual environment holding only given requirements and their dependency closure, built offline.

Installing TensorFlow from PyPI costs minutes and network; instead the new venv's site-packages gets a
symlink per file (from each distribution's RECORD) of exactly the required distributions, taken from the
environment running the tests. Nothing else is importable there: not alldag, not the test packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from importlib.metadata import PackageNotFoundError, distribution, distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def closure(requirements: list[str]) -> dict[str, object]:
    """Installed distributions (canonical name -> Distribution) the requirements need, transitively.

    Raises if a requirement is not installed here or its installed version does not satisfy it.
    """
    found: dict[str, object] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            raise RuntimeError(f"{req} is not installed in {sys.prefix}: cannot build the fresh environment") from None
        if req.specifier and not req.specifier.contains(dist.version, prereleases=True):
            raise RuntimeError(f"{req} needed, {dist.version} installed")
        if name in found:
            continue
        found[name] = dist
        for dep in map(Requirement, dist.requires or []):
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in (*req.extras, "")):
                todo.append(dep)
    return found


def site_packages(prefix: Path) -> Path:
    return prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def build(prefix: Path, requirements: list[str]) -> Path:
    """Create the venv at prefix (no pip, no system site-packages) with only `requirements`; returns its python."""
    subprocess.run(
        [getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(prefix)],
        check=True,
        capture_output=True,
    )
    target = site_packages(prefix)
    owners = defaultdict(set)  # top-level name in site-packages -> distributions installing into it
    for dist in distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or []:
            owners[file.parts[0]].add(name)
    for name, dist in closure(requirements).items():
        for file in dist.files or []:
            top = file.parts[0]
            # a folder only this distribution uses is linked whole; shared ones (namespace packages) file by file
            entry = Path(top) if owners[top] == {name} else Path(file)
            source, dest = Path(dist.locate_file(entry)), target / entry
            if top == ".." or dest.is_symlink() or dest.exists() or not source.exists():
                continue  # scripts outside site-packages, already linked, or listed but not installed
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(source.resolve(), dest)
    uvicorn = prefix / "bin" / "uvicorn"  # `mlflow models serve --env-manager local` runs `uvicorn` from PATH
    uvicorn.write_text(f'#!/bin/sh\nexec "{prefix / "bin" / "python"}" -m uvicorn "$@"\n')
    uvicorn.chmod(0o755)
    return prefix / "bin" / "python"


def clean_env(prefix: Path, **extra: str) -> dict[str, str]:
    """An environment for processes in the fresh venv: its bin first on PATH, no PYTHONPATH, no inherited MLflow URI."""
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR", "TF_CPP_MIN_LOG_LEVEL")}
    return {**keep, "PATH": f"{prefix / 'bin'}:/usr/bin:/bin", "VIRTUAL_ENV": str(prefix), **extra}
