from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from label_studio_watsonx.app import create_app
from label_studio_watsonx.settings import Settings


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """Builds an in-process client of the app from environment-style settings."""
    clients: list[TestClient] = []

    def build(**env: str) -> TestClient:
        env.setdefault("DATA_DIR", str(tmp_path / "data"))
        env.setdefault("LLM_PROVIDER", "echo")
        client = TestClient(create_app(Settings.from_env(env)))
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def watsonx_ca(tmp_path_factory):
    """A test CA and its PEM path, for the loopback watsonx.ai server."""
    from tests.watsonx_server import make_ca

    return make_ca(tmp_path_factory.mktemp("watsonx-tls"))


@pytest.fixture
def watsonx_environment(monkeypatch):
    """The SDK writes ``Credentials.verify`` into WX_CLIENT_VERIFY_REQUESTS and reads
    retry settings and proxies from the environment: start clean, undo what it writes."""
    for name in ("WX_CLIENT_VERIFY_REQUESTS", "WATSONX_MAX_RETRIES", "WATSONX_DELAY_TIME",
                 "WATSONX_RETRY_STATUS_CODES", "USER_ACCESS_TOKEN", "RUNTIME_ENV_ACCESS_TOKEN_FILE",
                 "RUNTIME_ENV_APSX_URL", "PROJECT_ID", "SPACE_ID", "HTTPS_PROXY", "https_proxy",
                 "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def make_watsonx_server(watsonx_ca, watsonx_environment):
    """Starts loopback watsonx.ai servers (``tests/watsonx_server.py``); stops them after."""
    from tests.watsonx_server import WatsonxTestServer

    servers = []

    def build(**kwargs):
        server = WatsonxTestServer(watsonx_ca[0].issue_cert("127.0.0.1"), **kwargs).start()
        servers.append(server)
        return server

    yield build
    for server in servers:
        server.stop()
