"""The engine interface, column types, and the one function that quotes identifiers."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import LabelStudioWatsonxError

# Logical column types; each engine maps them to its own SQL types.
TYPES = ("text", "integer", "double", "boolean", "timestamp")
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")


class EngineError(LabelStudioWatsonxError):
    """The engine refused a statement; retrying the same events will not help."""


class TransientEngineError(EngineError):
    """The engine could not be reached or was busy; the same events may apply later."""


def quote_identifier(name: str) -> str:
    """Quote one table, schema, catalog or column name for SQL.

    Every identifier the service writes into SQL passes through here: names from
    settings as they are, names from labeling configs and task data after
    ``rows.column_name`` made them safe. A name that cannot be an identifier raises
    ``EngineError`` naming it.
    """
    if not isinstance(name, str) or not name or len(name) > 128 or _FORBIDDEN.search(name):
        raise EngineError(f"{name!r} cannot be used as a SQL identifier")
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Column:
    """One column of the annotations table."""

    name: str
    type: str

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown column type {self.type!r}")


class Engine(ABC):
    """A SQL table keyed by ``annotation_id``, kept in step with Label Studio.

    ``apply`` receives, in event order, rows to upsert and annotation ids to delete.
    It must be idempotent: applying the same batch twice leaves the table as once.
    A row whose ``updated_at`` is older than the stored row's never replaces it.
    """

    name = "engine"
    sql_types: dict[str, str] = {}
    _known: set[str] = frozenset()  # type: ignore[assignment]

    def ensure_columns(self, columns: Sequence[Column]) -> None:
        """Create the table if missing and add any missing column."""
        if all(column.name in self._known for column in columns):
            return
        existing = set(self._column_names())
        if not existing:
            self._create_table(columns)
            existing = set(self._column_names())
        for column in columns:
            if column.name not in existing:
                self._add_column(column)
                existing.add(column.name)
        self._known = existing

    def _definition(self, column: Column) -> str:
        return f"{quote_identifier(column.name)} {self.sql_types[column.type]}"

    @abstractmethod
    def _column_names(self) -> list[str]:
        """The table's columns; empty when the table does not exist."""

    @abstractmethod
    def _create_table(self, columns: Sequence[Column]) -> None:
        """Create the table (and whatever holds it) with these columns."""

    @abstractmethod
    def _add_column(self, column: Column) -> None:
        """Add one column to the table."""

    @abstractmethod
    def apply(self, upserts: Sequence[dict], deletes: Sequence[int]) -> None:
        """Write ``upserts`` (rows keyed by annotation_id) and remove ``deletes``."""

    @abstractmethod
    def describe(self) -> str:
        """Where the rows go, without secrets: for logs and ``/health``."""

    def close(self) -> None:
        """Release connections."""
