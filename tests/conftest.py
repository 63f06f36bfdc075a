"""Shared fixtures for the fast unit tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

SYNTHETIC_PER_CLASS = 8
SYNTHETIC_SEED = 5


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def schema_path() -> Path:
    return SCHEMA


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A small synthetic dataset (8 images per class, seed 5), shared read-only by the session.

    Tests that change files must use `synthetic_copy` instead.
    """
    from alldag.classes import CLASSES
    from alldag.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synthetic") / "ALL"
    generate_dataset(root, {c: SYNTHETIC_PER_CLASS for c in CLASSES}, SYNTHETIC_SEED)
    return root


@pytest.fixture
def synthetic_copy(synthetic_root, tmp_path) -> Path:
    """A private, writable copy of the session's synthetic dataset."""
    dest = tmp_path / "ALL"
    shutil.copytree(synthetic_root, dest)
    return dest
