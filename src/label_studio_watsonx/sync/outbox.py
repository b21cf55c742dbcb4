"""The outbox: sync events committed to ``DATA_DIR/outbox.db`` before they are acknowledged.

Events wait in ``pending`` in arrival order until the flusher applies them. One
that can never apply moves to ``dead`` with its reason, where ``outbox replay``
finds it. Deleted annotation ids are remembered in ``tombstones``, so a late or
repeated create of a deleted annotation never brings its row back. Every
connection is short-lived and SQLite runs in WAL mode with full fsync, so several
worker processes can add events at once and an acknowledged event survives a crash.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .events import SyncEvent

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS pending (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        annotation_id INTEGER NOT NULL,
        project_id INTEGER,
        payload TEXT NOT NULL,
        received_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS dead (
        seq INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        annotation_id INTEGER NOT NULL,
        project_id INTEGER,
        payload TEXT NOT NULL,
        received_at REAL NOT NULL,
        attempts INTEGER NOT NULL,
        reason TEXT NOT NULL,
        died_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS tombstones (
        annotation_id INTEGER PRIMARY KEY,
        deleted_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS flusher_status (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_error TEXT,
        last_error_at REAL,
        last_success_at REAL
    )""",
    """CREATE TABLE IF NOT EXISTS user_emails (
        user_id INTEGER PRIMARY KEY,
        email TEXT,
        fetched_at REAL NOT NULL
    )""",
)


@dataclass(frozen=True)
class StoredEvent:
    """An event as the outbox holds it."""

    seq: int
    key: str
    kind: str
    annotation_id: int
    project_id: int | None
    payload: dict
    received_at: float
    attempts: int
    error: str | None

    def as_event(self) -> SyncEvent:
        return SyncEvent(self.kind, self.annotation_id, self.project_id, self.payload)


