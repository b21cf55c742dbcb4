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
    outbox.add_argument("--seq", type=int, nargs="+", help="replay only these event numbers")
    backfill = commands.add_parser(
        "backfill", help="copy every existing annotation of a project into the table")
    backfill.add_argument("--project", type=int, required=True, help="Label Studio project id")
    pre = commands.add_parser("prelabel", help="pre-annotate a project's tasks through the API")
    pre.add_argument("--project", type=int, required=True, help="Label Studio project id")
    pre.add_argument("--prompt", help="prompt template, or a file holding one (default: the "
                     "project's remembered prompt, else DEFAULT_PROMPT)")  # fmt: skip
    pre.add_argument("--limit", type=int, help="predict at most this many tasks")
    pre.add_argument("--filter", type=_task_ids, help="only these task ids: 1,2,5-9")
    pre.add_argument("--concurrency", type=int, help="LLM calls at once (at most the provider's)")
    pre.add_argument("--dry-run", action="store_true", help="show prompts and counts; call nothing")
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
        if args.command == "prelabel":
            return prelabel_command(settings, args)
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
        print(f"{moved} dead event(s) back in the queue; a running service applies them, "
              "or run `label-studio-watsonx outbox flush`")  # fmt: skip
        return 0 if moved or not seqs else 1
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


def _task_ids(text: str) -> list[int]:
    ids: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            ids.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of task ids like 1,2,5-9") from None
    return ids


def prelabel_command(settings: Settings, args: argparse.Namespace) -> int:
    """Pre-annotate a project; print a summary. Exit 130 when interrupted."""
    from .cache import ResponseCache
    from .labelstudio import LabelStudio
    from .llm import create_provider
    from .predictions import Predictor
    from .prelabel import prelabel
    from .settings import _Reader
    from .state import ProjectPrompts

    if not (settings.label_studio_url and settings.label_studio_api_key):
        print("label-studio-watsonx: prelabel needs LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY",
              file=sys.stderr)  # fmt: skip
        return 2
    prompt = _Reader({"--prompt": args.prompt}).prompt("--prompt", "") if args.prompt else None
    provider = create_provider(settings)
    provider.start()
    cache = ResponseCache(settings.data_dir) if settings.llm_cache else None
    predictor = Predictor(settings, provider, ProjectPrompts(settings.data_dir), cache)
    client = LabelStudio(settings.label_studio_url, settings.label_studio_api_key, timeout=120)
    try:
        report = prelabel(client, predictor, args.project, prompt=prompt, limit=args.limit,
                          task_ids=args.filter, concurrency=args.concurrency,
                          dry_run=args.dry_run)  # fmt: skip
    finally:
        provider.close()
        client.close()
    if not args.dry_run:
        print(report.summary())
    return 130 if report.interrupted else 0


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
