"""100 tasks in one `/predict` against the loopback watsonx.ai test server (the real
SDK; 1 s per generation; the server allows 8 requests in any second, the common
paid plan's limit), with `WATSONX_CONCURRENCY=8` and `WATSONX_RATE_LIMIT=8`, beside
the one-task-at-a-time loop of the setup this replaces (`ModelInference.generate` per
task), measured in the same run."""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

from fastapi.testclient import TestClient

from label_studio_watsonx.app import create_app
from label_studio_watsonx.settings import Settings
from tests.fixtures import REFERENCE_CONFIG
from tests.watsonx_server import WatsonxTestServer, make_ca

TITLE = "watsonx.ai: many tasks in one request"
TASKS = int(os.environ.get("BENCH_WATSONX_TASKS", "100"))
LATENCY = float(os.environ.get("BENCH_WATSONX_LATENCY", "1.0"))
FIGURES = [
    ("service_s", f"service, {TASKS} tasks, concurrency 8", "s", 1),
    ("loop_s", f"one task at a time, {TASKS} tasks", "s", 1),
    ("speedup", "speed-up", "x", 1),
    ("max_per_second", "most requests the server saw in any second (limit 8)", "", 0),
    ("rejected", "requests answered 429", "", 0),
]


def measure() -> dict[str, float]:
    for name in ("WX_CLIENT_VERIFY_REQUESTS", "WATSONX_MAX_RETRIES", "WATSONX_DELAY_TIME"):
        os.environ.pop(name, None)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as folder:
        authority, ca_path = make_ca(folder)
        server = WatsonxTestServer(authority.issue_cert("127.0.0.1"), latency=LATENCY,
                                   rate_limit=8).start()  # fmt: skip
        try:
            env = {"LLM_PROVIDER": "watsonx", "WATSONX_API_KEY": "good-key",
                   "WATSONX_PROJECT_ID": "proj-1", "WATSONX_URL": server.url,
                   "WATSONX_PLATFORM_URL": server.url, "WATSONX_AUTH_URL": server.auth_url,
                   "WATSONX_VERIFY": ca_path, "WATSONX_CONCURRENCY": "8",
                   "WATSONX_RATE_LIMIT": "8", "LLM_CACHE": "off", "PREDICT_TIMEOUT": "600",
                   "DATA_DIR": str(Path(folder) / "data")}  # fmt: skip
            tasks = [{"id": n, "data": {"text": f"question {n}"}} for n in range(TASKS)]
            body = {"tasks": tasks, "label_config": REFERENCE_CONFIG, "project": "1.1"}
            with TestClient(create_app(Settings.from_env(env))) as client:
                client.get("/health")
                while client.get("/health").json()["model_state"] != "ready":
                    time.sleep(0.05)
                server.reset_records()
                started = time.perf_counter()
                results = client.post("/predict", json=body).json()["results"]
                service = time.perf_counter() - started
            assert all(results), "every task should have its prediction"
            window = server.max_requests_in_window(1.0)
            rejected = server.statuses().count(429)

            from ibm_watsonx_ai import Credentials
            from ibm_watsonx_ai.foundation_models import ModelInference

            model = ModelInference(model_id="ibm/granite-3-8b-instruct", project_id="proj-1",
                                   credentials=Credentials(**server.credentials_kwargs(ca_path)))  # fmt: skip
            started = time.perf_counter()
            for task in tasks:
                model.generate(prompt=f"Answer the following question\n\n{task['data']['text']}",
                               params={"max_new_tokens": 50})  # fmt: skip
            loop = time.perf_counter() - started
        finally:
            server.stop()
    return {"service_s": service, "loop_s": loop, "speedup": loop / service,
            "max_per_second": window, "rejected": rejected}  # fmt: skip
