"""Annotation rows in an embedded SQLite file (``DATA_DIR/annotations.db``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from datetime import datetime
from pathlib import Path

from .base import Column, Engine, EngineError, TransientEngineError, quote_identifier

SQL_TYPES = {"text": "TEXT", "integer": "INTEGER", "double": "REAL", "boolean": "INTEGER",
             "timestamp": "TEXT"}  # fmt: skip


def _value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, bool):
        return int(value)
    return value


class SQLiteEngine(Engine):
    """One table in one SQLite file; timestamps as ``YYYY-MM-DD HH:MM:SS.ffffff`` UTC text."""

    name = "sqlite"
    sql_types = SQL_TYPES

    def __init__(self, path: Path, table: str) -> None:
        self.path = path
        self.table = table

    def describe(self) -> str:
        return f"sqlite {self.path} table {self.table}"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def _column_names(self) -> list[str]:
        table = quote_identifier(self.table)
        return [row[1] for row in self._run(f"PRAGMA table_info({table})")]

    def _create_table(self, columns: Sequence[Column]) -> None:
        definitions = ", ".join(
            self._definition(column) + (" PRIMARY KEY" if column.name == "annotation_id" else "")
            for column in columns
        )
        self._run(f"CREATE TABLE IF NOT EXISTS {quote_identifier(self.table)} ({definitions})")

    def _add_column(self, column: Column) -> None:
        self._run(f"ALTER TABLE {quote_identifier(self.table)} ADD COLUMN {self._definition(column)}")

    def _run(self, sql: str) -> list[tuple]:
        try:
            with closing(self._connect()) as db:
                return db.execute(sql).fetchall()
        except sqlite3.Error as error:
            raise _classify(error) from error

    def apply(self, upserts: Sequence[dict], deletes: Sequence[int]) -> None:
        table = quote_identifier(self.table)
        try:
            with closing(self._connect()) as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    for row in upserts:
                        self._upsert(db, table, row)
                    if deletes:
                        db.executemany(
                            f"DELETE FROM {table} WHERE annotation_id = ?",
                            [(annotation_id,) for annotation_id in deletes],
                        )
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as error:
            raise _classify(error) from error

    @staticmethod
    def _upsert(db: sqlite3.Connection, table: str, row: dict) -> None:
        names = list(row)
        quoted = [quote_identifier(name) for name in names]
        updates = ", ".join(f"{q} = excluded.{q}" for q in quoted if q != '"annotation_id"')
        db.execute(
            f"INSERT INTO {table} ({', '.join(quoted)}) VALUES ({', '.join('?' * len(names))})"
            f" ON CONFLICT (annotation_id) DO UPDATE SET {updates}"
            f" WHERE excluded.updated_at IS NULL OR {table}.updated_at IS NULL"
            f" OR excluded.updated_at >= {table}.updated_at",
            [_value(row[name]) for name in names],
        )


def _classify(error: sqlite3.Error) -> EngineError:
    message = str(error)
    if "locked" in message or "busy" in message or "disk I/O" in message or "unable to open" in message:
        return TransientEngineError(f"sqlite: {message}")
    return EngineError(f"sqlite: {message}")