class Outbox:
    """Durable, ordered, de-duplicated sync events."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "outbox.db"
        self._local = threading.local()
        # Threads of one process take turns here rather than in SQLite's busy handler,
        # which sleeps in steps of up to 100 ms and made acknowledgements wait.
        self._write_lock = threading.Lock()
        with self._write() as db:
            for statement in SCHEMA:
                db.execute(statement)

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (opened once per thread, not per call)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=60000")
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (and fsynced) on leaving, rolled back on error."""
        with self._write_lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def add(self, events: Sequence[SyncEvent]) -> int:
        """Commit events (all or none); returns how many were new. Durable on return."""
        if not events:
            return 0
        now = time.time()
        rows = [
            (event.key, event.kind, event.annotation_id, event.project_id,
             json.dumps(event.payload, ensure_ascii=False, default=str), now)
            for event in events
        ]  # fmt: skip
        with self._write() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO pending (key, kind, annotation_id, project_id, payload,"
                " received_at) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            return db.total_changes - before

    def pending(self, limit: int) -> list[StoredEvent]:
        rows = self._db().execute(
            "SELECT seq, key, kind, annotation_id, project_id, payload, received_at, attempts,"
            " last_error FROM pending ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [_stored(row) for row in rows]

    def done(self, events: Iterable[StoredEvent]) -> None:
        """Remove applied events; deletes leave tombstones (with when they arrived)."""
        events = list(events)
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO tombstones (annotation_id, deleted_at) VALUES (?, ?)",
                [(event.annotation_id, event.received_at) for event in events
                 if event.kind == "delete"],
            )  # fmt: skip
            db.executemany("DELETE FROM pending WHERE seq = ?", [(event.seq,) for event in events])

    def failed(self, event: StoredEvent, error: str) -> int:
        """Count a failed attempt at one event; returns the attempts so far."""
        with self._write() as db:
            db.execute(
                "UPDATE pending SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                (error[:2000], event.seq),
            )
            row = db.execute("SELECT attempts FROM pending WHERE seq = ?", (event.seq,)).fetchone()
        return row[0] if row else 0

    def bury(self, event: StoredEvent, reason: str) -> None:
        """Move an event that can never apply to the dead-letter list."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO dead (seq, key, kind, annotation_id, project_id, payload,"
                " received_at, attempts, reason, died_at)"
                " SELECT seq, key, kind, annotation_id, project_id, payload, received_at,"
                " attempts, ?, ? FROM pending WHERE seq = ?",
                (reason[:2000], time.time(), event.seq),
            )
            db.execute("DELETE FROM pending WHERE seq = ?", (event.seq,))

    def dead(self, limit: int = 1000) -> list[tuple[StoredEvent, str]]:
        rows = self._db().execute(
            "SELECT seq, key, kind, annotation_id, project_id, payload, received_at, attempts,"
            " reason FROM dead ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [(_stored(row), row[8]) for row in rows]

    def replay(self, seqs: Sequence[int] | None = None) -> int:
        """Move dead events (all, or those with the given numbers) back to pending."""
        where, args = ("", ()) if seqs is None else (
            f" WHERE seq IN ({','.join('?' * len(seqs))})", tuple(seqs))  # fmt: skip
        with self._write() as db:
            moved = db.execute(
                "INSERT OR IGNORE INTO pending (key, kind, annotation_id, project_id, payload,"
                " received_at) SELECT key || ':replay:' || seq, kind, annotation_id, project_id,"
                " payload, received_at FROM dead" + where + " ORDER BY seq",
                args,
            ).rowcount
            db.execute("DELETE FROM dead" + where, args)
        return moved

    def tombstoned(self, annotation_ids: Iterable[int]) -> dict[int, float]:
        """Deleted ids among these, each with when its delete arrived (Unix time)."""
        ids = list(set(annotation_ids))
        db = self._db()
        found: dict[int, float] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found.update(
                db.execute(
                    "SELECT annotation_id, deleted_at FROM tombstones WHERE annotation_id IN"
                    f" ({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            )
        return found

    def record_flush(self, error: str | None) -> None:
        """Remember the outcome of the last flush, for every worker's ``/health``."""
        now = time.time()
        with self._write() as db:
            if error is None:
                db.execute(
                    "INSERT INTO flusher_status (id, last_success_at) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET last_success_at = excluded.last_success_at,"
                    " last_error = NULL",
                    (now,),
                )
            else:
                db.execute(
                    "INSERT INTO flusher_status (id, last_error, last_error_at) VALUES (1, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET last_error = excluded.last_error,"
                    " last_error_at = excluded.last_error_at",
                    (error[:2000], now),
                )

    def status(self) -> dict[str, object]:
        """Backlog, dead letters and the last engine error."""
        db = self._db()
        pending = db.execute("SELECT count(*) FROM pending").fetchone()[0]
        dead = db.execute("SELECT count(*) FROM dead").fetchone()[0]
        row = db.execute(
            "SELECT last_error, last_error_at, last_success_at FROM flusher_status WHERE id = 1"
        ).fetchone()
        last_error, error_at, success_at = row or (None, None, None)
        return {
            "pending": pending,
            "dead": dead,
            "last_error": last_error,
            "last_error_at": error_at,
            "last_success_at": success_at,
        }

    def cached_emails(self, user_ids: Iterable[int], max_age: float) -> dict[int, str | None]:
        ids = list(set(user_ids))
        if not ids:
            return {}
        rows = self._db().execute(
                "SELECT user_id, email FROM user_emails WHERE fetched_at > ? AND user_id IN"
                f" ({','.join('?' * len(ids))})",
                (time.time() - max_age, *ids),
        ).fetchall()
        return dict(rows)

    def remember_emails(self, emails: dict[int, str | None]) -> None:
        now = time.time()
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO user_emails (user_id, email, fetched_at) VALUES (?, ?, ?)",
                [(user_id, email, now) for user_id, email in emails.items()],
            )


def _stored(row: tuple) -> StoredEvent:
    return StoredEvent(
        seq=row[0], key=row[1], kind=row[2], annotation_id=row[3], project_id=row[4],
        payload=json.loads(row[5]), received_at=row[6], attempts=row[7], error=row[8],
    )  # fmt: skip
