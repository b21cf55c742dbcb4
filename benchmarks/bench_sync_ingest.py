"""10,000 `ANNOTATION_CREATED` webhooks. Acknowledgement: 4 senders over HTTP to
`serve` (`WORKERS=1`); each answer comes after the event is committed (fsync) to the
outbox. Rows/s: the flusher draining those 10,000 events into the engine, against
one INSERT per event written as it arrives, as the setup this replaces did. Presto
figures use the loopback Presto-protocol test server (TLS, DuckDB behind it), whose
per-statement cost is far below a real engine's, so the ratio there is a floor."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import trustme

from label_studio_watsonx.sync.engines.presto import PrestoEngine
from label_studio_watsonx.sync.engines.sqlite import SQLiteEngine
from label_studio_watsonx.sync.events import events_from_webhook
from label_studio_watsonx.sync.flusher import Flusher
from label_studio_watsonx.sync.outbox import Outbox
from label_studio_watsonx.sync.rows import annotation_row, columns_for
from tests.presto_server import PrestoTestServer
from tests.processes import service_process
from tests.webhooks import created, textarea

TITLE = "Annotation sync: webhook ingest"
EVENTS = int(os.environ.get("BENCH_SYNC_EVENTS", "10000"))
BASELINE_PRESTO_EVENTS = int(os.environ.get("BENCH_SYNC_BASELINE_PRESTO", "300"))
FIGURES = [
    ("ack_p50_ms", "acknowledgement latency p50", "ms", 2),
    ("ack_p99_ms", "acknowledgement latency p99", "ms", 2),
    ("acks_s", "webhooks acknowledged per second (4 senders)", "/s", 0),
    ("sqlite_rows_s", "rows/s reaching SQLite (batched flusher)", "rows/s", 0),
    ("sqlite_baseline_rows_s", "rows/s reaching SQLite (one INSERT per event)", "rows/s", 0),
    ("sqlite_ratio", "SQLite: batched / one INSERT per event", "x", 1),
    ("presto_rows_s", "rows/s reaching the Presto test server (batched flusher)", "rows/s", 0),
    ("presto_baseline_rows_s", "rows/s reaching the Presto test server (one INSERT per event)", "rows/s", 1),
    ("presto_ratio", "Presto: batched / one INSERT per event", "x", 1),
]  # fmt: skip


def bodies(count: int) -> list[dict]:
    return [created(n, task_id=n, result=[textarea("response", f"answer {n}")])
            for n in range(1, count + 1)]  # fmt: skip


def acknowledgements(folder: Path, count: int) -> tuple[list[float], float]:
    """Per-request latencies of ``count`` webhooks to a real ``serve``, and acks per second."""
    service = service_process(folder, LLM_PROVIDER="echo")
    service.start("/health", timeout=60)
    try:
        events = bodies(count)

        def send(chunk: list[dict]) -> list[float]:
            seen = []
            with httpx.Client(timeout=60) as client:
                for body in chunk:
                    t = time.perf_counter()
                    assert client.post(service.url + "/data/upload", json=body).status_code == 200
                    seen.append(time.perf_counter() - t)
            return seen

        latencies: list[float] = []
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            for seen in pool.map(send, [events[i::4] for i in range(4)]):
                latencies.extend(seen)
        return latencies, count / (time.perf_counter() - started)
    finally:
        service.stop()


def batched(folder: Path, engine, count: int) -> float:
    """Rows per second as the service's flusher writes ``count`` queued events."""
    outbox = Outbox(folder)
    outbox.add([events_from_webhook(body)[0] for body in bodies(count)])
    flusher = Flusher(outbox, engine, folder / "flusher.lock", batch_size=500)
    started = time.perf_counter()
    assert flusher.drain(timeout=3600)
    return count / (time.perf_counter() - started)


def one_statement_per_event(engine, count: int) -> float:
    """The old way: each event becomes one INSERT, written before the webhook answers."""
    write = engine._insert if isinstance(engine, PrestoEngine) else lambda rows: engine.apply(rows, [])
    events = [events_from_webhook(body)[0] for body in bodies(count)]
    first = events[0].payload
    engine.ensure_columns(columns_for(first["label_config"], first["task_data"]))
    started = time.perf_counter()
    for event in events:
        payload = event.payload
        task = {"id": payload["task_id"], "data": payload["task_data"]}
        row = annotation_row(payload["annotation"], task, event.project_id, payload["label_config"], {})
        write([row])
    return count / (time.perf_counter() - started)


def measure() -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        latencies, figures["acks_s"] = acknowledgements(base / "service", EVENTS)
        latencies.sort()
        figures["ack_p50_ms"] = statistics.median(latencies) * 1000
        figures["ack_p99_ms"] = latencies[int(len(latencies) * 0.99) - 1] * 1000

        engine = SQLiteEngine(base / "batched" / "annotations.db", "annotations")
        figures["sqlite_rows_s"] = batched(base / "batched", engine, EVENTS)
        baseline = SQLiteEngine(base / "baseline" / "annotations.db", "annotations")
        figures["sqlite_baseline_rows_s"] = one_statement_per_event(baseline, EVENTS)
        figures["sqlite_ratio"] = figures["sqlite_rows_s"] / figures["sqlite_baseline_rows_s"]

        authority = trustme.CA()
        ca_path = base / "ca.pem"
        authority.cert_pem.write_to_path(str(ca_path))
        presto = PrestoTestServer(authority.issue_cert("127.0.0.1"), "ibmlhapikey_bench", "bench-key")
        presto.start()
        try:
            def engine_in(schema: str) -> PrestoEngine:
                return PrestoEngine("127.0.0.1", presto.port, "ibmlhapikey_bench", lambda: "bench-key",
                                    "iceberg_data", schema, "annotations", verify=str(ca_path))  # fmt: skip

            figures["presto_rows_s"] = batched(base / "presto", engine_in("batched"), EVENTS)
            figures["presto_baseline_rows_s"] = one_statement_per_event(
                engine_in("baseline"), BASELINE_PRESTO_EVENTS
            )
            figures["presto_ratio"] = figures["presto_rows_s"] / figures["presto_baseline_rows_s"]
        finally:
            presto.stop()
    return figures
