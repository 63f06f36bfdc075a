"""Table and file I/O shared by every stage: TSVs written and read the same way, files written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def write_text_atomic(text: str, path: str | os.PathLike) -> None:
    """Write text via a temporary file, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_tsv_atomic(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write df as TSV via a temporary file, so a crash never leaves a half-written table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, sep="\t", index=False)
    tmp.replace(path)


def read_tsv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a TSV written by this package, keeping empty strings as ''."""
    return pd.read_csv(path, sep="\t", keep_default_na=False)
