"""Annotation sync into the embedded SQLite engine, through the app's webhook routes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from label_studio_watsonx.sync.engines import EngineError, quote_identifier
from label_studio_watsonx.sync.rows import column_name
from tests.fixtures import fixture
from tests.webhooks import created, deleted, rating, textarea


def read_rows(data_dir: Path, table: str = "annotations") -> list[dict]:
    db = sqlite3.connect(data_dir / "annotations.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(f"SELECT * FROM {quote_identifier(table)} ORDER BY annotation_id")]
    finally:
        db.close()


def column_types(data_dir: Path, table: str = "annotations") -> dict[str, str]:
    db = sqlite3.connect(data_dir / "annotations.db")
    try:
        return {row[1]: row[2] for row in db.execute(f"PRAGMA table_info({quote_identifier(table)})")}
    finally:
        db.close()


@pytest.fixture
def synced(make_client, tmp_path):
    """A client, and a function that drains the outbox and returns the table's rows."""
    data_dir = tmp_path / "data"
    client = make_client(DATA_DIR=str(data_dir))
    sync = client.app.state.sync

    def rows(**kwargs) -> list[dict]:
        assert sync.flusher.drain(timeout=30)
        return read_rows(data_dir, **kwargs)

    return client, rows, data_dir


def post(client, body: dict, path: str = "/data/upload") -> dict:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_captured_webhooks_create_update_and_delete_one_row(synced) -> None:
    client, rows, data_dir = synced
    post(client, fixture("webhook_annotation_created.json")["body"])
    (row,) = rows()
    assert row["annotation_id"] == 1 and row["task_id"] == 1 and row["project_id"] == 1
    assert row["completed_by"] == 1 and row["updated_by"] == 1
    assert row["completed_by_email"] is None  # no Label Studio configured to ask
    assert row["prompt"] == "Summarize it" and row["response"] == "It is blue."
    assert row["rating"] == 4
    assert row["data_text"] == "The sky is blue."
    assert row["created_at"] == "2026-12-04 15:22:33.123033"
    assert row["was_cancelled"] == 0
    assert json.loads(row["result_json"]) == fixture("webhook_annotation_created.json")["body"]["annotation"]["result"]

    post(client, fixture("webhook_annotation_updated.json")["body"])
    (row,) = rows()
    assert row["rating"] == 2
    assert row["updated_at"] == "2026-12-04 15:22:34.797206"

    post(client, fixture("webhook_annotations_deleted.json")["body"])
    assert rows() == []


def test_column_types_come_from_the_config(synced) -> None:
    client, rows, data_dir = synced
    post(client, created(5, result=[]))  # no value yet for any tag
    rows()
    types = column_types(data_dir)
    assert types["rating"] == "INTEGER"
    assert types["response"] == "TEXT" and types["prompt"] == "TEXT"
    assert types["annotation_id"] == "INTEGER" and types["lead_time"] == "REAL"


def test_same_event_twice_or_to_both_endpoints_changes_nothing(synced) -> None:
    client, rows, _ = synced
    body = created(7, result=[textarea("response", "once")])
    first = post(client, body)
    second = post(client, body, "/webhook")
    assert (first["new"], second["new"]) == (1, 0)
    before = rows()
    post(client, body)
    after = rows()
    assert len(after) == 1
    assert {k: v for k, v in after[0].items() if k != "synced_at"} == {
        k: v for k, v in before[0].items() if k != "synced_at"
    }


def test_an_older_update_never_overwrites_a_newer_one(synced) -> None:
    client, rows, _ = synced
    post(client, created(8, updated_at="2026-12-04T16:00:00Z", result=[textarea("response", "new")]))
    rows()
    post(client, created(8, updated_at="2026-12-04T15:00:00Z", result=[textarea("response", "old")],
                         action="ANNOTATION_UPDATED"))  # fmt: skip
    assert rows()[0]["response"] == "new"
    # Out of order within one batch too.
    post(client, created(9, updated_at="2026-12-04T16:00:00Z", result=[textarea("response", "new")]))
    post(client, created(9, updated_at="2026-12-04T15:00:00Z", result=[textarea("response", "old")]))
    assert [row["response"] for row in rows()] == ["new", "new"]


