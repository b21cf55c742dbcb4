"""Where pending events reach the engine: in order, in batches, one flusher at a time.

Every worker process runs a ``Flusher`` thread, but only the one holding an
exclusive lock on ``DATA_DIR/flusher.lock`` works; the others wait for the lock,
which the operating system releases if its holder dies. While the engine is down
the flusher backs off (exponentially, with jitter, up to ``SYNC_MAX_BACKOFF``) and
keeps every event. A batch the engine refuses is retried event by event, so one bad
event goes to the dead-letter list after ``SYNC_MAX_ATTEMPTS`` and the rest apply.
"""

from __future__ import annotations

import fcntl
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from pathlib import Path

from ..errors import LabelStudioWatsonxError
from .engines import Engine, EngineError, TransientEngineError
from .outbox import Outbox, StoredEvent
from .rows import annotation_row, columns_for, parse_time

log = logging.getLogger(__name__)

EmailLookup = Callable[[set[int]], dict[int, str | None]]


class Flusher:
    """Applies the outbox's pending events to one engine."""

    def __init__(
        self,
        outbox: Outbox,
        engine: Engine,
        lock_path: Path,
        batch_size: int = 500,
        max_attempts: int = 5,
        max_backoff: float = 60.0,
        emails: EmailLookup | None = None,
    ) -> None:
        self.outbox = outbox
        self.engine = engine
        self.lock_path = lock_path
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.emails = emails or (lambda ids: {})
        self.wake = threading.Event()
        self.refused: str | None = None  # why the engine refused an event in the last flush
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one batch -----------------------------------------------------------------

    def flush_once(self) -> int:
        """Apply up to one batch; returns how many events left the outbox.

        Raises ``TransientEngineError`` when the engine cannot be reached.
        """
        self.refused = None
        batch = self.outbox.pending(self.batch_size)
        if not batch:
            return 0
        try:
            self._apply(batch)
        except TransientEngineError:
            raise
        except EngineError as error:
            if len(batch) == 1:
                self._count_failure(batch[0], str(error))
                return 0
            log.warning("engine refused a batch of %d; retrying one by one: %s", len(batch), error)
            return self._apply_one_by_one(batch)
        self.outbox.done(batch)
        return len(batch)

    def _apply_one_by_one(self, batch: Sequence[StoredEvent]) -> int:
        applied = 0
        for event in batch:
            try:
                self._apply([event])
            except TransientEngineError:
                raise
            except EngineError as error:
                self._count_failure(event, str(error))
                continue
            self.outbox.done([event])
            applied += 1
        return applied

    def _count_failure(self, event: StoredEvent, error: str) -> None:
        self.refused = f"annotation {event.annotation_id}: {error}"
        attempts = self.outbox.failed(event, error)
        log.warning("event %d (annotation %d) failed attempt %d: %s",
                    event.seq, event.annotation_id, attempts, error)  # fmt: skip
        if attempts >= self.max_attempts:
            self.outbox.bury(event, f"engine refused it {attempts} times: {error}")

    def _apply(self, batch: Sequence[StoredEvent]) -> None:
        upserts = [event for event in batch if event.kind == "upsert"]
        tombstoned = self.outbox.tombstoned(event.annotation_id for event in upserts)
        user_ids = {
            user
            for event in upserts
            for user in (event.payload["annotation"].get("completed_by"),
                         event.payload["annotation"].get("updated_by"))  # fmt: skip
            if isinstance(user, int) and not isinstance(user, bool)
        }
        emails = self.emails(user_ids) if user_ids else {}

        rows: dict[int, dict] = {}
        deletes: list[int] = []
        columns: dict[str, object] = {}
        for event in batch:
            if event.kind == "delete":
                rows.pop(event.annotation_id, None)
                deletes.append(event.annotation_id)
                tombstoned[event.annotation_id] = event.received_at
                continue
            if _deleted_before(event, tombstoned.get(event.annotation_id)):
                log.info("dropped a late copy of deleted annotation %d", event.annotation_id)
                continue
            try:
                row, needed = self._row(event, emails)
            except (LabelStudioWatsonxError, KeyError, TypeError, ValueError) as error:
                self.outbox.failed(event, str(error))
                self.outbox.bury(event, f"cannot be turned into a row: {error}")
                continue
            older = rows.get(event.annotation_id)
            if older is None or _newer_or_same(row, older):
                rows[event.annotation_id] = row
            for column in needed:
                columns.setdefault(column.name, column)

        if columns:
            self.engine.ensure_columns(list(columns.values()))  # type: ignore[arg-type]
        if rows or deletes:
            self.engine.apply(list(rows.values()), deletes)

    @staticmethod
    def _row(event: StoredEvent, emails: dict[int, str | None]) -> tuple[dict, list]:
        payload = event.payload
        task = {"id": payload.get("task_id"), "data": payload.get("task_data") or {}}
        config = payload["label_config"]
        row = annotation_row(payload["annotation"], task, event.project_id, config, emails)
        return row, columns_for(config, task["data"])

    # -- the background loop -------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="sync-flusher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self) -> None:
        """Hold the lock, then flush until stopped, backing off while the engine fails."""
        with open(self.lock_path, "a") as lock_file:
            while not self._stop.is_set():
                try:
                    fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    self._stop.wait(1.0)
            else:
                return
            try:
                self._loop()
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                applied = self.flush_once()
                if self.refused and not applied:
                    # The engine refused what is at the head of the queue: wait before the
                    # next attempt, as when it is down, so attempts are spread out.
                    raise EngineError(self.refused)
            except Exception as error:  # the engine down, or anything else: keep the events
                failures += 1
                delay = min(self.max_backoff, 0.5 * 2 ** min(failures - 1, 16))
                delay *= random.uniform(0.5, 1.0)
                message = f"{type(error).__name__}: {error}"
                if failures == 1 or failures % 10 == 0:
                    log.warning("sync to %s failing (attempt %d, next in %.1fs): %s",
                                self.engine.describe(), failures, delay, message)  # fmt: skip
                self.outbox.record_flush(message)
                self._stop.wait(delay)
                continue
            if failures or applied:
                self.outbox.record_flush(None)
            if failures:
                log.info("sync to %s recovered after %d failed attempts",
                         self.engine.describe(), failures)  # fmt: skip
            failures = 0
            if applied == 0:
                self.wake.wait(0.25)
                self.wake.clear()

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is pending; True when the outbox emptied within ``timeout``.

        When another flusher (this process's thread, or another process) holds the
        lock, it does the work and this waits; otherwise this flushes itself, holding
        the lock, so two flushers never run at once.
        """
        deadline = time.monotonic() + timeout
        with open(self.lock_path, "a") as lock_file:
            while time.monotonic() < deadline:
                if not self.outbox.pending(1):
                    return True
                try:
                    fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self.wake.set()
                    time.sleep(0.05)
                    continue
                try:
                    while time.monotonic() < deadline and self.flush_once():
                        pass
                finally:
                    fcntl.flock(lock_file, fcntl.LOCK_UN)
                if self.outbox.pending(1):
                    time.sleep(0.05)
        return not self.outbox.pending(1)


def _deleted_before(event: StoredEvent, deleted_at: float | None) -> bool:
    """True for a copy of an annotation made before its id was deleted.

    Label Studio on SQLite can give a new annotation the id of a deleted one; that
    one was created after the delete arrived and must land.
    """
    if deleted_at is None:
        return False
    created = parse_time(event.payload["annotation"].get("created_at"))
    if created is None:
        return True
    return created.replace(tzinfo=UTC).timestamp() <= deleted_at


def _newer_or_same(row: dict, older: dict) -> bool:
    new, old = row.get("updated_at"), older.get("updated_at")
    return new is None or old is None or new >= old
