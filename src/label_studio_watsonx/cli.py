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
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"label-studio-watsonx: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secrets())

    if args.command == "serve":
        return serve(settings)
    return check_provider(settings, args.prompt)


def serve(settings: Settings) -> int:
    """Run the app with ``WORKERS`` processes on ``HOST:PORT``."""
    import uvicorn

    from .llm import create_provider

    try:
        create_provider(settings)  # fail here, once, rather than in every worker
    except (LabelStudioWatsonxError, NotImplementedError) as error:
        print(f"label-studio-watsonx: {error}", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
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


def check_provider(settings: Settings, prompt: str) -> int:
    """Load the provider and ask it ``prompt``; report what went wrong, if anything."""
    from .llm import create_provider

    try:
        provider = create_provider(settings)
        started = time.perf_counter()
        answer = provider.complete(prompt, settings.generation)
    except (LabelStudioWatsonxError, NotImplementedError) as error:
        print(f"FAIL {settings.llm_provider}: {error}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(f"OK provider={provider.name} model={provider.model_id} seconds={seconds:.2f}")
    print(f"tokens in={answer.input_tokens} out={answer.output_tokens}")
    print(answer.text)
    provider.close()
    return 0
