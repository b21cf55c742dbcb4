"""The service with the real embedded model (SmolLM2-135M-Instruct on the CPU)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from label_studio_watsonx import metrics
from tests.fixtures import fixture

CHOICES_ONLY = """
<View>
  <Text name="review" value="$review"/>
  <Choices name="sentiment" toName="review" choice="{choice}">
    <Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>
  </Choices>
</View>
"""
REVIEWS = ["I loved every minute, wonderful film.", "Terrible, boring and far too long.",
           "It was a film.", "The actors were great but the plot made no sense."]  # fmt: skip
LOCAL = {"LLM_PROVIDER": "local", "MAX_NEW_TOKENS": "32", "LOCAL_THREADS": "1"}


@pytest.fixture
def local_client(make_client):
    return lambda **env: make_client(**{**LOCAL, **env})


def llm_calls() -> float:
    return sum(
        sample.value
        for family in metrics.LLM_CALLS.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


@pytest.mark.parametrize("choice", ["single", "multiple"])
def test_choices_are_always_allowed_labels(local_client, choice: str) -> None:
    client = local_client(DEFAULT_PROMPT="What is the sentiment of this review? {review}")
    body = {
        "tasks": [{"id": n, "data": {"review": text}} for n, text in enumerate(REVIEWS)],
        "label_config": CHOICES_ONLY.format(choice=choice),
        "project": "3.1700000000",
    }
    results = client.post("/predict", json=body).json()["results"]
    assert len(results) == len(REVIEWS)
    for prediction in results:
        (region,) = prediction["result"]
        chosen = region["value"]["choices"]
        assert region["from_name"] == "sentiment" and region["type"] == "choices"
        assert chosen and set(chosen) <= {"Positive", "Negative", "Neutral"}
        if choice == "single":
            assert len(chosen) == 1


def test_concurrent_requests_get_the_same_answers_as_sequential_ones(local_client) -> None:
    client = local_client()
    body = fixture("predict_batch.json")["body"]
    sequential = [client.post("/predict", json=body).json()["results"] for _ in range(2)]
    assert sequential[0] == sequential[1]  # greedy decoding is deterministic

    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda _: client.post("/predict", json=body), range(4)))
    for response in together:
        assert response.status_code == 200
        assert response.json()["results"] == sequential[0]


def test_health_and_setup_never_call_the_model(local_client) -> None:
    client = local_client()
    before = llm_calls()
    for _ in range(5):
        assert client.get("/health").json()["status"] == "UP"
        assert client.post("/setup", json=fixture("setup.json")["body"]).status_code == 200
    assert llm_calls() == before
    client.post("/predict", json=fixture("predict_single_task_fetch.json")["body"])
    assert llm_calls() == before + 1


def test_prompt_longer_than_the_context_is_refused_with_a_reason(local_client, caplog) -> None:
    client = local_client(LOCAL_CONTEXT_SIZE="256")
    body = fixture("predict_batch.json")["body"]
    body["tasks"][0]["data"]["text"] = "word " * 2000
    response = client.post("/predict", json=body)
    results = response.json()["results"]
    assert response.status_code == 200
    assert results[0] == []
    assert results[1]["result"] and results[2]["result"]
    assert "LOCAL_CONTEXT_SIZE" in caplog.text and "task=1" in caplog.text


def test_health_reports_the_loaded_model(local_client) -> None:
    client = local_client()
    client.post("/predict", json=fixture("predict_single_task_fetch.json")["body"])
    health = client.get("/health").json()
    assert health["provider"] == "local"
    assert health["model"] == "SmolLM2-135M-Instruct.Q4_1"
    assert health["model_state"] == "ready"
    json.dumps(health)
