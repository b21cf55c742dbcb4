"""``label-studio-watsonx serve`` as a real process: settings, workers, auth, metrics."""

from __future__ import annotations

import base64
import subprocess
import sys

import httpx

from tests.fixtures import fixture
from tests.processes import service_process


def test_bad_setting_stops_start_up_with_one_line_naming_it(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "WORKERS": "many", "DATA_DIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "label_studio_watsonx", "serve"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert "WORKERS='many'" in lines[0] and "whole number" in lines[0]


def test_two_workers_serve_with_basic_auth_and_shared_metrics(tmp_path) -> None:
    server = service_process(
        tmp_path, LLM_PROVIDER="echo", WORKERS="2", THREADS="4",
        BASIC_AUTH_USER="ls", BASIC_AUTH_PASS="pw-for-test",
    )  # fmt: skip
    server.start("/health", timeout=60)
    try:
        token = base64.b64encode(b"ls:pw-for-test").decode()
        auth = {"Authorization": f"Basic {token}"}
        body = fixture("predict_batch.json")["body"]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.post("/predict", json=body).status_code == 401
            for _ in range(20):
                response = client.post("/predict", json=body, headers=auth)
                assert response.status_code == 200
                assert len(response.json()["results"]) == 3
            page = client.get("/metrics", headers=auth).text
        # 20 requests, spread over two processes, counted once each in one page.
        line = 'lsw_http_requests_total{method="POST",route="/predict",status="200"}'
        counted = [row for row in page.splitlines() if row.startswith(line)]
        assert counted and float(counted[0].split()[-1]) == 20.0
        assert "pw-for-test" not in server.log_text()
        assert "POST /predict 200" in server.log_text()
    finally:
        server.stop()


def test_predicting_1000_tasks_again_and_again_does_not_grow_memory(tmp_path) -> None:
    server = service_process(tmp_path, LLM_PROVIDER="echo", LOG_LEVEL="WARNING")
    server.start("/health", timeout=60)
    body = fixture("predict_batch.json")["body"]
    body["tasks"] = [{"id": n, "data": {"text": f"question number {n} " * 20}} for n in range(1000)]
    try:
        sizes = []
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for _ in range(8):
                response = client.post("/predict", json=body)
                assert response.status_code == 200 and len(response.json()["results"]) == 1000
                sizes.append(server.rss_mb())
        # The first rounds warm caches up; after that the size stays put.
        assert sizes[-1] - sizes[2] < 15, sizes
    finally:
        server.stop()
