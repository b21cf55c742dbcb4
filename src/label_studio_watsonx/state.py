"""What the service remembers between requests and restarts, in ``DATA_DIR/state.db``.

Today that is each project's last interactive prompt, which later automatic
predictions of the project reuse. SQLite in WAL mode keeps it safe with several
worker processes; each call opens its own short connection, so threads never share
one.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS project_prompts (
    project_id INTEGER PRIMARY KEY,
    prompt TEXT NOT NULL,
    updated_at REAL NOT NULL
)
"""


class ProjectPrompts:
    """The last prompt an annotator typed in each project."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "state.db"
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

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

    def forget(self, project_id: int) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM project_prompts WHERE project_id = ?", (project_id,))
