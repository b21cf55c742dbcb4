"""Prometheus metrics for ``/metrics``.

With several worker processes, ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh folder before the workers start, and ``/metrics`` adds up every worker's
numbers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "lsw_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "lsw_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
LLM_CALLS = Counter(
    "lsw_llm_calls_total", "Calls to the LLM provider", ["provider", "model", "outcome"]
)
LLM_SECONDS = Histogram(
    "lsw_llm_call_duration_seconds",
    "Time of one LLM call",
    ["provider", "model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
)
TOKENS = Counter(
    "lsw_llm_tokens_total",
    "Tokens read (input) and written (output) by the LLM",
    ["provider", "model", "project", "direction"],
)
SYNC_EVENTS = Counter(
    "lsw_sync_events_total", "Annotation events committed to the outbox", ["action"]
)
CACHE = Counter("lsw_llm_cache_total", "LLM answers looked up in the cache", ["result"])
PREDICTIONS = Counter(
    "lsw_predictions_total", "Per-task prediction outcomes", ["outcome"]
)


def render() -> tuple[bytes, str]:
    """The metrics text and its content type, summed over workers when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
