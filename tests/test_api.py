"""The ML-backend protocol over the requests a real Label Studio sent.

Most tests use the echo provider, whose answer is the prompt's last line, so what
the service built can be checked exactly; ``test_local_model_*`` run the real model.
"""

from __future__ import annotations

import base64

import pytest

from tests.fixtures import REFERENCE_CONFIG, fixture, fixture_names

CHOICES_CONFIG = """
<View>
  <Text name="review" value="$review"/>
  <TextArea name="prompt" toName="review"/>
  <TextArea name="response" toName="review"/>
  <Choices name="sentiment" toName="review" choice="single">
    <Choice value="Positive"/><Choice value="Negative"/><Choice value="Neutral"/>
  </Choices>
</View>
"""


def replay(client, name: str, **changes):
    request = fixture(name)
    body = request["body"]
    if isinstance(body, dict):
        body.update(changes)
    return client.request(request["method"], request["path"], json=body)


@pytest.mark.parametrize("name", fixture_names())
def test_every_captured_request_is_answered(make_client, name: str) -> None:
    client = make_client()
    response = replay(client, name)
    assert response.status_code == 200, response.text
    body = response.json()
    path = fixture(name)["path"]
    if path in ("/", "/health"):
        assert body["status"] == "UP"
    elif path == "/setup":
        assert body["model_version"].startswith("echo@")
    elif path == "/predict":
        tasks = fixture(name)["body"]["tasks"]
        assert len(body["results"]) == len(tasks)
        assert all(result["result"] for result in body["results"])
    elif path == "/versions":
        assert body["versions"] and body["versions"][0].startswith("echo@")
    else:
        assert body["status"] == "ok"
        assert body["action"] == fixture(name)["body"]["action"]


def test_batch_keeps_task_order_and_fills_response_and_prompt(make_client) -> None:
    client = make_client()
    response = replay(client, "predict_batch.json")
    results = response.json()["results"]
    texts = [task["data"]["text"] for task in fixture("predict_batch.json")["body"]["tasks"]]
    for text, prediction in zip(texts, results, strict=True):
        by_name = {item["from_name"]: item for item in prediction["result"]}
        assert by_name["response"]["value"]["text"] == [text]
        assert by_name["response"]["to_name"] == "context"
        assert by_name["response"]["type"] == "textarea"
        assert by_name["prompt"]["value"]["text"] == [f"Answer the following question\n\n{text}"]
        assert prediction["model_version"] == response.json()["model_version"]


def test_task_missing_a_prompt_field_gets_no_prediction_and_others_do(make_client) -> None:
    client = make_client(DEFAULT_PROMPT="Question: {question}")
    body = fixture("predict_batch.json")["body"]
    body["tasks"][1]["data"]["question"] = "Why?"
    response = client.post("/predict", json=body)
    results = response.json()["results"]
    assert response.status_code == 200
    assert results[0] == [] and results[2] == []
    assert results[1]["result"][0]["value"]["text"] == ["Question: Why?"]


@pytest.mark.parametrize(
    "context",
    [None, {}, {"result": []}, {"result": "junk"}, {"result": [{"from_name": "other"}]},
     {"result": [{"from_name": "prompt", "value": {"text": ["   "]}}]}],
)  # fmt: skip
def test_interactive_context_without_a_prompt_falls_back_to_the_default(make_client, context):
    client = make_client()
    body = fixture("predict_interactive.json")["body"]
    body["params"]["context"] = context
    response = client.post("/predict", json=body)
    assert response.status_code == 200
    prompt = response.json()["results"][0]["result"][1]["value"]["text"][0]
    assert prompt == "Answer the following question\n\nWater boils at 100 C."


def test_typed_prompt_is_wrapped_with_the_task_text_and_braces_are_kept(make_client) -> None:
    client = make_client(PROMPT_TEMPLATE="{text} || {prompt}")
    body = fixture("predict_interactive.json")["body"]
    body["params"]["context"]["result"][0]["value"]["text"] = ["Say {x} and {{y}}"]
    result = client.post("/predict", json=body).json()["results"][0]["result"]
    assert result[0]["value"]["text"] == ["Water boils at 100 C. || Say {x} and {{y}}"]
    assert result[1]["value"]["text"] == ["Say {x} and {{y}}"]


