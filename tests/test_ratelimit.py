"""The rate limiter keeps any one-second window within the limit, under many threads."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from label_studio_watsonx.llm.ratelimit import RateLimiter


def most_in_one_second(times: list[float]) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_no_one_second_window_holds_more_than_the_rate() -> None:
    limiter = RateLimiter(20)
    sent: list[float] = []

    def call(_: int) -> None:
        limiter.acquire()
        sent.append(time.monotonic())

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(call, range(60)))
    elapsed = time.monotonic() - started
    assert most_in_one_second(sent) <= 20
    assert 2.0 <= elapsed < 8.0  # 60 calls at 20/s: held to the limit, not stalled


def test_deadline_and_pause() -> None:
    limiter = RateLimiter(2)
    assert limiter.acquire() and limiter.acquire()
    assert not limiter.acquire(deadline=time.monotonic() + 0.2)  # the next slot is ~1s away
    limiter.pause(0.5)
    started = time.monotonic()
    assert limiter.acquire()
    assert time.monotonic() - started >= 0.45
