"""Label Studio webhook bodies for sync tests, shaped like the captured ones."""

from __future__ import annotations

from tests.fixtures import REFERENCE_CONFIG, fixture


def created(
    annotation_id: int,
    *,
    task_id: int = 1,
    project_id: int = 1,
    updated_at: str = "2026-12-04T15:22:33.123060Z",
    result: list | None = None,
    data: dict | None = None,
    label_config: str = REFERENCE_CONFIG,
    action: str = "ANNOTATION_CREATED",
    **fields: object,
) -> dict:
    """An ANNOTATION_CREATED (or _UPDATED) body for one annotation."""
    body = fixture("webhook_annotation_created.json")["body"]
    body["action"] = action
    annotation = body["annotation"]
    annotation.update(id=annotation_id, task=task_id, project=project_id, updated_at=updated_at)
    if result is not None:
        annotation["result"] = result
    annotation.update(fields)
    body["task"].update(id=task_id, project=project_id)
    if data is not None:
        body["task"]["data"] = data
    body["project"].update(id=project_id, label_config=label_config)
    return body


def deleted(*annotation_ids: int, project_id: int = 1) -> dict:
    body = fixture("webhook_annotations_deleted.json")["body"]
    body["annotations"] = [{"id": annotation_id} for annotation_id in annotation_ids]
    body["project"]["id"] = project_id
    return body


def textarea(name: str, text: str) -> dict:
    return {"from_name": name, "to_name": "context", "type": "textarea", "value": {"text": [text]}}


def rating(value: int) -> dict:
    return {"from_name": "rating", "to_name": "context", "type": "rating", "value": {"rating": value}}
