"""The service itself, as `serve` processes on 127.0.0.1. Overhead: one-task `/predict`
with the instant echo provider, `WORKERS=2`, 4 client threads, beside a bare uvicorn
app answering the same JSON (the floor any Python service pays). Local model: output
tokens per second through `/predict` beside llama-cpp-python called directly with the
same prompts and threads, in the same run. Memory: resident size of a `serve` worker
after the model loaded and answered. Start-up: `serve` launched to the first 200 on
`/health`."""

from __future__ import annotations

import statistics
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx

from label_studio_watsonx.llm.local import LocalProvider
from label_studio_watsonx.settings import GenerationParams
from tests.fixtures import REFERENCE_CONFIG, fixture
from tests.processes import ServerProcess, free_port, service_process

TITLE = "Service overhead, local model, memory, start-up"
REQUESTS = 2000
PROMPTS = ["What is the capital of France?", "Explain why the sky is blue.",
           "Write two sentences about rivers.", "List three fruits and their colours."]  # fmt: skip
FIGURES = [
    ("p50_ms", "/predict p50 latency, echo provider, WORKERS=2", "ms", 2),
    ("p99_ms", "/predict p99 latency", "ms", 2),
    ("rps", "/predict requests per second (4 clients)", "/s", 0),
    ("bare_p50_ms", "bare uvicorn app p50 latency, same load", "ms", 2),
    ("bare_rps", "bare uvicorn app requests per second", "/s", 0),
    ("service_tokens_s", "local model through /predict", "tokens/s", 1),
    ("direct_tokens_s", "local model, llama-cpp-python directly", "tokens/s", 1),
    ("tokens_ratio", "through the service / directly", "x", 2),
    ("rss_mb", "resident memory of a serve worker, model loaded", "MB", 0),
    ("startup_s", "serve to first 200 on /health", "s", 2),
]

BARE_APP = textwrap.dedent('''
    import json
    BODY = json.dumps({"results": [{"result": [], "model_version": "x"}]}).encode()
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": BODY})
''')


def load(url: str, body: dict, total: int, clients: int = 4) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def run(count: int) -> None:
        seen = []
        with httpx.Client(timeout=60) as client:
            for _ in range(count):
                started = time.perf_counter()
                assert client.post(url, json=body).status_code == 200
                seen.append(time.perf_counter() - started)
        with lock:
            latencies.extend(seen)

    threads = [threading.Thread(target=run, args=(total // clients,)) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(latencies), len(latencies) / (time.perf_counter() - started)


def measure() -> dict[str, float]:
    figures: dict[str, float] = {}
    body = fixture("predict_single_task_fetch.json")["body"]
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        service = service_process(base / "echo", LLM_PROVIDER="echo", WORKERS="2", LOG_LEVEL="WARNING")
        service.start("/health", timeout=60)
        try:
            load(service.url + "/predict", body, 200)  # warm up both workers
            latencies, figures["rps"] = load(service.url + "/predict", body, REQUESTS)
        finally:
            service.stop()
        figures["p50_ms"] = statistics.median(latencies) * 1000
        figures["p99_ms"] = latencies[int(len(latencies) * 0.99) - 1] * 1000

        (base / "bare_app.py").write_text(BARE_APP)
        port = free_port()
        bare = ServerProcess(
            [sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port), "--workers", "2",
             "--log-level", "warning", "--app-dir", str(base)],
            {"PATH": "/usr/bin:/bin"}, port, base / "bare.log",
        )  # fmt: skip
        bare.start("/", timeout=60)
        try:
            load(bare.url + "/", body, 200)
            latencies, figures["bare_rps"] = load(bare.url + "/", body, REQUESTS)
        finally:
            bare.stop()
        figures["bare_p50_ms"] = statistics.median(latencies) * 1000

        params = GenerationParams(max_new_tokens=96)
        direct = LocalProvider(threads=1)
        direct.complete("Hello", GenerationParams(max_new_tokens=4))  # load, warm up
        produced, seconds = 0, 0.0
        for prompt in PROMPTS:
            started = time.perf_counter()
            produced += direct.complete(prompt, params).output_tokens
            seconds += time.perf_counter() - started
        direct.close()
        figures["direct_tokens_s"] = produced / seconds

        started = time.perf_counter()
        local = service_process(base / "local", LLM_PROVIDER="local", LOCAL_THREADS="1",
                                MAX_NEW_TOKENS="96", LLM_CACHE="off", LOG_LEVEL="WARNING",
                                DEFAULT_PROMPT="{text}")  # fmt: skip
        local.start("/health", timeout=60)
        figures["startup_s"] = time.perf_counter() - started
        try:
            with httpx.Client(timeout=300) as client:
                while client.get(local.url + "/health").json()["model_state"] != "ready":
                    time.sleep(0.05)
                warm_up = {"tasks": [{"id": 99, "data": {"text": "Hello"}}],
                           "label_config": REFERENCE_CONFIG}  # fmt: skip
                client.post(local.url + "/predict", json=warm_up)
                before = _output_tokens(client, local.url)
                seconds = 0.0
                for n, prompt in enumerate(PROMPTS):
                    request = {"tasks": [{"id": n, "data": {"text": prompt}}],
                               "label_config": REFERENCE_CONFIG}  # fmt: skip
                    started = time.perf_counter()
                    assert client.post(local.url + "/predict", json=request).status_code == 200
                    seconds += time.perf_counter() - started
                produced = _output_tokens(client, local.url) - before
            figures["service_tokens_s"] = produced / seconds
            figures["rss_mb"] = local.rss_mb()
        finally:
            local.stop()
    figures["tokens_ratio"] = figures["service_tokens_s"] / figures["direct_tokens_s"]
    return figures


def _output_tokens(client: httpx.Client, url: str) -> float:
    page = client.get(url + "/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in page.splitlines()
               if line.startswith("lsw_llm_tokens_total") and 'direction="output"' in line)  # fmt: skip
