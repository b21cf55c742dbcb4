"""The real ``ibm-watsonx-ai`` SDK against ``tests/watsonx_server.py`` on 127.0.0.1."""

from __future__ import annotations

import time

import httpx
import pytest
from ibm_watsonx_ai import Credentials
from ibm_watsonx_ai.foundation_models import ModelInference

from tests.watsonx_server import loopback_only, max_in_window

MODEL = "ibm/granite-3-8b-instruct"
PROJECT = "proj-1"
SPECS = "/ml/v1/foundation_model_specs"
GENERATION = "/ml/v1/text/generation"

# httpx 0.28 deprecates verify=<str>, which the SDK passes; so is ModelInference(verify=).
pytestmark = [pytest.mark.filterwarnings("ignore:.*verify.*:DeprecationWarning"),
              pytest.mark.usefixtures("watsonx_environment")]


@pytest.fixture
def server(make_watsonx_server):
    return make_watsonx_server()


def model_for(server, ca_path, *, api_key="good-key", model_id=MODEL, **kwargs) -> ModelInference:
    kwargs.setdefault("max_retries", 2)
    kwargs.setdefault("delay_time", 0.01)
    credentials = Credentials(**server.credentials_kwargs(ca_path, api_key=api_key))
    return ModelInference(model_id=model_id, credentials=credentials, project_id=PROJECT, **kwargs)


def test_construction_talks_to_iam_project_and_catalogue_on_loopback_only(server, watsonx_ca):
    with loopback_only() as guard:
        model_for(server, watsonx_ca[1], verify=watsonx_ca[1])

    assert server.calls == [
        ("POST", "/identity/token"), ("GET", f"/v2/projects/{PROJECT}"), ("GET", SPECS),
    ]  # fmt: skip
    iam, project, specs = server.requests
    assert iam.body["apikey"] == "good-key"
    assert iam.body["grant_type"] == "urn:ibm:params:oauth:grant-type:apikey"
    assert iam.authorization == "Basic Yng6Yng="
    token = next(iter(server.tokens))
    assert project.authorization == specs.authorization == f"Bearer {token}"
    assert specs.query["filters"] == ["!lifecycle_withdrawn"]
    assert server.clients == {"127.0.0.1"}
    assert guard.refused == [] and set(guard.connects) == {"127.0.0.1"}


def test_generate_answers_deterministically_and_records_parameters(server, watsonx_ca):
    model = model_for(server, watsonx_ca[1])
    params = {"max_new_tokens": 50, "temperature": 0.7, "stop_sequences": ["END"],
              "decoding_method": "sample"}  # fmt: skip

    answer = model.generate(prompt="Label this.\nIs the sky blue?", params=params)

    assert answer["results"][0] == {
        "generated_text": "answer to: Is the sky blue?",
        "generated_token_count": 6,
        "input_token_count": 6,
        "stop_reason": "eos_token",
    }
    (body,) = server.generation_bodies
    assert body == {"model_id": MODEL, "input": "Label this.\nIs the sky blue?",
                    "parameters": params, "project_id": PROJECT}  # fmt: skip
    assert server.inference_requests[0].authorization.startswith("Bearer ")

    short = model.generate(prompt="Is the sky blue?", params={"max_new_tokens": 3})["results"][0]
    assert (short["generated_text"], short["generated_token_count"], short["stop_reason"]) == (
        "answer to: Is", 3, "max_tokens")
    stopped = model.generate(prompt="Is the sky blue?", params={"stop_sequences": ["sky"]})
    result = stopped["results"][0]
    assert result["generated_text"] == "answer to: Is the sky"
    assert result["stop_reason"] == "stop_sequence"


def test_generate_with_a_list_of_prompts_runs_them_concurrently(make_watsonx_server, watsonx_ca):
    server = make_watsonx_server(latency=0.5)
    model = model_for(server, watsonx_ca[1])
    prompts = [f"question {i}" for i in range(8)]

    started = time.monotonic()
    answers = model.generate(prompt=prompts, concurrency_limit=8)
    elapsed = time.monotonic() - started

    texts = [a["results"][0]["generated_text"] for a in answers]
    assert texts == [f"answer to: {p}" for p in prompts]
    assert 0.5 <= elapsed < 1.5  # one after another would take 4 s
    assert server.max_in_flight == 8


