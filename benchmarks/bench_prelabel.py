"""500 tasks pre-annotated in a real Label Studio (from `make e2e-env`), answers from
the loopback watsonx.ai test server at a fixed 200 ms per generation, concurrency 8:
`prelabel` (chunks of 20, predictions written back in bulk) beside Label Studio's
own path, "Retrieve predictions" on all tasks, which sends them to `/predict` in one
request; measured in the same run. Both use the same service code and provider; the
cache is off."""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import httpx

from label_studio_watsonx.labelstudio import LabelStudio
from label_studio_watsonx.llm import create_provider
from label_studio_watsonx.predictions import Predictor
from label_studio_watsonx.prelabel import prelabel
from label_studio_watsonx.settings import Settings
from label_studio_watsonx.state import ProjectPrompts
from tests.fixtures import REFERENCE_CONFIG
from tests.processes import label_studio_process, service_process
from tests.watsonx_server import WatsonxTestServer, make_ca

TITLE = "Pre-annotation: prelabel against Label Studio's one-request batch"
TASKS = int(os.environ.get("BENCH_PRELABEL_TASKS", "500"))
LABEL_STUDIO = Path(__file__).parent.parent / ".e2e-venv" / "bin" / "label-studio"
FIGURES = [
    ("prelabel_tasks_s", f"prelabel, {TASKS} tasks", "tasks/s", 1),
    ("batch_tasks_s", "Retrieve predictions (one request)", "tasks/s", 1),
    ("ratio", "prelabel / one request", "x", 2),
]


def make_project(client: httpx.Client, title: str) -> int:
    project_id = client.post("/api/projects", json={"title": title, "label_config": REFERENCE_CONFIG}).json()["id"]
    client.post(f"/api/projects/{project_id}/import",
                json=[{"text": f"question {n}"} for n in range(TASKS)])  # fmt: skip
    return project_id


def count(client: httpx.Client, project_id: int) -> int:
    return len(client.get("/api/predictions", params={"project": project_id}).json())


def measure() -> dict[str, float]:
    if not LABEL_STUDIO.exists():
        raise SystemExit(f"{LABEL_STUDIO} is missing: run `make e2e-env` first")
    for name in ("WX_CLIENT_VERIFY_REQUESTS", "WATSONX_MAX_RETRIES", "WATSONX_DELAY_TIME"):
        os.environ.pop(name, None)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        authority, ca_path = make_ca(folder)
        server = WatsonxTestServer(authority.issue_cert("127.0.0.1"), latency=0.2).start()
        studio, token = label_studio_process(str(LABEL_STUDIO), base / "ls")
        studio.start("/health", timeout=240)
        env = {"LLM_PROVIDER": "watsonx", "WATSONX_API_KEY": "good-key", "WATSONX_PROJECT_ID": "p",
               "WATSONX_URL": server.url, "WATSONX_PLATFORM_URL": server.url,
               "WATSONX_AUTH_URL": server.auth_url, "WATSONX_VERIFY": ca_path,
               "WATSONX_CONCURRENCY": "8", "WATSONX_RATE_LIMIT": "1000", "LLM_CACHE": "off",
               "LABEL_STUDIO_URL": studio.url, "LABEL_STUDIO_API_KEY": token}  # fmt: skip
        service = service_process(base / "service", **env, PREDICT_TIMEOUT="95", LOG_LEVEL="WARNING")
        service.start("/health", timeout=60)
        try:
            with httpx.Client(base_url=studio.url, headers={"Authorization": f"Token {token}"},
                              timeout=600) as client:  # fmt: skip
                project = make_project(client, "prelabel")
                settings = Settings.from_env({**env, "DATA_DIR": str(base / "cli")})
                provider = create_provider(settings)
                provider.start()
                predictor = Predictor(settings, provider, ProjectPrompts(settings.data_dir))
                started = time.perf_counter()
                report = prelabel(LabelStudio(studio.url, token, timeout=600), predictor, project,
                                  progress=False)  # fmt: skip
                prelabel_s = time.perf_counter() - started
                assert report.done == TASKS == count(client, project), report.summary()

                project = make_project(client, "batch")
                client.post("/api/ml", json={"url": service.url, "project": project, "title": "m"})
                started = time.perf_counter()
                client.post("/api/dm/actions", params={"id": "retrieve_tasks_predictions",
                                                       "project": project},
                            json={"selectedItems": {"all": True, "excluded": []}})  # fmt: skip
                batch_s = time.perf_counter() - started
                done = count(client, project)
        finally:
            service.stop()
            studio.stop()
            server.stop()
    figures = {"prelabel_tasks_s": TASKS / prelabel_s, "batch_tasks_s": done / batch_s}
    figures["ratio"] = figures["prelabel_tasks_s"] / figures["batch_tasks_s"]
    return figures
