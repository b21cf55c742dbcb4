"""The sync under faults, with the service as real processes: exact row counts after each."""

from __future__ import annotations

import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.processes import ServerProcess, service_process
from tests.webhooks import created, textarea


def count_rows(service: ServerProcess) -> tuple[int, int]:
    path = service.env["DATA_DIR"] + "/annotations.db"
    try:
        db = sqlite3.connect(path, timeout=30)
        try:
            return db.execute("SELECT count(*), count(DISTINCT annotation_id) FROM annotations").fetchone()
        finally:
            db.close()
    except sqlite3.OperationalError:
        return (0, 0)


def wait_until_flushed(service: ServerProcess, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sync = httpx.get(service.url + "/health", timeout=10).json()["sync"]
        if sync["pending"] == 0:
            return sync
        time.sleep(0.2)
    raise AssertionError(f"still pending after {timeout}s: {sync}")


def send(url: str, ids: range, client: httpx.Client) -> int:
    acknowledged = 0
    for n in ids:
        body = created(n, task_id=n, result=[textarea("response", f"answer {n}")])
        response = client.post(url + "/data/upload", json=body)
        assert response.status_code == 200, response.text
        acknowledged += 1
    return acknowledged


def test_four_workers_receiving_at_once_write_each_row_once(tmp_path) -> None:
    service = service_process(tmp_path, LLM_PROVIDER="echo", WORKERS="4", THREADS="4")
    service.start("/health", timeout=60)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool, httpx.Client(timeout=30) as client:
            # 8 senders: 1,000 distinct annotations, each sent twice by different senders.
            chunks = [range(start, start + 125) for start in range(1, 1001, 125)]
            jobs = [pool.submit(send, service.url, chunk, client) for chunk in chunks]
            jobs += [pool.submit(send, service.url, chunk, client) for chunk in reversed(chunks)]
            assert sum(job.result() for job in jobs) == 2000
        sync = wait_until_flushed(service)
        assert count_rows(service) == (1000, 1000)
        assert sync["dead"] == 0
    finally:
        service.stop()


def test_sigkill_mid_flush_then_restart_loses_and_doubles_nothing(tmp_path) -> None:
    env = {"LLM_PROVIDER": "echo", "SYNC_BATCH_SIZE": "20"}
    service = service_process(tmp_path, **env)
    service.start("/health", timeout=60)
    with httpx.Client(timeout=60) as client:
        for start in (1, 501, 1001):  # three bulk bodies: 1,500 events queued at once
            annotations = [created(n, task_id=n, result=[textarea("response", f"answer {n}")])
                           for n in range(start, start + 500)]  # fmt: skip
            body = {"action": "ANNOTATIONS_CREATED", "project": annotations[0]["project"],
                    "annotation": [a["annotation"] for a in annotations],
                    "task": [a["task"] for a in annotations]}  # fmt: skip
            response = client.post(service.url + "/data/upload", json=body)
            assert response.status_code == 200 and response.json()["new"] == 500
    deadline = time.monotonic() + 60
    while count_rows(service)[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    written_before = count_rows(service)[0]
    service.stop(signal.SIGKILL)
    assert 0 < written_before < 1500, "the kill should land while rows are still being written"

    restarted = service_process(tmp_path, **env)
    restarted.start("/health", timeout=60)
    try:
        wait_until_flushed(restarted)
        assert count_rows(restarted) == (1500, 1500)
    finally:
        restarted.stop()
