"""Annotation sync: Label Studio webhooks in, one table row per annotation out.

``events`` checks webhook bodies and turns them into upserts and deletes; the
``outbox`` commits them before the webhook is acknowledged; the ``flusher`` (one at
a time across worker processes) applies them to an engine in ``engines/``, with
rows built by ``rows``.
"""
