"""Annotations made in a real Label Studio land, one row each, in the service's table.

Label Studio calls the service's ``/data/upload`` webhook as it would in
production; the test then reads the SQLite table the service writes.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import httpx
import pytest

from tests.fixtures import REFERENCE_CONFIG
from tests.processes import ServerProcess, service_process

pytestmark = pytest.mark.e2e
ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"]


@pytest.fixture(scope="module")
def sync_service(label_studio, tmp_path_factory):
    server, token = label_studio
    service = service_process(
        tmp_path_factory.mktemp("sync-service"), LLM_PROVIDER="echo", WORKERS="2",
        LABEL_STUDIO_URL=server.url, LABEL_STUDIO_API_KEY=token,
    )  # fmt: skip
    service.start("/health", timeout=60)
    yield service
    service.stop()


def table_rows(service: ServerProcess, timeout: float = 30.0) -> list[dict]:
    """The table once the service has applied everything it acknowledged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(service.url + "/health").json()["sync"]["pending"] == 0:
            break
        time.sleep(0.2)
    db = sqlite3.connect(service.env["DATA_DIR"] + "/annotations.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute("SELECT * FROM annotations ORDER BY annotation_id")]
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


def answer(text: str, stars: int) -> list[dict]:
    return [
        {"from_name": "response", "to_name": "context", "type": "textarea", "value": {"text": [text]}},
        {"from_name": "rating", "to_name": "context", "type": "rating", "value": {"rating": stars}},
    ]


def test_created_updated_and_deleted_annotations_mirror_in_the_table(ls_api, sync_service) -> None:
    project_id = ls_api.post(
        "/api/projects", json={"title": "e2e sync", "label_config": REFERENCE_CONFIG}
    ).json()["id"]
    ls_api.post(f"/api/projects/{project_id}/import",
                json=[{"text": "The sky is blue."}, {"text": "Grass is green."}])  # fmt: skip
    hook = ls_api.post("/api/webhooks", json={
        "project": project_id, "url": sync_service.url + "/data/upload", "send_payload": True,
        "send_for_all_actions": False, "actions": ACTIONS,
    })  # fmt: skip
    assert hook.status_code == 201, hook.text
    tasks = ls_api.get("/api/tasks", params={"project": project_id}).json()["tasks"]
    first, second = sorted(task["id"] for task in tasks)

    one = ls_api.post(f"/api/tasks/{first}/annotations", json={"result": answer("Blue.", 5)}).json()
    two = ls_api.post(f"/api/tasks/{second}/annotations", json={"result": answer("Green.", 3)}).json()
    rows = [row for row in table_rows(sync_service) if row["project_id"] == project_id]
    assert [(r["annotation_id"], r["task_id"], r["response"], r["rating"]) for r in rows] == [
        (one["id"], first, "Blue.", 5), (two["id"], second, "Green.", 3)]  # fmt: skip
    assert rows[0]["completed_by_email"] == "e2e@example.com"  # looked up through the API
    assert rows[0]["data_text"] == "The sky is blue."

    updated = ls_api.patch(f"/api/annotations/{one['id']}", json={"result": answer("Bluish.", 4)})
    assert updated.status_code == 200, updated.text
    rows = [row for row in table_rows(sync_service) if row["project_id"] == project_id]
    assert (rows[0]["response"], rows[0]["rating"]) == ("Bluish.", 4)

    assert ls_api.delete(f"/api/annotations/{two['id']}").status_code == 204
    rows = [row for row in table_rows(sync_service) if row["project_id"] == project_id]
    assert [row["annotation_id"] for row in rows] == [one["id"]]


def test_backfill_copies_existing_annotations_and_twice_changes_nothing(
    ls_api, label_studio, tmp_path
) -> None:
    server, token = label_studio
    project_id = ls_api.post(
        "/api/projects", json={"title": "e2e backfill", "label_config": REFERENCE_CONFIG}
    ).json()["id"]
    ls_api.post(f"/api/projects/{project_id}/import", json=[{"text": f"t{n}"} for n in range(5)])
    tasks = ls_api.get("/api/tasks", params={"project": project_id}).json()["tasks"]
    for n, task in enumerate(tasks):
        ls_api.post(f"/api/tasks/{task['id']}/annotations", json={"result": answer(f"a{n}", n % 5 + 1)})

    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "LLM_PROVIDER": "echo",
           "LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": token}  # fmt: skip
    command = [sys.executable, "-m", "label_studio_watsonx", "backfill", "--project", str(project_id)]
    runs = [subprocess.run(command, env=env, capture_output=True, text=True, timeout=300) for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert f"project {project_id}: 5 tasks, 5 annotations" in runs[0].stdout
    assert token not in runs[0].stdout + runs[0].stderr

    db = sqlite3.connect(tmp_path / "annotations.db")
    rows = db.execute("SELECT task_id, response, rating, completed_by_email FROM annotations"
                      " ORDER BY task_id").fetchall()  # fmt: skip
    assert len(rows) == 5
    assert [row[1] for row in rows] == [f"a{n}" for n in range(5)]
    assert {row[3] for row in rows} == {"e2e@example.com"}


def test_a_personal_access_token_works_too(ls_api, label_studio, tmp_path) -> None:
    server, _ = label_studio
    personal = ls_api.post("/api/token/", json={}).json()["token"]  # a refresh JWT
    assert personal.count(".") == 2
    project_id = ls_api.post(
        "/api/projects", json={"title": "e2e personal token", "label_config": REFERENCE_CONFIG}
    ).json()["id"]
    ls_api.post(f"/api/projects/{project_id}/import", json=[{"text": "one"}, {"text": "two"}])
    for task in ls_api.get("/api/tasks", params={"project": project_id}).json()["tasks"]:
        ls_api.post(f"/api/tasks/{task['id']}/annotations", json={"result": answer("yes", 2)})

    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "LLM_PROVIDER": "echo",
           "LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": personal}  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "label_studio_watsonx", "backfill", "--project", str(project_id)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    db = sqlite3.connect(tmp_path / "annotations.db")
    emails = db.execute("SELECT completed_by_email FROM annotations").fetchall()
    assert emails == [("e2e@example.com",), ("e2e@example.com",)]
    assert personal not in run.stdout + run.stderr
