"""Verify a dataset folder against its checksum manifest (path, sha256, size for every file)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from alldag import AlldagError
from alldag.data import IMAGE_SUFFIXES

MANIFEST_COLUMNS = ["path", "class", "sha256", "width", "height", "bytes", "format", "mode"]
VERIFY_COLUMNS = ["path", "status", "expected_sha256", "actual_sha256", "expected_bytes", "actual_bytes"]
SUBFOLDERS = ("Original", "Segmented")


def file_hashes(path: str | os.PathLike, algorithms: tuple[str, ...] = ("sha256",), chunk: int = 1 << 20) -> dict:
    """Hex digests of a file's bytes, one per hashlib algorithm name ('md5', 'sha256'), in one read."""
    digests = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f:
        while block := f.read(chunk):
            for digest in digests.values():
                digest.update(block)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    return file_hashes(path)["sha256"]


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """The checksum manifest (TSV with MANIFEST_COLUMNS); raises AlldagError if it is malformed."""
    try:
        manifest = pd.read_csv(path, sep="\t", dtype={"sha256": str})
    except (OSError, pd.errors.ParserError) as exc:
        raise AlldagError(f"cannot read the dataset manifest '{path}' ({exc}): restore it from git") from None
    missing = set(MANIFEST_COLUMNS) - set(manifest.columns)
    if missing:
        raise AlldagError(
            f"dataset manifest '{path}' lacks column(s) {', '.join(sorted(missing))}: restore it from git"
        )
    return manifest


def dataset_files(root: str | os.PathLike) -> list[str]:
    """Relative paths (posix) of every image file under root/Original and root/Segmented."""
    root = Path(root)
    files = []
    for sub in SUBFOLDERS:
        base = root / sub
        if base.is_dir():
            files += [
                p.relative_to(root).as_posix()
                for p in sorted(base.rglob("*"))
                if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            ]
    return files


def verify_folder(root: str | os.PathLike, manifest: pd.DataFrame) -> pd.DataFrame:
    """Compare every file under root with the manifest.

    Returns one row per file in either (VERIFY_COLUMNS): status is 'ok', 'missing' (in the
    manifest, not on disk), 'extra' (on disk, not in the manifest) or 'changed' (size or sha256
    differ).
    """
    root = Path(root)
    expected = manifest.set_index("path")
    on_disk = set(dataset_files(root))
    rows = []
    for rel in sorted(set(expected.index) | on_disk):
        exp = expected.loc[rel] if rel in expected.index else None
        if rel not in on_disk:
            rows.append((rel, "missing", exp["sha256"], "", int(exp["bytes"]), -1))
            continue
        size = (root / rel).stat().st_size
        if exp is None:
            rows.append((rel, "extra", "", sha256_file(root / rel), -1, size))
            continue
        actual = sha256_file(root / rel)
        status = "ok" if actual == exp["sha256"] and size == int(exp["bytes"]) else "changed"
        rows.append((rel, status, exp["sha256"], actual, int(exp["bytes"]), size))
    return pd.DataFrame(rows, columns=VERIFY_COLUMNS)


def verification_failure(report: pd.DataFrame) -> str | None:
    """One line naming missing and changed files (the ones that fail a run), or None."""
    bad = report[report["status"].isin(["missing", "changed"])]
    if bad.empty:
        return None
    counts = bad["status"].value_counts().to_dict()
    first = ", ".join(bad["path"].head(3))
    return (
        f"the dataset does not match its manifest ({', '.join(f'{n} {s}' for s, n in counts.items())}; "
        f"e.g. {first}): re-download it, or set data.verify: warn to continue anyway"
    )
