"""Label Studio webhook bodies checked and turned into sync events.

``events_from_webhook`` returns the upserts and deletes a body asks for (none for
actions the sync does not follow) or raises ``RequestError`` naming what is wrong.
Only what a row needs is kept: the annotation, the task's id and data, and the
project's id and labeling config. The rest of the project, its invite token
included, is dropped here and never stored or logged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import RequestError

UPSERT_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"})
DELETE_ACTIONS = frozenset({"ANNOTATIONS_DELETED"})
SYNC_ACTIONS = UPSERT_ACTIONS | DELETE_ACTIONS
MAX_ID = 2**63 - 1
ANNOTATION_KEYS = ("id", "result", "was_cancelled", "created_at", "updated_at", "lead_time",
                   "completed_by", "updated_by", "task", "project")  # fmt: skip


class WebhookError(RequestError):
    """A webhook body that cannot be synced; the message names the field."""

    status_code = 422


@dataclass(frozen=True)
class SyncEvent:
    """One upsert (``annotation`` set) or one delete of an annotation id."""

    kind: str  # "upsert" or "delete"
    annotation_id: int
    project_id: int | None
    payload: dict

    @property
    def key(self) -> str:
        """Equal for the same event delivered twice, to one endpoint or both."""
        if self.kind == "delete":
            return f"delete:{self.annotation_id}"
        annotation = self.payload["annotation"]
        content = json.dumps(
            [annotation.get("updated_at"), annotation.get("result"), annotation.get("was_cancelled"),
             self.payload.get("task_data"), self.payload.get("label_config")],
            sort_keys=True, default=str,
        )  # fmt: skip
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]
        return f"upsert:{self.annotation_id}:{digest}"


def events_from_webhook(body: Mapping) -> list[SyncEvent]:
    """The sync events in one webhook body; [] for actions the sync ignores."""
    action = body.get("action")
    if action not in SYNC_ACTIONS:
        return []
    project = body.get("project")
    project_id = _id(project.get("id"), "project.id") if isinstance(project, Mapping) else None
    label_config = project.get("label_config") if isinstance(project, Mapping) else None

    if action in DELETE_ACTIONS:
        items = _list(body.get("annotations"), "annotations")
        ids = [_id(_mapping(item, f"annotations[{n}]").get("id"), f"annotations[{n}].id")
               for n, item in enumerate(items)]  # fmt: skip
        return [SyncEvent("delete", annotation_id, project_id, {}) for annotation_id in ids]

    if not isinstance(label_config, str) or not label_config.strip():
        raise WebhookError(f"{action}: project.label_config is missing; it names the columns")
    if action == "ANNOTATIONS_CREATED":
        annotations = _list(body.get("annotation"), "annotation")
        tasks = _list(body.get("task", []), "task")
    else:
        annotations = [_mapping(body.get("annotation"), "annotation")]
        tasks = [body.get("task")] if body.get("task") is not None else []
    tasks_by_id = {
        _plain_id(task.get("id")): task for task in tasks if isinstance(task, Mapping)
    }

    events = []
    for n, raw in enumerate(annotations):
        where = "annotation" if action != "ANNOTATIONS_CREATED" else f"annotation[{n}]"
        annotation = _mapping(raw, where)
        annotation_id = _id(annotation.get("id"), f"{where}.id")
        result = annotation.get("result", [])
        if result is not None and not isinstance(result, list):
            raise WebhookError(f"{where}.result must be a list of regions")
        task_id = annotation.get("task")
        if isinstance(task_id, Mapping):
            task_id = task_id.get("id")
        task_id = _plain_id(task_id)
        task = (tasks_by_id.get(task_id) if task_id is not None else None) or (
            tasks[0] if len(tasks) == 1 else {})  # fmt: skip
        task = task if isinstance(task, Mapping) else {}
        data = task.get("data", {})
        if not isinstance(data, Mapping):
            raise WebhookError(f"task {task.get('id')}: data must be an object")
        payload = {
            "annotation": {key: annotation[key] for key in ANNOTATION_KEYS if key in annotation},
            "task_id": _plain_id(task.get("id")) or task_id,
            "task_data": dict(data),
            "label_config": label_config,
        }
        events.append(SyncEvent("upsert", annotation_id, project_id, payload))
    return events


def _plain_id(value: object) -> int | None:
    """An id usable as a key, or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        return None
    return value


def _id(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise WebhookError(f"{where} must be a whole number id, got {json.dumps(value)[:40]}")
    return value


def _list(value: object, where: str) -> list:
    if not isinstance(value, list):
        raise WebhookError(f"{where} must be a list")
    return value


def _mapping(value: object, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise WebhookError(f"{where} must be an object")
    return value
