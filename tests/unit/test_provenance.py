"""alldag.provenance: the git commit (clean, dirty, outside git) and the package versions a result records."""

from __future__ import annotations

import subprocess

from alldag import __version__
from alldag.provenance import REPORT_PACKAGES, TRAINING_PACKAGES, git_commit, package_versions


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_git_commit_is_the_head_and_says_dirty_when_tracked_files_changed(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("one")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert git_commit(tmp_path) == head.strip()
    (tmp_path / "untracked.txt").write_text("ignored")
    assert git_commit(tmp_path) == head.strip()
    (tmp_path / "a.txt").write_text("two")
    assert git_commit(tmp_path) == head.strip() + "-dirty"


def test_git_commit_outside_git_is_unknown(tmp_path):
    assert git_commit(tmp_path) == "unknown"


def test_package_versions_name_python_alldag_and_each_package():
    versions = package_versions(("numpy", "no-such-package-alldag"))
    assert list(versions) == ["python", "numpy", "no-such-package-alldag", "alldag"]
    assert versions["no-such-package-alldag"] == "not installed" and versions["alldag"] == __version__
    assert set(TRAINING_PACKAGES) <= set(REPORT_PACKAGES) <= set(package_versions())