def test_a_late_copy_of_a_deleted_annotation_stays_deleted(synced) -> None:
    client, rows, _ = synced
    body = created(10, result=[textarea("response", "x")])
    post(client, body)
    post(client, deleted(10))
    assert rows() == []
    post(client, body, "/webhook")  # the same create, arriving late
    assert rows() == []


def test_skipped_annotation_is_a_row_marked_cancelled(synced) -> None:
    client, rows, _ = synced
    post(client, created(11, result=[], was_cancelled=True))
    (row,) = rows()
    assert row["was_cancelled"] == 1 and row["response"] is None


def test_bulk_created_annotations_each_get_a_row(synced) -> None:
    client, rows, _ = synced
    one = created(21, task_id=3, data={"text": "three"}, result=[rating(5)])
    two = created(22, task_id=4, data={"text": "four"}, result=[rating(1)])
    body = {"action": "ANNOTATIONS_CREATED", "annotation": [one["annotation"], two["annotation"]],
            "task": [one["task"], two["task"]], "project": one["project"]}  # fmt: skip
    assert post(client, body)["events"] == 2
    got = {(r["annotation_id"], r["task_id"], r["data_text"], r["rating"]) for r in rows()}
    assert got == {(21, 3, "three", 5), (22, 4, "four", 1)}


HOSTILE_CONFIG = """<View>
  <Text name="context" value="$text"/>
  <TextArea name="x&quot;; DROP TABLE annotations; --" toName="context"/>
  <TextArea name="select" toName="context"/>
  <TextArea name="annotation_id" toName="context"/>
  <Rating name="Stars Ñ" toName="context"/>
</View>"""


def test_hostile_names_and_values_are_stored_exactly(synced) -> None:
    client, rows, data_dir = synced
    evil = "it's \\ \"q\" \n\t; DROP TABLE annotations; -- ñ 名前 \U0001f600"
    long_text = "x" * 200_000
    data = {"text": evil, "select": "from", "a b": None, "1st": [1, {"n": None}], "名前": long_text,
            "x\"; DROP TABLE annotations; --": "v"}  # fmt: skip
    result = [
        {"from_name": 'x"; DROP TABLE annotations; --', "to_name": "context", "type": "textarea",
         "value": {"text": [evil]}},
        {"from_name": "select", "to_name": "context", "type": "textarea", "value": {"text": [long_text]}},
        {"from_name": "annotation_id", "to_name": "context", "type": "textarea", "value": {"text": ["7"]}},
        {"from_name": "Stars Ñ", "to_name": "context", "type": "rating", "value": {"rating": 3}},
    ]  # fmt: skip
    post(client, created(31, result=result, data=data, label_config=HOSTILE_CONFIG))
    (row,) = rows()
    assert row["annotation_id"] == 31  # not the tag named annotation_id
    assert row[column_name('x"; DROP TABLE annotations; --')] == evil
    assert row["select"] == long_text
    assert row["annotation_id_tag"] == "7"
    assert row[column_name("Stars Ñ")] == 3
    assert row["data_text"] == evil and row["data_select"] == "from"
    assert row[column_name("a b", "data_")] is None
    assert json.loads(row[column_name("1st", "data_")]) == [1, {"n": None}]
    assert row[column_name("名前", "data_")] == long_text
    assert json.loads(row["result_json"]) == result
    assert column_types(data_dir)[column_name("Stars Ñ")] == "INTEGER"


def test_new_tags_and_fields_add_columns(synced) -> None:
    client, rows, data_dir = synced
    post(client, created(41, result=[rating(2)]))
    rows()
    grown = fixture("setup.json")["body"]["schema"].replace(
        "</View>", '<Choices name="topic" toName="context" choice="multiple">'
        '<Choice value="A"/><Choice value="B"/></Choices></View>'
    )  # fmt: skip
    choice = {"from_name": "topic", "to_name": "context", "type": "choices",
              "value": {"choices": ["A", "B"]}}  # fmt: skip
    post(client, created(42, result=[choice], data={"text": "t", "source": "web"}, label_config=grown))
    first, second = rows()
    assert first["topic"] is None and first["data_source"] is None
    assert json.loads(second["topic"]) == ["A", "B"] and second["data_source"] == "web"


