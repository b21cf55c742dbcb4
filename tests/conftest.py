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
