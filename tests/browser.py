"""Headless Chromium for the report tests: Debian's `chromium`, installed by the test setup when missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
]


def chromium() -> str:
    """Path of the chromium binary; installs Debian's package as root, else skips with the reason."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(
            "chromium is not installed and cannot be installed here (needs root and apt-get): apt-get install chromium"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode:
            pytest.skip(f"could not install chromium ({' '.join(cmd)}: {proc.stderr.strip()[-300:]})")
    return shutil.which("chromium")


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=timeout
        )


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


ARTEFACTS = Path(os.environ.get("ALLDAG_TEST_ARTEFACTS", Path(__file__).resolve().parents[1] / "test-artefacts"))

# Measures the first screen after load: where the verdict tables end, which elements stick out of the page
# (ignoring what a scrolling box clips) and how many images failed; written as attributes on <body>.
LAYOUT_PROBE = """<script>
window.addEventListener("load", function () {
  var width = document.documentElement.clientWidth, out = [];
  function clipped(el) {
    for (var p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      var o = getComputedStyle(p).overflowX;
      if (o === "auto" || o === "scroll" || o === "hidden") return p.getBoundingClientRect().right <= width + 1;
    }
    return false;
  }
  Array.prototype.forEach.call(document.body.querySelectorAll("*"), function (el) {
    var r = el.getBoundingClientRect();
    if (r.width && (r.right > width + 1 || r.left < -1) && !clipped(el))
      out.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + ":" + Math.round(r.right));
  });
  var tables = document.querySelectorAll("#verdict table"), bottom = 0;
  Array.prototype.forEach.call(tables, function (t) { bottom = Math.max(bottom, t.getBoundingClientRect().bottom); });
  var broken = Array.prototype.filter.call(document.images, function (img) {
    return !img.complete || img.naturalWidth === 0;
  });
  var b = document.body;
  b.setAttribute("data-viewport", width + "x" + window.innerHeight);
  b.setAttribute("data-page-width", String(document.documentElement.scrollWidth));
  b.setAttribute("data-overflowing", out.slice(0, 20).join(" "));
  b.setAttribute("data-verdict-tables", String(tables.length));
  b.setAttribute("data-verdict-bottom", String(Math.ceil(bottom)));
  b.setAttribute("data-probe-broken-images", String(broken.length));
});
</script>"""


def first_screen_layout(page: Path, width: int = 1280, height: int = 800) -> dict[str, str]:
    """Lay the page out in a width x height window: viewport, page width, elements wider than the page
    (outside scrolling boxes), number of verdict tables and the bottom of the last one, broken images.
    """
    probe = page.with_name(page.stem + ".layout-probe.html")
    probe.write_text(page.read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
    proc = _run(
        [f"--window-size={width},{height}", "--virtual-time-budget=10000", "--dump-dom", probe.resolve().as_uri()]
    )
    probe.unlink()
    assert proc.returncode == 0 and "<body" in proc.stdout, proc.stderr[-2000:]
    names = ("viewport", "page-width", "overflowing", "verdict-tables", "verdict-bottom", "probe-broken-images")
    return {name: body_attribute(proc.stdout, f"data-{name}") for name in names}


def save_artefact(source: Path, name: str) -> Path:
    """Copy a file (a screenshot) to the test artefacts folder (ALLDAG_TEST_ARTEFACTS, else test-artefacts/)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTEFACTS / name
    shutil.copyfile(source, target)
    return target


def assert_first_screen_fits(page: Path, artefact: str, width: int = 1280, height: int = 800) -> Path:
    """The verdict tables lie within the first width x height screen, nothing is wider than the page, no
    image is broken; the screenshot of that first screen is saved as a test artefact (returned)."""
    layout = first_screen_layout(page, width, height)
    # headless Chromium keeps some of the window's height for itself; the width is the page's, and the
    # layout depends on the width only
    assert layout["viewport"].split("x")[0] == str(width), layout
    assert int(layout["verdict-tables"]) >= 1, layout
    assert 0 < int(layout["verdict-bottom"]) <= height, f"the verdict tables end below the first screen: {layout}"
    assert int(layout["page-width"]) <= width and not layout["overflowing"], f"wider than the page: {layout}"
    assert layout["probe-broken-images"] == "0", layout
    shot = screenshot(page, page.with_name(artefact), width, height)
    return save_artefact(shot, artefact)


def rendered_url(url: str, budget_ms: int = 30000) -> str:
    """The DOM of a served page (e.g. the MLflow UI) after budget_ms of virtual time for its scripts and requests."""
    proc = _run(["--window-size=1600,1200", f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout=180)
    assert proc.returncode == 0 and "<body" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout
