"""A real Label Studio for end-to-end tests, started once per test session.

``make test`` sets ``LSW_E2E_LABEL_STUDIO`` to the ``label-studio`` command it
installed into its own virtualenv (``make e2e-env``); without it these tests are
skipped, so ``make unit`` runs without Label Studio.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.processes import ServerProcess, label_studio_process


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    executable = os.environ.get("LSW_E2E_LABEL_STUDIO")
    if not executable:
        pytest.skip("LSW_E2E_LABEL_STUDIO is not set; run `make test`")
    server, token = label_studio_process(executable, tmp_path_factory.mktemp("label-studio"))
    server.start("/health", timeout=240)
    yield server, token
    server.stop()


@pytest.fixture(scope="session")
def ls_api(label_studio: tuple[ServerProcess, str]) -> Iterator[httpx.Client]:
    server, token = label_studio
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Token {token}"}, timeout=300
    ) as client:
        yield client
