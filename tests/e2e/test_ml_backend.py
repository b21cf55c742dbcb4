"""This service as the ML backend of a real Label Studio, answering with the real local model.

Label Studio (from PyPI) and the service run as separate processes on 127.0.0.1.
The test drives Label Studio's own API the way its UI does: create a project with
the reference labeling config, import tasks, connect the model, retrieve
predictions, then ask interactively.
"""

from __future__ import annotations

import httpx
import pytest

from label_studio_watsonx.llm.local import LocalProvider
from label_studio_watsonx.settings import Settings
from tests.fixtures import REFERENCE_CONFIG
from tests.processes import ServerProcess, service_process

pytestmark = pytest.mark.e2e

TEXTS = ["The sky is blue.", "Paris is the capital of France.", "Water boils at 100 C."]
SERVICE_ENV = {"MAX_NEW_TOKENS": "48", "LOCAL_THREADS": "1", "LOG_LEVEL": "DEBUG"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    server = service_process(tmp_path_factory.mktemp("service"), **SERVICE_ENV)
    server.start("/health", timeout=60)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def local_model():
    """The same model, called directly, to know what the service should answer."""
    provider = LocalProvider(threads=1)
    yield provider
    provider.close()


def response_text(result: list[dict]) -> str:
    texts = [item["value"]["text"] for item in result if item["from_name"] == "response"]
    assert len(texts) == 1, result
    return texts[0][0]


def test_predictions_for_every_task_come_from_the_local_model(
    ls_api: httpx.Client, service: ServerProcess, local_model: LocalProvider
) -> None:
    project = ls_api.post(
        "/api/projects", json={"title": "e2e predictions", "label_config": REFERENCE_CONFIG}
    )
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    imported = ls_api.post(
        f"/api/projects/{project_id}/import", json=[{"text": text} for text in TEXTS]
    )
    assert imported.status_code == 201, imported.text

    backend = ls_api.post(
        "/api/ml",
        json={"url": service.url, "project": project_id, "title": "watsonx", "is_interactive": True},
    )
    assert backend.status_code == 201, backend.text
    assert backend.json()["readable_state"] == "Connected", backend.json()
    model_version = backend.json()["model_version"]
    assert model_version.startswith("SmolLM2-135M-Instruct"), model_version

    retrieved = ls_api.post(
        "/api/dm/actions",
        params={"id": "retrieve_tasks_predictions", "project": project_id},
        json={"selectedItems": {"all": True, "excluded": []}},
    )
    assert retrieved.status_code == 200, retrieved.text

    tasks = ls_api.get("/api/tasks", params={"project": project_id, "page_size": 100}).json()["tasks"]
    assert len(tasks) == 3
    settings = Settings.from_env(SERVICE_ENV)
    for task in tasks:
        predictions = ls_api.get("/api/predictions", params={"task": task["id"]}).json()
        assert len(predictions) == 1, predictions
        prediction = predictions[0]
        assert prediction["model_version"] == model_version
        text = next(t for t in TEXTS if t in str(prediction["result"]))
        expected = local_model.complete(f"Answer the following question\n\n{text}", settings.generation)
        assert expected.text, "the local model wrote nothing"
        assert response_text(prediction["result"]) == expected.text

    # The service counted what it generated.
    page = httpx.get(service.url + "/metrics").text
    assert 'lsw_predictions_total{outcome="ok"} 3.0' in page


def test_interactive_prompt_answer_reaches_label_studio(
    ls_api: httpx.Client, service: ServerProcess, local_model: LocalProvider
) -> None:
    project_id = ls_api.post(
        "/api/projects", json={"title": "e2e interactive", "label_config": REFERENCE_CONFIG}
    ).json()["id"]
    ls_api.post(f"/api/projects/{project_id}/import", json=[{"text": TEXTS[0]}])
    backend = ls_api.post(
        "/api/ml",
        json={"url": service.url, "project": project_id, "title": "watsonx", "is_interactive": True},
    ).json()
    task_id = ls_api.get("/api/tasks", params={"project": project_id}).json()["tasks"][0]["id"]
    typed = "What color is it? Answer in {one} word."
    context = {
        "result": [
            {
                "from_name": "prompt",
                "to_name": "context",
                "type": "textarea",
                "value": {"text": [typed]},
            }
        ]
    }

    answer = ls_api.post(
        f"/api/ml/{backend['id']}/interactive-annotating", json={"task": task_id, "context": context}
    )

    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    settings = Settings.from_env(SERVICE_ENV)
    wrapped = settings.prompt_template.replace("{text}", TEXTS[0]).replace("{prompt}", typed)
    expected = local_model.complete(wrapped, settings.generation)
    assert response_text(data["result"]) == expected.text
    prompt_echo = [item for item in data["result"] if item["from_name"] == "prompt"]
    assert prompt_echo[0]["value"]["text"] == [typed]  # braces kept as typed

    # The typed prompt is remembered: the project's model version now differs.
    setup = ls_api.get(f"/api/ml/{backend['id']}").json()
    assert setup["model_version"] != backend["model_version"]