def test_other_actions_are_acknowledged_and_ignored(synced) -> None:
    client, rows, _ = synced
    for name in ("ml_webhook_tasks_created.json", "ml_webhook_project_updated.json",
                 "ml_webhook_start_training.json"):  # fmt: skip
        assert post(client, fixture(name)["body"], "/webhook")["events"] == 0
    assert post(client, {"action": "TASKS_DELETED"})["events"] == 0
    assert client.app.state.sync.outbox.status()["pending"] == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"action": "ANNOTATION_CREATED"}, "label_config"),
        ({"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": "<View/>"}}, "annotation"),
        ({"action": "ANNOTATION_CREATED", "annotation": {"id": "1"},
          "project": {"id": 1, "label_config": "<View/>"}}, "annotation.id"),
        ({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": -1}]}, "annotations[0].id"),
        ({"action": "ANNOTATIONS_DELETED", "annotations": {"id": 1}}, "annotations must be a list"),
        ({"action": "ANNOTATIONS_CREATED", "annotation": {}, "project": {"id": 1, "label_config": "<View/>"}},
         "annotation must be a list"),
    ],
)  # fmt: skip
def test_bad_webhooks_get_422_naming_the_field_and_store_nothing(synced, body, needle) -> None:
    client, _, _ = synced
    response = client.post("/data/upload", json=body)
    assert response.status_code == 422
    assert needle in response.json()["error"]
    assert client.app.state.sync.outbox.status()["pending"] == 0


def test_an_event_that_cannot_become_a_row_goes_to_dead_letters(synced) -> None:
    client, rows, _ = synced
    post(client, created(51, label_config="<View><Text name='t' value='$text'"))  # broken XML
    post(client, created(52))
    assert [row["annotation_id"] for row in rows()] == [52]
    status = client.app.state.sync.outbox.status()
    assert status["dead"] == 1 and status["pending"] == 0
    ((event, reason),) = client.app.state.sync.outbox.dead()
    assert event.annotation_id == 51 and "not valid XML" in reason
    health = client.get("/health").json()["sync"]
    assert health["dead"] == 1


def test_webhook_bodies_never_store_the_project_token(synced) -> None:
    client, _, data_dir = synced
    body = fixture("webhook_annotation_created.json")["body"]
    body["project"]["token"] = "invite-token-that-must-not-be-stored"
    post(client, body)
    assert b"invite-token-that-must-not-be-stored" not in (data_dir / "outbox.db").read_bytes()


def test_quote_identifier_is_the_only_way_in() -> None:
    assert quote_identifier('a"b') == '"a""b"'
    for bad in ("", "x" * 129, "a\x00b", "a\nb"):
        with pytest.raises(EngineError):
            quote_identifier(bad)
    assert column_name("response") == "response"
    assert column_name("Note") != column_name("note")  # capitals count
    assert column_name("text", "data_") != column_name("data_text")  # a tag never takes a data column
    assert column_name("a-b") != column_name("a_b")
    assert column_name("1st").startswith("c_1st")


def test_a_new_annotation_reusing_a_deleted_id_lands(synced) -> None:
    from datetime import UTC, datetime, timedelta

    client, rows, _ = synced
    post(client, created(12, result=[textarea("response", "old")]))
    post(client, deleted(12))
    assert rows() == []
    later = (datetime.now(UTC) + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    post(client, created(12, created_at=later, updated_at=later, result=[textarea("response", "new")]))
    assert [row["response"] for row in rows()] == ["new"]


def test_a_refused_event_is_retried_with_backoff_and_shown_in_health(synced) -> None:
    import time

    client, rows, data_dir = synced
    post(client, created(70))
    rows()
    db = sqlite3.connect(data_dir / "annotations.db")
    db.execute("CREATE TRIGGER refuse BEFORE INSERT ON annotations WHEN NEW.annotation_id = 77"
               " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")  # fmt: skip
    db.commit()
    db.close()
    post(client, created(77))
    time.sleep(1.5)
    status = client.app.state.sync.outbox.status()
    assert status["dead"] == 0 and status["pending"] == 1  # not five attempts in a second
    assert "refused by a trigger" in client.get("/health").json()["sync"]["last_error"]
    deadline = time.monotonic() + 60
    while client.app.state.sync.outbox.status()["dead"] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.app.state.sync.outbox.status()["dead"] == 1
