"""Inputs that once broke the service: each must now get a clear answer, fast."""

from __future__ import annotations

import threading
import time

import pytest

from label_studio_watsonx.labeling import ObjectTag, input_text, plan_predictions, read_config
from label_studio_watsonx.settings import Settings
from label_studio_watsonx.errors import SettingsError
from tests.fixtures import fixture

TEXT_CONFIG = '<View><Text name="t" value="$text"/><TextArea name="r" toName="t"/></View>'


def test_lone_surrogates_in_any_string_become_replacement_characters(make_client) -> None:
    client = make_client()
    body = '{"tasks":[{"id":1,"data":{"text":"a \\ud800 b"}}],"label_config":' + \
        '"<View><Text name=\\"t\\" value=\\"$text\\"/><TextArea name=\\"r\\" toName=\\"t\\"/></View>"}'
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200
    assert response.json()["results"][0]["result"][0]["value"]["text"] == ["a \ufffd b"]
    pair = body.replace("\\ud800", "\\ud83d\\ude00")  # a real pair is kept
    answer = client.post("/predict", content=pair, headers={"content-type": "application/json"})
    assert "\U0001f600" in answer.json()["results"][0]["result"][0]["value"]["text"][0]
    upload = fixture("webhook_annotation_created.json")["body"]
    raw = __import__("json").dumps(upload).replace("Summarize it", "Sum\\udc00")
    assert client.post("/data/upload", content=raw,
                       headers={"content-type": "application/json"}).status_code == 200  # fmt: skip


@pytest.mark.parametrize("project", ["9223372036854775808.1", 10**19, -(2**63) - 1, "-1.2"])
def test_project_ids_beyond_64_bits_are_no_project(make_client, project) -> None:
    client = make_client()
    body = fixture("setup.json")["body"]
    body["project"] = project
    assert client.post("/setup", json=body).status_code == 200
    predict = fixture("predict_interactive.json")["body"]
    predict["project"] = project
    assert client.post("/predict", json=predict).status_code == 200


def test_json_without_a_content_type_is_read_as_json(make_client) -> None:
    client = make_client()
    raw = __import__("json").dumps(fixture("setup.json")["body"]).encode()
    response = client.post("/setup", content=raw, headers={"content-type": ""})
    assert response.status_code == 200, response.text


def test_unknown_routes_and_methods_answer_in_the_same_error_shape(make_client) -> None:
    client = make_client()
    assert client.get("/nope").json() == {"error": "Not Found"}
    assert client.delete("/predict").status_code == 405
    assert "error" in client.delete("/predict").json()
    assert client.get("/versions/").status_code == 404  # no redirect built from the Host header
    assert client.head("/health").status_code == 200


@pytest.mark.timeout(20)
def test_deeply_nested_controls_parse_in_linear_time() -> None:
    n = 50_000
    config = (TEXT_CONFIG[:-7] + '<C name="a" toName="t">' * n + "</C>" * n + "</View>")
    assert len(read_config(config).controls) == n + 1


@pytest.mark.timeout(20)
def test_broken_html_is_read_in_linear_time() -> None:
    tag = ObjectTag(name="h", type="HyperText", data_key="html")
    assert input_text(tag, {"html": "<a " * 200_000}).startswith("<a <a")
    assert input_text(tag, {"html": "<!--" * 200_000}) == ""
    assert input_text(tag, {"html": "<p>x</p><script>y</p>"}) == "x"


def test_choice_alias_is_what_results_hold() -> None:
    config = ('<View><Text name="t" value="$text"/><Choices name="c" toName="t">'
              '<Choice value="blue" alias="B"/><Choice value="red"/></Choices></View>')  # fmt: skip
    assert plan_predictions(config, "prompt").labels == ("B", "red")


def test_a_second_prompt_field_is_never_taken_for_the_response() -> None:
    config = ('<View><Text name="t" value="$text"/><TextArea name="prompt" toName="t"/>'
              '<TextArea name="prompt_extra" toName="t"/><TextArea name="answer" toName="t"/></View>')  # fmt: skip
    plan = plan_predictions(config, "prompt")
    assert plan.prompt.name == "prompt" and plan.response.name == "answer"


def test_paragraphs_with_nulls_and_objects() -> None:
    tag = ObjectTag(name="p", type="Paragraphs", data_key="dialog")
    value = [{"author": "A", "text": None}, {"author": "B", "text": {"x": 1}}, None]
    assert input_text(tag, {"dialog": value}) == 'A: \nB: {"x": 1}\n'


def test_user_name_with_a_colon_stops_start_up() -> None:
    with pytest.raises(SettingsError, match="BASIC_AUTH_USER"):
        Settings.from_env({"BASIC_AUTH_USER": "a:b", "BASIC_AUTH_PASS": "x"})
    with pytest.raises(SettingsError, match="STOP_SEQUENCES"):
        Settings.from_env({"STOP_SEQUENCES": "[" * 5000})


def test_hostile_choice_values_never_crash_the_local_model(make_client) -> None:
    client = make_client(LLM_PROVIDER="local", MAX_NEW_TOKENS="24", LOCAL_THREADS="1")
    config = ('<View><Text name="t" value="$text"/><Choices name="c" toName="t">'
              '<Choice value="a&quot;b"/><Choice value="back\\slash"/><Choice value="two&#10;lines"/>'
              '<Choice value="ok"/></Choices></View>')  # fmt: skip
    body = {"tasks": [{"id": n, "data": {"text": t}} for n, t in enumerate(["yes", "no", "maybe"])],
            "label_config": config}  # fmt: skip
    response = client.post("/predict", json=body)
    assert response.status_code == 200
    for prediction in response.json()["results"]:
        (region,) = prediction["result"]
        assert set(region["value"]["choices"]) <= {'a"b', "back\\slash", "two\nlines", "ok"}


def test_health_and_setup_answer_while_predictions_fill_every_thread(make_client) -> None:
    client = make_client(LLM_PROVIDER="local", MAX_NEW_TOKENS="64", THREADS="1", LOCAL_THREADS="1")
    body = fixture("predict_batch.json")["body"]
    busy = [threading.Thread(target=client.post, args=("/predict",), kwargs={"json": body})
            for _ in range(3)]  # fmt: skip
    for thread in busy:
        thread.start()
    time.sleep(0.3)
    try:
        started = time.monotonic()
        assert client.get("/health").status_code == 200
        assert client.post("/setup", json=fixture("setup.json")["body"]).status_code == 200
        waited = time.monotonic() - started
        still_busy = any(thread.is_alive() for thread in busy)
    finally:
        for thread in busy:
            thread.join()
    assert still_busy, "the predictions should still have been running"
    assert waited < 2.0
