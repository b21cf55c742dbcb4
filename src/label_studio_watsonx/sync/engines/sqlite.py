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

    def __init__(self, path: Path, table: str) -> None:
        self.path = path
        self.table = table
        self._columns: set[str] = set()

    def describe(self) -> str:
        return f"sqlite {self.path} table {self.table}"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def ensure_columns(self, columns: Sequence[Column]) -> None:
        wanted = [column for column in columns if column.name not in self._columns]
        if not wanted:
            return
        table = quote_identifier(self.table)
        try:
            with closing(self._connect()) as db:
                existing = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if not existing:
                    definitions = ", ".join(
                        f"{quote_identifier(c.name)} {SQL_TYPES[c.type]}"
                        + (" PRIMARY KEY" if c.name == "annotation_id" else "")
                        for c in columns
                    )
                    db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({definitions})")
                    existing = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column.name not in existing:
                        db.execute(
                            f"ALTER TABLE {table} ADD COLUMN "
                            f"{quote_identifier(column.name)} {SQL_TYPES[column.type]}"
                        )
                        existing.add(column.name)
        except sqlite3.OperationalError as error:
            raise _classify(error) from error
        self._columns = existing

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
