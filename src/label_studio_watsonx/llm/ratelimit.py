"""Keep calls within a plan's requests-per-second limit, in any window, not on average."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

# Requests leave slightly more than a window apart, so network jitter cannot put
# two windows' worth into one second at the server.
MARGIN = 0.05


class RateLimiter:
    """At most ``rate`` calls in any sliding one-second window (a sliding log).

    ``acquire`` blocks until a call may go; ``pause`` holds every call back for a
    while (the server said the limit was reached); ``set_rate`` follows a limit the
    server announces.
    """

    def __init__(self, rate: float) -> None:
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        if rate <= 0:
            return
        with self._lock:
            self.rate = rate
            self._count = max(1, math.floor(rate))
            self._window = self._count / rate + MARGIN

    def acquire(self, deadline: float | None = None) -> bool:
        """Wait for a slot; False when ``deadline`` (monotonic) would pass first."""
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and self._sent[0] <= now - self._window:
                    self._sent.popleft()
                wait = max(0.0, self._paused_until - now)
                if not wait and len(self._sent) < self._count:
                    self._sent.append(now)
                    return True
                if not wait:
                    wait = self._sent[0] + self._window - now
            if deadline is not None and time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
