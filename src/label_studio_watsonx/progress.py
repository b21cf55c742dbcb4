"""A one-line progress bar for long commands: count, rate and time left, on stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Call ``advance(n)`` as work is done and ``finish()`` at the end.

    On a terminal the line redraws in place; elsewhere (logs, CI) a line is written
    at most every ``every`` seconds.
    """

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None,
                 every: float = 5.0) -> None:  # fmt: skip
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self.every = 0.1 if self.stream.isatty() else every
        self._shown = 0.0
        self._drawn = -1

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._shown >= self.every:
            self._shown = now
            self._draw(end="\r" if self.stream.isatty() else "\n")

    def finish(self) -> None:
        if self._drawn != self.done or self.stream.isatty():
            self._draw(end="\n")

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            width = 24
            filled = min(width, int(width * self.done / self.total))
            left = (self.total - self.done) / rate if rate > 0 else 0
            return (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
                    f" {rate:.1f}/s, {_clock(left)} left")  # fmt: skip
        return f"{self.label} {self.done} {rate:.1f}/s, {_clock(elapsed)} elapsed"

    def _draw(self, end: str) -> None:
        self._drawn = self.done
        self.stream.write(self.line() + end)
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