def test_last_interactive_prompt_is_remembered_across_restarts(make_client, tmp_path) -> None:
    data_dir = str(tmp_path / "shared")
    first = make_client(DATA_DIR=data_dir)
    before = replay(first, "setup.json").json()["model_version"]
    replay(first, "predict_interactive.json")
    after = replay(first, "setup.json").json()["model_version"]
    assert after != before

    restarted = make_client(DATA_DIR=data_dir)
    result = replay(restarted, "predict_single_task_fetch.json").json()["results"][0]["result"]
    assert result[1]["value"]["text"] == ["Summarize the context"]
    assert replay(restarted, "setup.json").json()["model_version"] == after


def test_model_version_changes_with_the_default_prompt(make_client, tmp_path) -> None:
    one = make_client(DATA_DIR=str(tmp_path / "a"))
    two = make_client(DATA_DIR=str(tmp_path / "b"), DEFAULT_PROMPT="Summarize: {text}")
    same = make_client(DATA_DIR=str(tmp_path / "c"))
    versions = [replay(c, "setup.json").json()["model_version"] for c in (one, two, same)]
    assert versions[0] != versions[1]
    assert versions[0] == versions[2]


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("<View><Image name='img' value='$image'/><TextArea name='prompt' toName='img'/>"
         "<TextArea name='response' toName='img'/></View>", "Image"),
        ("<View><Text name='t' value='$text'/></View>", "no <TextArea> or <Choices>"),
        ("<View><Text name='t' value='$text'", "not valid XML"),
    ],
)  # fmt: skip
def test_unservable_config_gets_a_clear_message(make_client, config: str, needle: str) -> None:
    client = make_client()
    for name, field in (("setup.json", "schema"), ("predict_batch.json", "label_config")):
        response = replay(client, name, **{field: config})
        assert response.status_code == 422
        assert needle in response.json()["error"]


def test_choices_answer_is_one_of_the_allowed_labels(make_client) -> None:
    client = make_client(DEFAULT_PROMPT="Sentiment of: {review}")
    body = {
        "tasks": [{"id": 1, "data": {"review": "Neutral"}}, {"id": 2, "data": {"review": "meh"}}],
        "label_config": CHOICES_CONFIG,
        "project": "7.1700000000",
    }
    results = client.post("/predict", json=body).json()["results"]
    first = {item["from_name"]: item["value"] for item in results[0]["result"]}
    assert first["sentiment"] == {"choices": ["Neutral"]}
    # The echo provider cannot be constrained and "meh" matches no label: no invented label.
    second = {item["from_name"] for item in results[1]["result"]}
    assert second == {"response", "prompt"}


def test_an_answer_naming_no_label_costs_one_call_when_the_model_cannot_be_constrained(make_client):
    from label_studio_watsonx import metrics

    def calls() -> float:
        return sum(s.value for f in metrics.LLM_CALLS.collect() for s in f.samples
                   if s.name.endswith("_total"))  # fmt: skip

    client = make_client(DEFAULT_PROMPT="Sentiment of: {review}", LLM_CACHE="off")
    body = {"tasks": [{"id": 2, "data": {"review": "meh"}}], "label_config": CHOICES_CONFIG}
    before = calls()
    assert client.post("/predict", json=body).status_code == 200
    assert calls() == before + 1


@pytest.mark.parametrize(
    ("send", "status", "needle"),
    [
        (dict(content=b"{not json", headers={"content-type": "application/json"}), 400, "JSON"),
        (dict(content=b"tasks=1", headers={"content-type": "text/plain"}), 415, "JSON"),
        (dict(json={"tasks": "x", "label_config": REFERENCE_CONFIG}), 422, "tasks"),
        (dict(json={"tasks": [{"id": 1}], "label_config": REFERENCE_CONFIG}), 422, "tasks.0.data"),
        (dict(json={"tasks": []}), 422, "label_config"),
        (dict(json=[1, 2]), 422, "body"),
    ],
)  # fmt: skip
def test_bad_predict_requests_get_a_4xx_naming_the_problem(make_client, send, status, needle):
    client = make_client()
    response = client.post("/predict", **send)
    assert response.status_code == status
    assert needle in response.json()["error"]


