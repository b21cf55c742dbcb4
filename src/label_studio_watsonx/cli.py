"""The ``label-studio-watsonx`` command: ``serve`` and ``check``."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time

from . import __version__
from .errors import LabelStudioWatsonxError, SettingsError
from .logs import configure_logging
from .settings import Settings

log = logging.getLogger("label_studio_watsonx")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="label-studio-watsonx",
        description="Label Studio ML backend answering with watsonx.ai or a local LLM.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the web service (settings from the environment)")
    check = commands.add_parser("check", help="check the settings and ask the LLM one question")
    check.add_argument("--prompt", default="Say hello in five words.", help="what to ask")
    outbox = commands.add_parser("outbox", help="list pending and dead sync events; replay dead ones")
    outbox.add_argument("action", nargs="?", choices=("list", "replay", "flush"), default="list",
                        help="list (default); replay dead events; flush pending events now")
    outbox.add_argument("--seq", type=int, nargs="*", help="replay only these event numbers")
    backfill = commands.add_parser(
        "backfill", help="copy every existing annotation of a project into the table")
    backfill.add_argument("--project", type=int, required=True, help="Label Studio project id")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"label-studio-watsonx: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secrets())

    try:
        if args.command == "serve":
            return serve(settings)
        if args.command == "outbox":
            return outbox_command(settings, args.action, args.seq)
        if args.command == "backfill":
            return backfill_command(settings, args.project)
        return check_provider(settings, args.prompt)
    except (LabelStudioWatsonxError, OSError) as error:
        print(f"label-studio-watsonx: {error}", file=sys.stderr)
        return 1


def serve(settings: Settings) -> int:
    """Run the app with ``WORKERS`` processes on ``HOST:PORT``."""
    import uvicorn

    from .llm import create_provider

    try:
        create_provider(settings)  # fail here, once, rather than in every worker
    except LabelStudioWatsonxError as error:
        print(f"label-studio-watsonx: {error}", file=sys.stderr)
        return 2
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"label-studio-watsonx: DATA_DIR={str(settings.data_dir)!r} cannot be used: "
              f"{error.strerror}", file=sys.stderr)  # fmt: skip
        return 2
    if settings.workers > 1:
        folder = settings.data_dir / "metrics"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())

    log.info(
        "serving on %s:%d with %d worker(s) x %d thread(s), provider %s",
        settings.host, settings.port, settings.workers, settings.threads, settings.llm_provider,
    )  # fmt: skip
    uvicorn.run(
        "label_studio_watsonx.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def outbox_command(settings: Settings, action: str, seqs: list[int] | None) -> int:
    """Show the outbox, replay dead events, or flush pending ones now."""
    from .sync.service import Sync

    sync = Sync(settings)
    if action == "replay":
        moved = sync.outbox.replay(seqs or None)
        print(f"{moved} dead event(s) back in the queue; the running service applies them")
        return 0
    if action == "flush":
        emptied = sync.flusher.drain(timeout=600)
        status = sync.outbox.status()
        print(f"pending {status['pending']}, dead {status['dead']}")
        return 0 if emptied else 1

    status = sync.status()
    print(f"engine   {status['engine']}")
    print(f"pending  {status['pending']}")
    print(f"dead     {status['dead']}")
    if status["last_error"]:
        print(f"last error {status['last_error']}")
    for event in sync.outbox.pending(20):
        error = f"  last error: {event.error}" if event.error else ""
        print(f"pending #{event.seq} {event.kind} annotation {event.annotation_id} "
              f"project {event.project_id} attempts {event.attempts}{error}")  # fmt: skip
    for event, reason in sync.outbox.dead():
        print(f"dead #{event.seq} {event.kind} annotation {event.annotation_id} "
              f"project {event.project_id}: {reason}")  # fmt: skip
    return 0


def backfill_command(settings: Settings, project_id: int) -> int:
    """Queue every annotation of a project and write them to the table."""
    from .labelstudio import LabelStudio
    from .sync.backfill import backfill
    from .sync.service import Sync

    if not (settings.label_studio_url and settings.label_studio_api_key):
        print("label-studio-watsonx: backfill needs LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY",
              file=sys.stderr)  # fmt: skip
        return 2
    client = LabelStudio(settings.label_studio_url, settings.label_studio_api_key, timeout=60)
    sync = Sync(settings)
    started = time.perf_counter()
    report = backfill(client, sync, project_id)
    emptied = sync.flusher.drain(timeout=3600)
    status = sync.outbox.status()
    print(
        f"project {project_id}: {report.tasks} tasks, {report.annotations} annotations, "
        f"{report.queued} new events; pending {status['pending']}, dead {status['dead']}; "
        f"{time.perf_counter() - started:.1f}s"
    )
    return 0 if emptied else 1


def check_provider(settings: Settings, prompt: str) -> int:
    """Load the provider and ask it ``prompt``; report what went wrong, if anything."""
    from .llm import create_provider

    try:
        provider = create_provider(settings)
        started = time.perf_counter()
        answer = provider.complete(prompt, settings.generation)
    except LabelStudioWatsonxError as error:
        print(f"FAIL {settings.llm_provider}: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(f"OK provider={provider.name} model={provider.model_id} seconds={seconds:.2f}")
    print(f"tokens in={answer.input_tokens} out={answer.output_tokens}")
    print(answer.text)
    provider.close()
    return 0
