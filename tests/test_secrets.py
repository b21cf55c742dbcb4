"""Known fake secrets, the service at DEBUG, all kinds of traffic: no secret comes out.

Searched: every log line, every response body and header, the outbox, state and
table contents, and every statement the (loopback) Presto engine received.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trustme

from tests.fixtures import fixture, fixture_names
from tests.presto_server import PrestoTestServer
from tests.processes import free_port, service_process
from tests.webhooks import created

SECRETS = {
    "BASIC_AUTH_PASS": "fake-basic-pass-5b1e",
    "WATSONX_API_KEY": "fake-watsonx-key-93c7d",
    "LABEL_STUDIO_API_KEY": "fake-ls-token-0a4f2",
    "WEBHOOK_SECRET": "fake-hook-secret-77e1",
}
INVITE_TOKEN = "fake-invite-token-c3d9"


@pytest.fixture
def presto(tmp_path):
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = PrestoTestServer(authority.issue_cert("127.0.0.1"), "ibmlhapikey_s",
                              SECRETS["WATSONX_API_KEY"])  # fmt: skip
    server.start()
    yield server
    server.stop()


def test_no_secret_leaves_the_service(tmp_path, presto) -> None:
    env = {
        **SECRETS, "LOG_LEVEL": "DEBUG", "LLM_PROVIDER": "echo", "BASIC_AUTH_USER": "labeler",
        "LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}",  # nobody there: lookups fail
        "WATSONX_ENG_HOST": "127.0.0.1", "WATSONX_ENG_PORT": str(presto.port),
        "WATSONX_ENG_USERNAME": "ibmlhapikey_s", "WATSONX_SCHEMA": "s",
        "WATSONX_ENG_VERIFY": str(tmp_path / "ca.pem"),
    }  # fmt: skip
    service = service_process(tmp_path / "data", **env)
    service.start("/health", timeout=60)
    seen: list[str] = []
    token = base64.b64encode(f"labeler:{SECRETS['BASIC_AUTH_PASS']}".encode()).decode()
    auth = {"Authorization": f"Basic {token}", "X-Webhook-Secret": SECRETS["WEBHOOK_SECRET"]}
    try:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            def send(method: str, path: str, **kwargs) -> None:
                response = client.request(method, path, **kwargs)
                seen.append(f"{response.status_code} {dict(response.headers)} {response.text}")

            for name in fixture_names():
                request = fixture(name)
                raw = json.dumps(request["body"])
                raw = raw.replace("<PROJECT_INVITE_TOKEN>", INVITE_TOKEN)
                raw = raw.replace("<LS_API_TOKEN>", SECRETS["LABEL_STUDIO_API_KEY"])
                headers = {**auth, "content-type": "application/json"}
                send(request["method"], request["path"], content=raw, headers=headers)
                send(request["method"], request["path"], content=raw)  # no credentials
            survivor = json.dumps(created(99)).replace("<PROJECT_INVITE_TOKEN>", INVITE_TOKEN)
            send("POST", "/data/upload", content=survivor, headers={**auth, "content-type": "application/json"})
            wrong = {"Authorization": "Basic " + base64.b64encode(b"labeler:nope").decode()}
            send("POST", "/data/upload", json={"action": "X"}, headers=wrong)
            send("POST", "/data/upload", json={"action": "X"},
                 headers={"Authorization": auth["Authorization"], "X-Webhook-Secret": "nope"})
            send("POST", "/predict", content=b"{bad", headers={**auth, "content-type": "application/json"})
            send("POST", "/setup", json={"schema": "<View", "access_token": SECRETS["LABEL_STUDIO_API_KEY"]},
                 headers=auth)  # fmt: skip
            for path in ("/health", "/", "/metrics", "/versions", "/openapi.json"):
                send("GET", path, headers=auth)
            # Let the flusher write rows (and fail to look up e-mails) before looking.
            for _ in range(100):
                if client.get("/health").json()["sync"]["pending"] == 0:
                    break
                __import__("time").sleep(0.1)
        outbox = subprocess.run(
            [sys.executable, "-m", "label_studio_watsonx", "outbox"],
            env={**service.env}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        seen.append(outbox.stdout + outbox.stderr)
    finally:
        service.stop()

    assert presto.query("SELECT count(*) FROM iceberg_data.s.annotations")[0][0] >= 1
    places = {
        "log": service.log_text(),
        "responses": "\n".join(seen),
        "table": json.dumps(presto.query("SELECT * FROM iceberg_data.s.annotations"), default=str),
        "statements": "\n".join(presto.statements),
    }
    for path in Path(tmp_path / "data").glob("*.db*"):
        places[path.name] = path.read_bytes().decode("utf-8", "replace")
    assert "DEBUG" in places["log"]  # the log really was at DEBUG
    for secret in [*SECRETS.values(), INVITE_TOKEN]:
        for place, text in places.items():
            assert secret not in text, f"{secret} found in {place}"
