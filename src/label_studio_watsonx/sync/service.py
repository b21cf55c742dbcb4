"""The sync side of the app: accept webhook bodies, run the flusher, report health."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from .. import metrics
from ..labelstudio import LabelStudio, LabelStudioError
from ..settings import Settings
from .engines import Engine, create_engine
from .events import events_from_webhook
from .flusher import Flusher
from .outbox import Outbox

log = logging.getLogger(__name__)

EMAIL_MAX_AGE = 24 * 3600.0
EMAIL_RETRY_AFTER = 60.0


class EmailBook:
    """User e-mails from Label Studio, asked once per user and kept for a day.

    When Label Studio cannot answer, rows still land with ids only, and Label
    Studio is not asked again for a minute.
    """

    def __init__(self, outbox: Outbox, client: LabelStudio | None) -> None:
        self.outbox = outbox
        self.client = client
        self._quiet_until = 0.0

    def __call__(self, user_ids: set[int]) -> dict[int, str | None]:
        known = self.outbox.cached_emails(user_ids, EMAIL_MAX_AGE)
        missing = [user_id for user_id in user_ids if user_id not in known]
        if not missing or self.client is None or time.monotonic() < self._quiet_until:
            return known
        found: dict[int, str | None] = {}
        for user_id in missing:
            try:
                found[user_id] = self.client.user_email(user_id)
            except LabelStudioError as error:
                log.warning("no e-mail for user %d: %s", user_id, error)
                self._quiet_until = time.monotonic() + EMAIL_RETRY_AFTER
                break
        self.outbox.remember_emails(found)
        return {**known, **found}


class Sync:
    """Webhook bodies in; rows out through the outbox and the flusher."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.outbox = Outbox(settings.data_dir)
        self.engine = engine or create_engine(settings)
        client = None
        if settings.label_studio_url and settings.label_studio_api_key:
            client = LabelStudio(settings.label_studio_url, settings.label_studio_api_key, timeout=5)
        self.flusher = Flusher(
            self.outbox,
            self.engine,
            settings.data_dir / "flusher.lock",
            batch_size=settings.sync_batch_size,
            max_attempts=settings.sync_max_attempts,
            max_backoff=settings.sync_max_backoff,
            emails=EmailBook(self.outbox, client),
        )

    def accept(self, body: Mapping) -> dict[str, object]:
        """Commit a webhook's events to the outbox; raises ``WebhookError`` for a bad body."""
        events = events_from_webhook(body)
        added = self.outbox.add(events)
        if events:
            metrics.SYNC_EVENTS.labels(str(body.get("action"))).inc(len(events))
            self.flusher.wake.set()
        return {"events": len(events), "new": added}

    def status(self) -> dict[str, object]:
        return {"engine": self.engine.describe(), **self.outbox.status()}

    def start(self) -> None:
        self.flusher.start()

    def stop(self) -> None:
        self.flusher.stop()
        self.engine.close()
