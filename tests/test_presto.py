"""The real ``prestodb`` client against a loopback Presto-protocol server (TLS, Basic auth).

No watsonx.data engine is reachable from here; ``tests/presto_server.py`` speaks
Presto's statement protocol on 127.0.0.1 and runs the SQL in DuckDB.
"""

from __future__ import annotations

import time

import pytest
import trustme

from label_studio_watsonx.settings import Settings
from label_studio_watsonx.sync.engines import TransientEngineError
from label_studio_watsonx.sync.engines.presto import PrestoEngine
from label_studio_watsonx.sync.rows import column_name
from tests.fixtures import REFERENCE_CONFIG, fixture
from tests.presto_server import HEADER_LIMIT, PrestoTestServer
from tests.webhooks import created, deleted, textarea

USER = "ibmlhapikey_tester"
KEY = "presto-test-api-key-0123456789"
TABLE = "iceberg_data.labels.annotations"


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, str(path)


@pytest.fixture
def presto(ca):
    server = PrestoTestServer(ca[0].issue_cert("127.0.0.1"), USER, KEY)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def presto_env(presto, ca) -> dict[str, str]:
    return {
        "LLM_PROVIDER": "echo",
        "WATSONX_ENG_HOST": "127.0.0.1",
        "WATSONX_ENG_PORT": str(presto.port),
        "WATSONX_ENG_USERNAME": USER,
        "WATSONX_API_KEY": KEY,
        "WATSONX_SCHEMA": "labels",
        "WATSONX_ENG_VERIFY": ca[1],
        "SYNC_MAX_BACKOFF": "0.3",
    }


def engine_for(env: dict[str, str], tmp_path) -> PrestoEngine:
    return PrestoEngine.from_settings(Settings.from_env({**env, "DATA_DIR": str(tmp_path)}))


def test_captured_webhooks_reach_presto(make_client, presto, presto_env) -> None:
    client = make_client(**presto_env)
    sync = client.app.state.sync
    for name in ("webhook_annotation_created.json", "webhook_annotation_updated.json"):
        assert client.post("/data/upload", json=fixture(name)["body"]).status_code == 200
    assert sync.flusher.drain(timeout=60)
    rows = presto.query(f"SELECT annotation_id, rating, response, data_text, updated_at FROM {TABLE}")
    assert [row[:4] for row in rows] == [(1, 2, "It is blue.", "The sky is blue.")]
    assert str(rows[0][4]) == "2026-12-04 15:22:34.797206"
    columns = dict(presto.query(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'annotations'"
    ))  # fmt: skip
    assert columns["rating"] == "BIGINT" and columns["created_at"] == "TIMESTAMP"
    assert columns["was_cancelled"] == "BOOLEAN"

    client.post("/data/upload", json=fixture("webhook_annotations_deleted.json")["body"])
    assert sync.flusher.drain(timeout=60)
    assert presto.query(f"SELECT count(*) FROM {TABLE}") == [(0,)]
    assert presto.clients == {"127.0.0.1"}  # nothing left loopback
    assert set(presto.logins) == {USER}
    assert client.get("/health").json()["sync"]["engine"].startswith("presto 127.0.0.1")


def test_values_are_bound_and_statements_fit_the_header_limit(presto, presto_env, tmp_path) -> None:
    engine = engine_for(presto_env, tmp_path)
    tags = "".join(f'<TextArea name="answer_{n}" toName="context"/>' for n in range(40))
    config = REFERENCE_CONFIG.replace("</View>", tags + "</View>")
    from label_studio_watsonx.sync.rows import annotation_row, columns_for

    body = created(1, label_config=config)
    engine.ensure_columns(columns_for(config, body["task"]["data"]))
    evil = "it's '' \\ \"q\" \n ; DROP TABLE annotations; -- ñ"
    rows = []
    for n in range(300):
        annotation = dict(body["annotation"], id=n + 1, result=[textarea("answer_3", evil)])
        rows.append(annotation_row(annotation, body["task"], 1, config, {}))
    engine.apply(rows, [])

    assert presto.max_header_bytes < HEADER_LIMIT
    assert presto.query(f"SELECT count(*), count(DISTINCT answer_3) FROM {TABLE}") == [(300, 1)]
    assert presto.query(f"SELECT answer_3 FROM {TABLE} LIMIT 1") == [(evil,)]
    assert not any(evil in statement for statement in presto.statements)  # bound, not spliced


