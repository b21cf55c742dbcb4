"""Logging set-up: one format for the whole process, and no secret in any line.

``configure_logging`` installs a filter on the root handler that replaces every
configured secret (passwords, API keys, tokens) with ``***`` in the final text of
each record, whatever logger or level produced it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class SecretFilter(logging.Filter):
    """Masks known secret values in a record's message and arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted({value for value in secrets if len(value) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for value in self.secrets:
            if value in text:
                text = text.replace(value, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.scrub(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        return True


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Send every log line to stderr at ``level``, secrets masked."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_lsw", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._lsw = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    for old in list(handler.filters):
        handler.removeFilter(old)
    handler.addFilter(SecretFilter(secrets))
    root.setLevel(level)
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Client libraries log whole requests at DEBUG, tokens included: never below INFO.
    for chatty in ("httpx", "httpcore", "urllib3", "ibm_watsonx_ai", "prestodb", "requests"):
        logging.getLogger(chatty).setLevel(max(logging.INFO, logging.getLevelName(level)))
