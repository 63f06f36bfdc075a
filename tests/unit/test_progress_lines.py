"""Progress lines: done/total, rate and ETA, by count, by time (heartbeat) and at the end; the pool keeps order."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from alldag.progress import Progress, duration, parallel_map, rate_text, track


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "alldag.progress"]


def test_line_has_done_total_rate_and_eta(caplog):
    clock = Clock()
    with caplog.at_level(logging.INFO, logger="alldag.progress"):
        with Progress("audit: decode", 100, unit="image", every=25, seconds=0, clock=clock) as progress:
            for _ in range(50):
                clock.now += 0.5
                progress.advance()
    got = lines(caplog)
    assert got[0] == "audit: decode: 100 images to do"
    assert got[1] == "audit: decode: 25/100 images (25%), 2 images/s, ETA 38 s"
    assert got[2] == "audit: decode: 50/100 images (50%), 2 images/s, ETA 25 s"
    assert got[-1] == "audit: decode: 50/100 images (50%), 2 images/s, ETA 25 s"  # finish() logs the state
    assert len(got) == 4


def test_finished_line_says_done_in_and_slow_items_read_as_seconds_each(caplog):
    clock = Clock()
    with caplog.at_level(logging.INFO, logger="alldag.progress"):
        with Progress("train", 3, unit="epoch", seconds=0, done=1, clock=clock) as progress:
            clock.now += 80
            progress.advance(2)
    assert lines(caplog) == ["train: 2 epochs to do", "train: 3/3 epochs (100%), 40 s/epoch, done in 1 min 20 s"]


def test_heartbeat_logs_while_nothing_finishes(caplog):
    with caplog.at_level(logging.INFO, logger="alldag.progress"):
        with Progress("explain: LIME", 2, unit="image", seconds=0.05):
            time.sleep(0.3)
    got = lines(caplog)
    assert len(got) >= 4  # start, at least two heartbeats, end
    assert all(line.startswith("explain: LIME: 0/2 images (0%), elapsed ") for line in got[1:])


def test_the_heartbeat_waits_a_full_period_after_any_line(caplog):
    with caplog.at_level(logging.INFO, logger="alldag.progress"):
        with Progress("train", 8, unit="epoch", every=1, seconds=0.25) as progress:
            for _ in range(8):
                time.sleep(0.05)
                progress.advance()  # a line per item: the heartbeat has nothing to add
    assert len(lines(caplog)) == 1 + 8  # start, 7 by count, the last one at the end


def test_an_error_stops_the_heartbeat_without_a_last_line(caplog):
    with caplog.at_level(logging.INFO, logger="alldag.progress"), pytest.raises(ValueError):
        with Progress("job", 5, seconds=0.01):
            raise ValueError("boom")
    time.sleep(0.05)
    count = len(lines(caplog))
    time.sleep(0.05)
    assert len(lines(caplog)) == count
    assert not [t for t in threading.enumerate() if t.name.startswith("progress job")]


def test_track_and_parallel_map_keep_order_and_count_everything(caplog):
    with caplog.at_level(logging.INFO, logger="alldag.progress"):
        assert list(track(range(5), "loop", seconds=0)) == list(range(5))
        assert parallel_map(
            lambda x: (time.sleep(0.01 * (x % 3)), x * x)[1], range(20), threads=4, label="pool", seconds=0
        ) == [x * x for x in range(20)]
    got = lines(caplog)
    assert got[-1].startswith("pool: 20/20 items (100%)") and "done in" in got[-1]
    assert any(line.startswith("loop: 5/5 items") for line in got)


def test_parallel_map_raises_the_workers_error():
    def fail_on_three(x):
        if x == 3:
            raise OSError("cannot read 3")
        return x

    with pytest.raises(OSError, match="cannot read 3"):
        parallel_map(fail_on_three, range(8), threads=3, label="pool", seconds=0)


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (59.4, "59 s"), (61, "1 min 01 s"), (7500, "2 h 05 min")])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_rate_text():
    assert rate_text(10, 2, "image") == "5 images/s"
    assert rate_text(2, 10, "image") == "5 s/image"
    assert rate_text(0, 10, "image") == ""


def test_a_rule_job_writes_progress_to_its_log_and_to_the_console(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src"
    script = (
        f"import sys; sys.path.insert(0, {str(src)!r})\n"
        "from alldag.rulelog import run_rule\n"
        "from alldag.progress import track\n"
        "import logging\n"
        "def step():\n"
        "    logging.getLogger('alldag.x').info('only in the log')\n"
        "    for _ in track(range(3), 'job: step', unit='image', every=1, seconds=0): pass\n"
        f"run_rule({str(tmp_path / 'job.log')!r}, 1, step)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "job.log").read_text()
    assert "only in the log" in log and "job: step: 3/3 images (100%)" in log
    assert "only in the log" not in proc.stderr
    console = proc.stderr.splitlines()
    assert len(console) == 4 and console[-1].split(" ", 1)[1].startswith("job: step: 3/3 images (100%)")