def test_body_over_the_cap_is_refused(make_client) -> None:
    client = make_client(MAX_BODY_BYTES="2048")
    body = fixture("predict_batch.json")["body"]
    body["tasks"][0]["data"]["text"] = "x" * 4096
    response = client.post("/predict", json=body)
    assert response.status_code == 413
    assert "MAX_BODY_BYTES" in response.json()["error"]


def test_webhook_ignores_unknown_actions_but_needs_one(make_client) -> None:
    client = make_client()
    assert client.post("/webhook", json={"action": "SOMETHING_NEW"}).status_code == 200
    assert client.post("/webhook", json={"nothing": 1}).status_code == 422


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/"), ("POST", "/setup"), ("POST", "/predict"), ("POST", "/webhook"),
     ("POST", "/data/upload"), ("GET", "/versions"), ("GET", "/metrics"),
     ("GET", "/openapi.json"), ("HEAD", "/")],
)  # fmt: skip
def test_basic_auth_guards_every_route_but_health(make_client, method: str, path: str) -> None:
    client = make_client(BASIC_AUTH_USER="labeler", BASIC_AUTH_PASS="s3cret-pass")
    body = {"/setup": fixture("setup.json")["body"], "/predict": fixture("predict_batch.json")["body"],
            "/webhook": {"action": "PING"}, "/data/upload": {"action": "PING"}}.get(path)  # fmt: skip
    kwargs = {"json": body} if body is not None else {}

    refused = client.request(method, path, **kwargs)
    wrong = client.request(method, path, headers=basic("labeler", "wrong"), **kwargs)
    allowed = client.request(method, path, headers=basic("labeler", "s3cret-pass"), **kwargs)

    assert refused.status_code == 401 and wrong.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")
    if method != "HEAD":
        assert wrong.json() == refused.json()  # nothing learnt from a wrong password
    assert allowed.status_code == 200
    assert client.get("/health").status_code == 200


def test_metrics_count_requests_and_tokens(make_client) -> None:
    client = make_client()
    replay(client, "predict_batch.json")
    page = client.get("/metrics").text
    assert 'lsw_http_requests_total{method="POST",route="/predict",status="200"}' in page
    assert 'lsw_llm_tokens_total{direction="output",model="echo",project="1",provider="echo"}' in page
    assert "lsw_http_request_duration_seconds_bucket" in page


def test_extra_params_from_setup_override_generation_per_project(make_client) -> None:
    client = make_client()
    before = replay(client, "setup.json").json()["model_version"]
    after = replay(client, "setup.json", extra_params={"max_new_tokens": 2}).json()["model_version"]
    assert after != before
    result = replay(client, "predict_batch.json").json()["results"][1]["result"]
    assert result[0]["value"]["text"] == ["Paris is"]  # the echo provider honours max_new_tokens
    as_text = replay(client, "setup.json", extra_params='{"max_new_tokens": 2}').json()
    assert as_text["model_version"] == after
    assert replay(client, "setup.json", extra_params=None).json()["model_version"] == before


@pytest.mark.parametrize(
    ("extra", "needle"),
    [({"max_tokens": 5}, "extra_params.max_tokens"), ({"temperature": 9}, "temperature"),
     ({"stop_sequences": [1]}, "stop_sequences"), ("{not json", "JSON object")],
)  # fmt: skip
def test_unusable_extra_params_get_a_4xx_naming_them(make_client, extra, needle) -> None:
    response = replay(make_client(), "setup.json", extra_params=extra)
    assert response.status_code == 400
    assert needle in response.json()["error"]


def test_webhook_secret_guards_data_upload(make_client) -> None:
    client = make_client(WEBHOOK_SECRET="hook-secret-1", WEBHOOK_SECRET_HEADER="X-LS-Secret")
    body = fixture("webhook_annotation_created.json")["body"]
    missing = client.post("/data/upload", json=body)
    wrong = client.post("/data/upload", json=body, headers={"X-LS-Secret": "hook-secret-2"})
    right = client.post("/data/upload", json=body, headers={"x-ls-secret": "hook-secret-1"})
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert missing.json() == wrong.json() == {"error": "authentication required"}
    # The model's own /webhook (created by Label Studio without custom headers) is not affected.
    assert client.post("/webhook", json=body).status_code == 200
