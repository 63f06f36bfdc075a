"""Headless Chromium for the report tests: Debian's `chromium`, installed by the test setup when missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-extensions", "--hide-scrollbars", "--mute-audio"]


def chromium() -> str:
    """Path of the chromium binary; installs Debian's package as root, else skips with the reason."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get): "
                    "apt-get install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode:
            pytest.skip(f"could not install chromium ({' '.join(cmd)}: {proc.stderr.strip()[-300:]})")
    return shutil.which("chromium")


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def rendered_dom(page: Path) -> str:
    """The page's DOM after it loaded and its scripts ran."""
    proc = _run(["--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()])
    assert proc.returncode == 0 and "<body" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 4000) -> Path:
    proc = _run([f"--window-size={width},{height}", f"--screenshot={out.resolve()}", page.resolve().as_uri()])
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-2000:]
    return out


def body_attribute(dom: str, name: str) -> str | None:
    match = re.search(rf'<body[^>]*\s{name}="([^"]*)"', dom)
    return match.group(1) if match else None


def rendered_url(url: str, budget_ms: int = 30000) -> str:
    """The DOM of a served page (e.g. the MLflow UI) after budget_ms of virtual time for its scripts and requests."""
    proc = _run(["--window-size=1600,1200", f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout=180)
    assert proc.returncode == 0 and "<body" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout
