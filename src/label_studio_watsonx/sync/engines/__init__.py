"""Where annotation rows are kept: SQLite by default, watsonx.data through Presto."""

from __future__ import annotations

from ...settings import Settings
from .base import Column, Engine, EngineError, TransientEngineError, quote_identifier

__all__ = ["Column", "Engine", "EngineError", "TransientEngineError", "create_engine",
           "quote_identifier"]  # fmt: skip


def create_engine(settings: Settings) -> Engine:
    """The engine the settings name; the Presto client is imported only when used."""
    if settings.engine == "presto":
        from .presto import PrestoEngine

        return PrestoEngine.from_settings(settings)
    from .sqlite import SQLiteEngine

    return SQLiteEngine(settings.data_dir / "annotations.db", settings.table)