def test_chat_answers_deterministically(server, watsonx_ca):
    model = model_for(server, watsonx_ca[1])
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}]

    reply = model.chat(messages=messages, params={"max_tokens": 100, "temperature": 0})

    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "answer to: hi there"}
    assert reply["choices"][0]["finish_reason"] == "stop"
    assert reply["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    (body,) = server.chat_bodies
    assert body == {"model_id": MODEL, "messages": messages, "max_tokens": 100, "temperature": 0,
                    "project_id": PROJECT}  # fmt: skip
    cut = model.chat(messages=messages, params={"max_tokens": 2})["choices"][0]
    assert (cut["message"]["content"], cut["finish_reason"]) == ("answer to:", "length")


def test_bad_api_key_fails_at_construction(server, watsonx_ca):
    with pytest.raises(Exception) as failure:
        model_for(server, watsonx_ca[1], api_key="wrong-key")

    assert type(failure.value).__name__ == "InvalidCredentialsError"
    assert "BXNIM0415E" in str(failure.value)
    assert server.calls == [("POST", "/identity/token")]  # a 400 is not retried
    assert server.statuses() == [400]


@pytest.mark.parametrize("model_id", ["ibm/granite-13b-chat-v2", "acme/no-such-model"])
def test_withdrawn_or_unknown_model_fails_at_construction(server, watsonx_ca, model_id):
    with pytest.raises(Exception) as failure:
        model_for(server, watsonx_ca[1], model_id=model_id)

    assert type(failure.value).__name__ == "WMLClientError"
    assert f"Model '{model_id}' is not supported for this environment" in str(failure.value)
    specs = [r for r in server.requests if r.path == SPECS]
    assert [r.query.get("tech_preview") for r in specs] == [None, ["true"]]


def test_deprecated_model_warns_and_works(make_watsonx_server, watsonx_ca):
    server = make_watsonx_server(models=[MODEL], deprecated=["ibm/old-model"])
    with pytest.warns(Warning, match="ibm/old-model' is in deprecated state") as caught:
        model = model_for(server, watsonx_ca[1], model_id="ibm/old-model")
    assert any(type(w.message).__name__ == "LifecycleWarning" for w in caught)
    assert model.generate_text(prompt="ok?") == "answer to: ok?"


def test_one_429_is_retried_by_the_sdk(server, watsonx_ca):
    model = model_for(server, watsonx_ca[1])
    server.fail_next(1, 429)

    assert model.generate(prompt="again")["results"][0]["generated_text"] == "answer to: again"
    assert server.statuses(GENERATION) == [429, 200]


def test_one_503_is_retried_by_the_transport(server, watsonx_ca):
    model = model_for(server, watsonx_ca[1], max_retries=0)  # even with the SDK-level retries off
    server.fail_next(1, 503)

    assert model.generate(prompt="again")["results"][0]["generated_text"] == "answer to: again"
    assert server.statuses(GENERATION) == [503, 200]


def test_persistent_503_raises_after_the_transport_retries(server, watsonx_ca):
    model = model_for(server, watsonx_ca[1], max_retries=0)
    server.always_fail(503)

    with pytest.raises(Exception) as failure:
        model.generate(prompt="never")

    assert type(failure.value).__name__ == "ApiRequestFailure"
    assert "Status code: 503" in str(failure.value)
    assert server.statuses(GENERATION) == [503] * 4  # 1 + 3 transport retries


def test_rate_limit_rejects_excess_and_the_window_recorder_counts_them(make_watsonx_server, watsonx_ca):
    server = make_watsonx_server(rate_limit=8)
    with httpx.Client(base_url=server.url, verify=watsonx_ca[1]) as client:
        form = {"apikey": "good-key", "grant_type": "urn:ibm:params:oauth:grant-type:apikey"}
        token = client.post("/identity/token", data=form).json()["access_token"]
        body = {"model_id": MODEL, "input": "x", "project_id": PROJECT}
        headers = {"Authorization": f"Bearer {token}"}
        replies = [client.post(GENERATION, params={"version": "2024-05-01"}, json=body,
                               headers=headers) for _ in range(12)]  # fmt: skip

    assert [r.status_code for r in replies] == [200] * 8 + [429] * 4
    rejected = replies[-1]
    assert rejected.headers["retry-after"] == "1"
    assert rejected.headers["x-ratelimit-limit"] == rejected.headers["x-requests-limit-rate"] == "8"
    assert rejected.headers["x-requests-limit-remaining"] == "0"
    assert replies[0].headers["x-requests-limit-remaining"] == "7"
    assert len(server.inference_times) == 12
    assert server.max_requests_in_window(1.0) == 12
    assert server.max_requests_in_window(1.0, statuses=[200]) == 8


def test_max_in_window_is_half_open():
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.49]) == 4  # in [0.5, 1.5)
    assert max_in_window([0.0, 0.5, 1.0]) == 2  # 1.0 is outside [0.0, 1.0)
    assert max_in_window([]) == 0


def test_the_certificate_is_only_trusted_through_the_ca_file(server):
    credentials = Credentials(**{**server.credentials_kwargs("unused"), "verify": True})
    with pytest.raises(OSError, match="cannot be verified"):
        ModelInference(model_id=MODEL, credentials=credentials, project_id=PROJECT)
    assert server.calls == []


def test_without_auth_url_the_sdk_would_go_to_ibm_iam(server, watsonx_ca):
    arguments = server.credentials_kwargs(watsonx_ca[1])
    del arguments["auth_url"]
    with loopback_only() as guard, pytest.raises(httpx.ConnectError):
        ModelInference(model_id=MODEL, credentials=Credentials(**arguments), project_id=PROJECT)

    assert guard.refused == ["iam.test.cloud.ibm.com"]
    assert server.calls == []