def test_a_retried_insert_never_leaves_a_row_twice(presto, presto_env, tmp_path) -> None:
    engine = engine_for(presto_env, tmp_path)
    from label_studio_watsonx.sync.rows import annotation_row, columns_for

    body = created(1)
    engine.ensure_columns(columns_for(REFERENCE_CONFIG, body["task"]["data"]))
    rows = [annotation_row(dict(body["annotation"], id=n), body["task"], 1, REFERENCE_CONFIG, {})
            for n in range(1, 11)]  # fmt: skip
    presto.fail_after_prefix = "INSERT"  # runs the INSERT, answers 503; the client re-sends it
    engine.apply(rows, [])
    assert presto.query(f"SELECT count(*), count(DISTINCT annotation_id) FROM {TABLE}") == [(10, 10)]
    engine.apply(rows, [])  # and the whole batch again changes nothing
    assert presto.query(f"SELECT count(*) FROM {TABLE}") == [(10,)]


def test_engine_down_for_1000_events_then_back_loses_nothing(make_client, presto, presto_env) -> None:
    client = make_client(**presto_env, SYNC_BATCH_SIZE="250")
    sync = client.app.state.sync
    client.post("/data/upload", json=created(1))
    assert sync.flusher.drain(timeout=60)
    presto.stop()

    for n in range(2, 1002):
        response = client.post("/data/upload", json=created(n, result=[textarea("response", f"r{n}")]))
        assert response.status_code == 200
    for n in range(2, 102):
        client.post("/data/upload", json=created(n, updated_at="2026-12-05T00:00:00Z",
                                                 result=[textarea("response", f"u{n}")],
                                                 action="ANNOTATION_UPDATED"))  # fmt: skip
    client.post("/data/upload", json=deleted(*range(900, 1001)))
    deadline = time.monotonic() + 30
    while client.get("/health").json()["sync"]["last_error"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
    health = client.get("/health").json()["sync"]
    assert "unreachable" in health["last_error"] and health["pending"] > 0

    presto.start()  # same port
    assert sync.flusher.drain(timeout=300)
    assert presto.query(f"SELECT count(*), count(DISTINCT annotation_id) FROM {TABLE}") == [(900, 900)]
    assert presto.query(f"SELECT count(*) FROM {TABLE} WHERE response LIKE 'u%'") == [(100,)]
    assert presto.query(f"SELECT count(*) FROM {TABLE} WHERE annotation_id BETWEEN 900 AND 1000") == [(0,)]
    assert client.get("/health").json()["sync"]["last_error"] is None


def test_bad_login_keeps_events_and_says_so(make_client, presto, presto_env) -> None:
    client = make_client(**{**presto_env, "WATSONX_API_KEY": "wrong-key-value-000"})
    client.post("/data/upload", json=created(1))
    sync = client.app.state.sync
    deadline = time.monotonic() + 30
    while sync.outbox.status()["last_error"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
    status = sync.outbox.status()
    assert "WATSONX_ENG_USERNAME" in status["last_error"] and status["pending"] == 1
    assert status["dead"] == 0
    assert "wrong-key-value-000" not in str(client.get("/health").json())


def test_tls_is_checked_and_environment_cannot_override_it(presto, presto_env, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/nonexistent/ca.pem")
    engine_for(presto_env, tmp_path).ensure_columns([])  # the given CA still applies
    assert engine_for(presto_env, tmp_path).run("SELECT 1") == [[1]]

    system_cas = engine_for({**presto_env, "WATSONX_ENG_VERIFY": "true"}, tmp_path)
    with pytest.raises(TransientEngineError):
        system_cas.run("SELECT 1")  # self-signed: refused by the system's CAs


def test_ibmlhtoken_login_uses_an_iam_token(presto, presto_env, tmp_path) -> None:
    presto.user = "ibmlhtoken_tester"
    presto.iam_api_key = KEY
    presto.password = "iam-access-token-xyz"
    env = {**presto_env, "WATSONX_ENG_USERNAME": "ibmlhtoken_tester",
           "WATSONX_AUTH_URL": f"https://127.0.0.1:{presto.port}/identity/token"}  # fmt: skip
    assert engine_for(env, tmp_path).run("SELECT 2") == [[2]]
    assert set(presto.logins) == {"ibmlhtoken_tester"}


def test_hostile_tag_names_become_safe_columns(presto, presto_env, tmp_path) -> None:
    from tests.test_sync import HOSTILE_CONFIG

    engine = engine_for(presto_env, tmp_path)
    from label_studio_watsonx.sync.rows import annotation_row, columns_for

    body = created(1, label_config=HOSTILE_CONFIG, data={"text": "t", "select": "x"})
    engine.ensure_columns(columns_for(HOSTILE_CONFIG, body["task"]["data"]))
    result = [{"from_name": "Stars Ñ", "to_name": "context", "type": "rating", "value": {"rating": 5}}]
    row = annotation_row(dict(body["annotation"], result=result), body["task"], 1, HOSTILE_CONFIG, {})
    engine.apply([row], [])
    stars = column_name("Stars Ñ")
    assert presto.query(f'SELECT "{stars}", data_select FROM {TABLE}') == [(5, "x")]
