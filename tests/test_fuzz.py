"""Property-based fuzzing of every route (hypothesis): thousands of generated requests.

For every request: no 5xx, errors in the ``{"error": ...}`` shape, and afterwards
``/health`` still answers and the outbox holds exactly the events that were
acknowledged (the flusher is held back so nothing leaves it).
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from label_studio_watsonx.app import create_app
from label_studio_watsonx.settings import Settings
from tests.fixtures import REFERENCE_CONFIG, fixture

EXAMPLES = 700
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))  # fmt: skip

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.sampled_from(
    ["", "{text}", "{{", "}", "$text", "<View/>", "\x00", "' OR 1=1 --", "ANNOTATION_CREATED",
     "1.1796397748", "9" * 30, "<|im_end|>"]
)  # fmt: skip
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=25,
)


def mutated(base: dict) -> st.SearchStrategy[dict]:
    """A captured body with some fields replaced by anything, or dropped."""
    keys = sorted(base)
    return st.fixed_dictionaries(
        {},
        optional={key: st.just(base[key]) | json_values for key in keys},
    ).map(lambda body: body)


def annotation_bodies() -> st.SearchStrategy[dict]:
    created = fixture("webhook_annotation_created.json")["body"]
    annotation = st.fixed_dictionaries(
        {"id": st.integers(-5, 2**64) | json_values},
        optional={"result": json_values | st.just(created["annotation"]["result"]),
                  "updated_at": text | st.just("2026-12-04T15:22:33Z"),
                  "completed_by": json_values, "was_cancelled": json_values,
                  "lead_time": json_values, "task": json_values},
    )  # fmt: skip
    project = st.fixed_dictionaries(
        {"id": st.integers(0, 10) | json_values},
        optional={"label_config": st.just(REFERENCE_CONFIG) | text, "token": text},
    )
    return st.fixed_dictionaries(
        {"action": st.sampled_from(["ANNOTATION_CREATED", "ANNOTATION_UPDATED",
                                    "ANNOTATIONS_CREATED", "ANNOTATIONS_DELETED", "OTHER"])},
        optional={"annotation": annotation | st.lists(annotation, max_size=3) | json_values,
                  "annotations": st.lists(st.fixed_dictionaries({"id": json_values}), max_size=3),
                  "task": json_values | st.just(created["task"]), "project": project},
    )  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fuzz")
    app = create_app(Settings.from_env({"LLM_PROVIDER": "echo", "DATA_DIR": str(data_dir),
                                        "MAX_BODY_BYTES": "65536"}))  # fmt: skip
    app.state.sync.flusher.start = lambda: None  # keep every acknowledged event in the outbox
    with TestClient(app) as client:
        client.acknowledged = 0
        yield client
    sync = app.state.sync
    status = sync.outbox.status()
    assert status["pending"] + status["dead"] == client.acknowledged
    # Every accepted event either reaches the table or the dead-letter list.
    assert sync.flusher.drain(timeout=300)
    assert sync.outbox.status()["pending"] == 0


def check(response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert isinstance(response.json().get("error"), str)


@FUZZ
@given(body=json_values)
def test_any_json_to_any_route(fuzz_client, body) -> None:
    for path in ("/predict", "/setup", "/webhook", "/data/upload"):
        response = fuzz_client.post(path, json=body)
        check(response)
        if path in ("/webhook", "/data/upload") and response.status_code == 200:
            fuzz_client.acknowledged += response.json().get("new", 0)


@FUZZ
@given(body=mutated(fixture("predict_batch.json")["body"]))
def test_near_valid_predict_requests(fuzz_client, body) -> None:
    check(fuzz_client.post("/predict", json=body))


@FUZZ
@given(body=mutated(fixture("setup.json")["body"]))
def test_near_valid_setup_requests(fuzz_client, body) -> None:
    check(fuzz_client.post("/setup", json=body))


@FUZZ
@given(body=annotation_bodies(), path=st.sampled_from(["/data/upload", "/webhook"]))
def test_annotation_webhooks(fuzz_client, body, path) -> None:
    response = fuzz_client.post(path, json=body)
    check(response)
    if response.status_code == 200:
        fuzz_client.acknowledged += response.json()["new"]


@FUZZ
@given(raw=st.binary(max_size=200), content_type=st.sampled_from(
    ["application/json", "text/plain", "", "application/json; charset=latin-1"]))
def test_raw_bytes(fuzz_client, raw, content_type) -> None:
    for path in ("/predict", "/data/upload"):
        check(fuzz_client.post(path, content=raw, headers={"content-type": content_type}))


def test_deep_nesting_and_huge_bodies(fuzz_client) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    check(fuzz_client.post("/predict", content=deep, headers={"content-type": "application/json"}))
    huge = json.dumps({"action": "X", "pad": "x" * 70_000})
    response = fuzz_client.post("/data/upload", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_still_healthy_after_fuzzing(fuzz_client) -> None:
    assert fuzz_client.get("/health").json()["status"] == "UP"
