"""What the service remembers between requests and restarts, in ``DATA_DIR/state.db``.

That is each project's last interactive prompt, which later automatic predictions
of the project reuse, and the generation parameters a project set in Label Studio's
model settings (``extra_params``). SQLite in WAL mode keeps it safe with several
worker processes; each call opens its own short connection, so threads never share
one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS project_prompts (
        project_id INTEGER PRIMARY KEY,
        prompt TEXT NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS project_params (
        project_id INTEGER PRIMARY KEY,
        params TEXT NOT NULL,
        updated_at REAL NOT NULL
    )""",
)


class ProjectPrompts:
    """The last prompt an annotator typed in each project."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "state.db"
        self._local = threading.local()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            for statement in SCHEMA:
                db.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection (opened once per thread, not per call)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, timeout=30)
        return db

    def get(self, project_id: int | None) -> str | None:
        if project_id is None:
            return None
        with self._connect() as db:
            row = db.execute(
                "SELECT prompt FROM project_prompts WHERE project_id = ?", (project_id,)
            ).fetchone()
        return row[0] if row else None

    def remember(self, project_id: int | None, prompt: str) -> None:
        if project_id is None:
            return
        with self._connect() as db:
            db.execute(
                "INSERT INTO project_prompts (project_id, prompt, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (project_id) DO UPDATE SET prompt = excluded.prompt,"
                " updated_at = excluded.updated_at",
                (project_id, prompt, time.time()),
            )

    def params(self, project_id: int | None) -> dict:
        """The generation parameters a project overrides (empty when none)."""
        if project_id is None:
            return {}
        with self._connect() as db:
            row = db.execute(
                "SELECT params FROM project_params WHERE project_id = ?", (project_id,)
            ).fetchone()
        return json.loads(row[0]) if row else {}

    def set_params(self, project_id: int | None, params: dict) -> None:
        if project_id is None:
            return
        with self._connect() as db:
            if not params:
                db.execute("DELETE FROM project_params WHERE project_id = ?", (project_id,))
                return
            db.execute(
                "INSERT INTO project_params (project_id, params, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (project_id) DO UPDATE SET params = excluded.params,"
                " updated_at = excluded.updated_at",
                (project_id, json.dumps(params, sort_keys=True), time.time()),
            )
