"""Progress of long jobs as plain log lines: done/total, rate and ETA, at least every 30 s.

Lines, not redrawn bars, so a job's log stays readable; rule jobs (alldag.rulelog.run_rule) also copy
them to the console Snakemake shows. Use `Progress` as a context manager around a loop, `track()` to
wrap an iterable, or `parallel_map()` to run a function over items in a thread pool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

LOGGER_NAME = "alldag.progress"
HEARTBEAT_S = 30.0  # a line at least this often while work goes on, even when no item finished

T = TypeVar("T")
R = TypeVar("R")


def duration(seconds: float) -> str:
    """A duration for people: '42 s', '3 min 05 s', '2 h 04 min'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def rate_text(done: int, elapsed: float, unit: str) -> str:
    """Throughput as '12.3 images/s' when at least one per second, else '4.1 s/image'; '' before any."""
    if done <= 0 or elapsed <= 0:
        return ""
    per_second = done / elapsed
    return f"{per_second:.3g} {unit}s/s" if per_second >= 1 else f"{elapsed / done:.3g} s/{unit}"


class Progress:
    """Counts finished items of one job step and logs a plain line with done/total, rate and ETA.

    A line is logged at the start, after every `every` items (None: never by count), whenever no line
    was logged for `seconds` while the step runs (a heartbeat thread, so a slow item still shows the
    job is alive) and at the end. Thread-safe: pool workers may call advance().

    label: what is being done, e.g. 'audit: decode and hash'; total: items expected; unit: the
    singular item name ('image', 'epoch'); done: items already done (a resumed job).
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "item",
        every: int | None = None,
        seconds: float = HEARTBEAT_S,
        done: int = 0,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label, self.total, self.unit, self.every, self.seconds = label, int(total), unit, every, seconds
        self.done, self._start_done = int(done), int(done)
        self._log = logger or logging.getLogger(LOGGER_NAME)
        self._clock = clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = clock()
        self._last_line = time.monotonic()  # when the last line was logged (real time: drives the heartbeat)

    def line(self) -> str:
        """The current progress line."""
        elapsed = self._clock() - self._started
        new = self.done - self._start_done
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        rate = rate_text(new, elapsed, self.unit)
        text = f"{self.label}: {self.done}/{self.total} {self.unit}s{share}" + (f", {rate}" if rate else "")
        if self.done >= self.total:
            return f"{text}, done in {duration(elapsed)}"
        if new > 0:
            return f"{text}, ETA {duration(elapsed / new * (self.total - self.done))}"
        return f"{text}, elapsed {duration(elapsed)}"

    def start(self) -> Progress:
        self._started = self._clock()
        self._last_line = time.monotonic()
        self._log.info("%s: %d %ss to do", self.label, self.total - self.done, self.unit)
        if self.seconds and self.seconds > 0:
            self._thread = threading.Thread(target=self._heartbeat, name=f"progress {self.label}", daemon=True)
            self._thread.start()
        return self

    def _emit(self) -> None:
        self._last_line = time.monotonic()
        self._log.info("%s", self.line())

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(0.0, self._last_line + self.seconds - time.monotonic())):
            with self._lock:
                if time.monotonic() - self._last_line >= self.seconds:
                    self._emit()

    def advance(self, n: int = 1) -> None:
        """Count n more finished items (logs a line every `every` items)."""
        with self._lock:
            before = self.done
            self.done += n
            if self.every and self.done < self.total and self.done // self.every > before // self.every:
                self._emit()

    def finish(self) -> None:
        """Stop the heartbeat and log the last line (once)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._emit()

    def __enter__(self) -> Progress:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
        else:  # stop quietly: the error is what the log must end with
            self._stop.set()
            if self._thread is not None:
                self._thread.join()


def track(
    items: Iterable[T],
    label: str,
    *,
    total: int | None = None,
    unit: str = "item",
    every: int | None = None,
    seconds: float = HEARTBEAT_S,
) -> Iterator[T]:
    """Yield items, logging progress as each is handed back (total defaults to len(items))."""
    if total is None:
        items = list(items)
        total = len(items)
    with Progress(label, total, unit=unit, every=every, seconds=seconds) as progress:
        for item in items:
            yield item
            progress.advance()


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    threads: int,
    label: str,
    unit: str = "item",
    every: int | None = None,
    seconds: float = HEARTBEAT_S,
) -> list[R]:
    """[fn(item) for item in items] on a pool of `threads` threads (in order), logging progress.

    For work that releases the GIL (image decoding, hashing, numpy). threads <= 1 runs in this thread.
    The first exception raised by fn is raised here after the pool stopped.
    """
    items = list(items)
    with Progress(label, len(items), unit=unit, every=every, seconds=seconds) as progress:
        if threads <= 1 or len(items) <= 1:
            out = []
            for item in items:
                out.append(fn(item))
                progress.advance()
            return out
        results: list = [None] * len(items)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="alldag") as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    progress.advance()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return results
