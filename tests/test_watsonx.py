"""The watsonx.ai provider: the real ``ibm-watsonx-ai`` SDK, unmodified, against
``tests/watsonx_server.py``, a loopback TLS server speaking the watsonx.ai REST
protocol (IBM Cloud cannot be reached from the test machines)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.fixtures import fixture
from tests.watsonx_server import WatsonxTestServer, loopback_only

KEY = "good-key"
pytestmark = [pytest.mark.filterwarnings("ignore:.*verify.*:DeprecationWarning"),
              pytest.mark.usefixtures("watsonx_environment")]


def watsonx_env(server: WatsonxTestServer, ca_path: str, **changes: str) -> dict[str, str]:
    env = {
        "WATSONX_API_KEY": KEY, "WATSONX_PROJECT_ID": "proj-1",
        "WATSONX_URL": server.url, "WATSONX_PLATFORM_URL": server.url,
        "WATSONX_AUTH_URL": server.auth_url, "WATSONX_VERIFY": ca_path,
        "WATSONX_DELAY_TIME": "0.05", "MAX_NEW_TOKENS": "64",
    }  # fmt: skip
    env.update(changes)
    return env


def test_watsonx_is_chosen_when_its_key_and_project_are_set() -> None:
    from label_studio_watsonx.settings import Settings

    assert Settings.from_env({"WATSONX_API_KEY": "k", "WATSONX_PROJECT_ID": "p"}).llm_provider == "watsonx"
    assert Settings.from_env({"WATSONX_API_KEY": "k"}).llm_provider == "local"


def client_for(make_client, env: dict[str, str]):
    return make_client(LLM_PROVIDER="watsonx", **env)


def response_text(prediction: dict) -> str:
    return next(r["value"]["text"][0] for r in prediction["result"] if r["from_name"] == "response")


def test_fixtures_predicted_through_the_real_sdk_on_loopback_only(make_client, make_watsonx_server, watsonx_ca):
    server = make_watsonx_server()
    with loopback_only() as guard:
        client = client_for(make_client, watsonx_env(server, watsonx_ca[1]))
        results = client.post("/predict", json=fixture("predict_batch.json")["body"]).json()["results"]
        interactive = client.post("/predict", json=fixture("predict_interactive.json")["body"]).json()
        single = client.post("/predict", json=fixture("predict_single_task_fetch.json")["body"]).json()
    texts = [response_text(p) for p in results]
    assert texts == ["answer to: The sky is blue.", "answer to: Paris is the capital of France.",
                     "answer to: Water boils at 100 C."]  # fmt: skip
    assert response_text(interactive["results"][0]) == "answer to: Instruction: Summarize the context"
    assert single["results"][0]["result"]
    assert results[0]["model_version"].startswith("ibm/granite-3-8b-instruct@")
    assert server.clients == {"127.0.0.1"} and not guard.refused
    # Instruct models go through chat, with the service's parameters.
    body = server.chat_bodies[0]
    assert body["max_tokens"] == 64 and body["temperature"] == 0.0
    sent = {body["messages"][0]["content"] for body in server.chat_bodies}
    assert "Answer the following question\n\nThe sky is blue." in sent
    health = client.get("/health").json()
    assert health["provider"] == "watsonx" and health["model_state"] == "ready"
    page = client.get("/metrics").text
    assert 'lsw_llm_tokens_total{direction="output",model="ibm/granite-3-8b-instruct",project="1",provider="watsonx"}' in page


def test_plain_models_use_text_generation_with_stop_sequences(make_client, make_watsonx_server, watsonx_ca):
    server = make_watsonx_server()
    server.add_model("example/plain-base", functions=("text_generation",))
    client = client_for(make_client, watsonx_env(server, watsonx_ca[1], WATSONX_MODELTYPE="example/plain-base",
                                       STOP_SEQUENCES='["\\n\\n"]', TEMPERATURE="0.7",
                                       RANDOM_SEED="7"))  # fmt: skip
    results = client.post("/predict", json=fixture("predict_batch.json")["body"]).json()["results"]
    assert response_text(results[1]) == "answer to: Paris is the capital of France."
    assert not server.chat_bodies
    parameters = server.generation_bodies[0]["parameters"]
    assert parameters["stop_sequences"] == ["\n\n"] and parameters["decoding_method"] == "sample"
    assert parameters["temperature"] == 0.7 and parameters["random_seed"] == 7


def test_429_then_success(make_client, make_watsonx_server, watsonx_ca):
    server = make_watsonx_server()
    server.fail_next(1, 429)
    client = client_for(make_client, watsonx_env(server, watsonx_ca[1]))
    body = fixture("predict_single_task_fetch.json")["body"]
    prediction = client.post("/predict", json=body).json()["results"][0]
    assert response_text(prediction) == "answer to: The sky is blue."
    assert server.statuses("/ml/v1/text/chat") == [429, 200]


def test_persistent_503_gives_up_in_bounded_time_and_other_tasks_survive(make_client, make_watsonx_server, watsonx_ca):
    server = make_watsonx_server()
    client = client_for(make_client, watsonx_env(server, watsonx_ca[1], WATSONX_MAX_RETRIES="2"))
    client.get("/health")
    server.always_fail(503)
    started = time.monotonic()
    response = client.post("/predict", json=fixture("predict_batch.json")["body"])
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["results"] == [[], [], []]
    assert elapsed < 30  # three attempts each, however long IBM stays down
    server.always_fail(None)
    again = client.post("/predict", json=fixture("predict_batch.json")["body"]).json()["results"]
    assert all(again)


def test_bad_key_is_reported_clearly_without_the_key(make_client, make_watsonx_server, watsonx_ca):
    server = make_watsonx_server()
    client = client_for(make_client, watsonx_env(server, watsonx_ca[1], WATSONX_API_KEY="wrong-key-4242"))
    response = client.post("/predict", json=fixture("predict_single_task_fetch.json")["body"])
    assert response.status_code == 503
    assert "WATSONX_API_KEY" in response.json()["error"]
    health = client.get("/health").json()
    assert health["status"] == "UP" and health["model_state"] == "error"
    assert "WATSONX_API_KEY" in health["model_detail"]
    assert "wrong-key-4242" not in str(health) + response.text


def test_withdrawn_model_names_the_offered_ones(make_client, make_watsonx_server, watsonx_ca):
    server = make_watsonx_server()
    client = client_for(make_client, watsonx_env(server, watsonx_ca[1], WATSONX_MODELTYPE="GRANITE_13B_CHAT_V2"))
    response = client.post("/predict", json=fixture("predict_single_task_fetch.json")["body"])
    assert response.status_code == 503
    error = response.json()["error"]
    assert "does not offer ibm/granite-13b-chat-v2" in error
    assert error.endswith("one of: ibm/granite-3-8b-instruct")


def test_check_command_reports_once_and_hides_the_key(make_watsonx_server, watsonx_ca, tmp_path):
    server = make_watsonx_server()
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path),
           **watsonx_env(server, watsonx_ca[1], WATSONX_API_KEY="wrong-key-4242")}  # fmt: skip
    run = subprocess.run([sys.executable, "-m", "label_studio_watsonx", "check"], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 1
    assert "WATSONX_API_KEY" in run.stderr and "wrong-key-4242" not in run.stdout + run.stderr
    good = subprocess.run([sys.executable, "-m", "label_studio_watsonx", "check"],
                          env={**env, "WATSONX_API_KEY": KEY}, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert "OK provider=watsonx model=ibm/granite-3-8b-instruct" in good.stdout


def test_the_sdk_is_imported_only_for_watsonx(tmp_path):
    code = ("import sys; from label_studio_watsonx.app import create_app; "
            "from label_studio_watsonx.settings import Settings; "
            f"create_app(Settings.from_env({{'DATA_DIR': {str(tmp_path)!r}}})); "
            "print('ibm_watsonx_ai' in sys.modules, 'pandas' in sys.modules)")  # fmt: skip
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "False False", run.stderr


def test_many_tasks_run_concurrently_within_the_rate_limit(make_client, make_watsonx_server, watsonx_ca):
    server = make_watsonx_server(latency=0.3, rate_limit=8)
    client = client_for(make_client, watsonx_env(server, watsonx_ca[1], WATSONX_CONCURRENCY="8", WATSONX_RATE_LIMIT="8"))
    client.get("/health")
    tasks = [{"id": n, "data": {"text": f"question {n}"}} for n in range(24)]
    body = {"tasks": tasks, "label_config": fixture("setup.json")["body"]["schema"], "project": "2.1"}
    started = time.monotonic()
    results = client.post("/predict", json=body).json()["results"]
    elapsed = time.monotonic() - started
    assert [response_text(r) for r in results] == [f"answer to: question {n}" for n in range(24)]
    assert server.max_requests_in_window(1.0) <= 8
    assert 429 not in server.statuses("/ml/v1/text/chat")
    assert elapsed < 24 * 0.3  # faster than one at a time


def test_the_limit_the_server_announces_is_followed(make_client, make_watsonx_server, watsonx_ca):
    server = make_watsonx_server(latency=0.2, rate_limit=4)
    client = client_for(make_client, watsonx_env(server, watsonx_ca[1], WATSONX_RATE_LIMIT="50"))
    client.get("/health")
    tasks = [{"id": n, "data": {"text": f"q {n}"}} for n in range(16)]
    body = {"tasks": tasks, "label_config": fixture("setup.json")["body"]["schema"]}
    results = client.post("/predict", json=body).json()["results"]
    assert all(results)
    assert server.max_requests_in_window(1.0) <= 8  # 50/s configured; 4/s announced
    assert server.statuses("/ml/v1/text/chat").count(429) <= 4
