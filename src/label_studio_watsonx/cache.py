"""Stored LLM answers in ``DATA_DIR/cache.db``, so the same question is never paid twice.

The key is the provider, the model, the generation parameters, the kind of call
(free answer, or a choice among labels) and the final prompt: the same key gives
the stored answer without calling the LLM. ``/predict`` and ``prelabel`` share it;
SQLite in WAL mode keeps it safe across worker processes and commands.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

from .llm.base import Completion

SCHEMA = """CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    answer TEXT NOT NULL,
    created_at REAL NOT NULL
)"""


def cache_key(*parts: object) -> str:
    text = json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class ResponseCache:
    """Answers by key; ``get`` is None on a miss."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "cache.db"
        self._local = threading.local()
        db = self._connect()
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (opened once per thread, not per call)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA synchronous=NORMAL")
        return db

    def get(self, key: str) -> Completion | None:
        row = self._connect().execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        stored = json.loads(row[0])
        return Completion(**stored)

    def put(self, key: str, completion: Completion) -> None:
        answer = json.dumps({
            "text": completion.text, "input_tokens": completion.input_tokens,
            "output_tokens": completion.output_tokens, "stop_reason": completion.stop_reason,
            "labels": completion.labels,
        }, ensure_ascii=False)  # fmt: skip
        self._connect().execute(
            "INSERT OR REPLACE INTO answers (key, answer, created_at) VALUES (?, ?, ?)",
            (key, answer, time.time()),
        )
