"""Where a Label Studio annotation becomes one table row.

The fixed columns come first; then one column per task data field (``data_<key>``)
and one per control tag of the labeling config (named after the tag). Column types
come from the config (a ``Rating`` is an integer, a ``Number`` a double, everything
else text), never from the first value seen.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from ..labeling import ControlTag, read_config
from .engines.base import Column

FIXED_COLUMNS: tuple[Column, ...] = (
    Column("annotation_id", "integer"),
    Column("task_id", "integer"),
    Column("project_id", "integer"),
    Column("completed_by", "integer"),
    Column("completed_by_email", "text"),
    Column("updated_by", "integer"),
    Column("updated_by_email", "text"),
    Column("created_at", "timestamp"),
    Column("updated_at", "timestamp"),
    Column("lead_time", "double"),
    Column("was_cancelled", "boolean"),
    Column("result_json", "text"),
    Column("synced_at", "timestamp"),
)
FIXED_NAMES = frozenset(column.name for column in FIXED_COLUMNS)
TAG_TYPES = {"Rating": "integer", "Number": "double"}
_UNSAFE = re.compile(r"[^a-z0-9_]+")


def column_name(raw: str, prefix: str = "") -> str:
    """A safe, stable column name for a tag name or data key.

    Lower-case letters, digits and underscores are kept; anything else (capitals
    too) becomes lower case or ``_`` and, so that two different names never meet,
    a short hash of the original is appended. A tag named like a fixed column, or
    starting with ``data_``, gets ``_tag``.
    """
    wanted = prefix + raw
    cleaned = _UNSAFE.sub("_", wanted.lower()).strip("_")[:56] or "c"
    if cleaned[0].isdigit():
        cleaned = "c_" + cleaned
    if cleaned != wanted:
        cleaned += "_" + hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    if not prefix and (cleaned in FIXED_NAMES or cleaned.startswith("data_")):
        cleaned += "_tag"  # fixed columns and data_ columns keep their names
    return cleaned


def tag_columns(label_config: str) -> dict[str, Column]:
    """One column per control tag of the config, keyed by tag name."""
    columns: dict[str, Column] = {}
    for tag in read_config(label_config).controls:
        columns[tag.name] = Column(column_name(tag.name), TAG_TYPES.get(tag.type, "text"))
    return columns


def data_columns(data: Mapping) -> dict[str, Column]:
    return {key: Column(column_name(key, "data_"), "text") for key in data if isinstance(key, str)}


def columns_for(label_config: str, data: Mapping) -> list[Column]:
    """Every column a row of this config and task data needs, fixed ones first."""
    return [*FIXED_COLUMNS, *data_columns(data).values(), *tag_columns(label_config).values()]


def annotation_row(
    annotation: Mapping,
    task: Mapping,
    project_id: int | None,
    label_config: str,
    emails: Mapping[int, str | None],
) -> dict[str, object]:
    """The row for one annotation; every value ready to be bound as a parameter."""
    result = annotation.get("result") or []
    completed_by = _user_id(annotation.get("completed_by"))
    updated_by = _user_id(annotation.get("updated_by"))
    row: dict[str, object] = {
        "annotation_id": int(annotation["id"]),
        "task_id": _int_or_none(annotation.get("task")) or _int_or_none(task.get("id")),
        "project_id": project_id if project_id is not None else _int_or_none(annotation.get("project")),
        "completed_by": completed_by,
        "completed_by_email": emails.get(completed_by) if completed_by is not None else None,
        "updated_by": updated_by,
        "updated_by_email": emails.get(updated_by) if updated_by is not None else None,
        "created_at": parse_time(annotation.get("created_at")),
        "updated_at": parse_time(annotation.get("updated_at")),
        "lead_time": _float_or_none(annotation.get("lead_time")),
        "was_cancelled": bool(annotation.get("was_cancelled", False)),
        "result_json": json.dumps(result, ensure_ascii=False, sort_keys=True),
        "synced_at": datetime.now(UTC).replace(tzinfo=None),
    }
    data = task.get("data") if isinstance(task.get("data"), Mapping) else {}
    for key, column in data_columns(data).items():
        value = data[key]
        row[column.name] = value if isinstance(value, str) or value is None else _json(value)

    tags = {tag.name: tag for tag in read_config(label_config).controls}
    for name, column in tag_columns(label_config).items():
        row[column.name] = tag_value(tags[name], [r for r in result if _from(r) == name])
    return row


def tag_value(tag: ControlTag, items: list) -> object:
    """What one tag holds in a result, shaped for its column type."""
    values = [item.get("value") for item in items if isinstance(item.get("value"), Mapping)]
    if not values:
        return None
    if tag.type == "TextArea":
        texts = [text for value in values for text in _as_list(value.get("text"))]
        return "\n".join(str(text) for text in texts)
    if tag.type == "Choices":
        chosen = [choice for value in values for choice in _as_list(value.get("choices"))]
        if tag.multiple or len(chosen) > 1:
            return _json(chosen)
        return str(chosen[0]) if chosen else None
    if tag.type == "Rating":
        return _int_or_none(values[0].get("rating"))
    if tag.type == "Number":
        return _float_or_none(values[0].get("number"))
    return _json(values if len(values) > 1 else values[0])


def parse_time(value: object) -> datetime | None:
    """Label Studio's ISO times as naive UTC datetimes (None when absent or unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _from(item: object) -> object:
    return item.get("from_name") if isinstance(item, Mapping) else None


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _user_id(value: object) -> int | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return _int_or_none(value)


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if -(2**63) <= number < 2**63 else None


def _float_or_none(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
