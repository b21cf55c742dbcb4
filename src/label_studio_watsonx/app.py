"""The web app: Label Studio's ML-backend routes, auth, errors, logs and metrics.

``create_app()`` builds the app from settings (read from the environment when none
are given); ``serve`` runs it under uvicorn, as a factory, in every worker.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, ConfigDict, Field

from . import __version__, metrics
from .cache import ResponseCache
from .errors import ProviderNotReady, RequestError
from .llm import Provider, create_provider
from .logs import configure_logging
from .predictions import Predictor, project_id_of
from .settings import Settings
from .state import ProjectPrompts
from .sync.service import Sync

log = logging.getLogger("label_studio_watsonx.http")

OPEN_PATHS = frozenset({"/health"})
KNOWN_ROUTES = frozenset(
    {"/", "/health", "/setup", "/predict", "/webhook", "/data/upload", "/versions", "/metrics",
     "/openapi.json"}
)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Task(BaseModel):
    """A Label Studio task; only ``data`` is required, everything else is kept."""

    model_config = ConfigDict(extra="allow")
    id: int | str | None = None
    data: dict[str, Any]


class PredictParams(BaseModel):
    model_config = ConfigDict(extra="allow")
    context: dict[str, Any] | None = None


class PredictRequest(BaseModel):
    """``POST /predict``: tasks to predict, their project and its labeling config."""

    model_config = ConfigDict(extra="allow")
    tasks: list[Task]
    label_config: str = Field(min_length=1)
    project: str | int | None = None
    params: PredictParams | None = None


class SetupRequest(BaseModel):
    """``POST /setup``: the project key and labeling config (``schema``)."""

    model_config = ConfigDict(extra="allow")
    project: str | int | None = None
    label_config: str = Field(alias="schema", min_length=1)
    extra_params: dict[str, Any] | str | None = None


class WebhookEvent(BaseModel):
    """Any Label Studio webhook body: an ``action`` and whatever it carries."""

    model_config = ConfigDict(extra="allow")
    action: str = Field(min_length=1)


def create_app(
    settings: Settings | None = None, provider: Provider | None = None, sync: Sync | None = None
) -> FastAPI:
    """The service's ASGI app; pass ``settings`` or let it read the environment."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.secrets())
    provider = provider or create_provider(settings)
    cache = ResponseCache(settings.data_dir) if settings.llm_cache else None
    predictor = Predictor(settings, provider, ProjectPrompts(settings.data_dir), cache)
    sync = sync or Sync(settings)

    # Predictions run in their own THREADS-wide pool, so that however busy the model
    # is, /health, /setup (Label Studio waits 1 s and 3 s for them) and webhooks answer.
    predict_slots = anyio.CapacityLimiter(settings.threads)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        provider.start()
        sync.start()
        yield
        sync.stop()
        provider.close()

    app = FastAPI(
        title="label-studio-watsonx",
        version=__version__,
        description="Label Studio ML backend answering with watsonx.ai or a local LLM.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.predictor = predictor
    app.state.sync = sync
    _add_error_handlers(app)

    def status_body() -> dict[str, Any]:
        state = provider.status()
        try:
            sync_status: dict[str, Any] = sync.status()
        except Exception as error:  # health must answer even when the outbox cannot
            sync_status = {"error": f"outbox unreadable: {type(error).__name__}"}
        return {
            "status": "UP",
            "model_class": "label-studio-watsonx",
            "version": __version__,
            "provider": provider.name,
            "model": provider.model_id,
            "model_state": state.state,
            "model_detail": state.detail,
            "sync": sync_status,
        }

    @app.get("/health", summary="Liveness and provider state; never needs auth")
    @app.head("/health", include_in_schema=False)
    def health() -> dict[str, Any]:
        return status_body()

    @app.get("/", summary="Same as /health")
    @app.head("/", include_in_schema=False)
    def index() -> dict[str, Any]:
        return status_body()

    @app.post("/setup", summary="Check a project's labeling config; answer its model_version")
    def setup(body: SetupRequest, request: Request) -> dict[str, Any]:
        project_id = project_id_of(body.project)
        request.state.log_fields = {"project": project_id}
        predictor.plan(body.label_config)
        if "extra_params" in body.model_fields_set:
            predictor.set_project_params(project_id, _extra_params(body.extra_params))
        return {"model_version": predictor.model_version(project_id)}

    @app.post("/predict", summary="Predict every task; one result per task, in order")
    async def predict(body: PredictRequest, request: Request) -> Any:
        context = body.params.context if body.params else None
        tasks = [task.model_dump() for task in body.tasks]
        outcome = await anyio.to_thread.run_sync(
            predictor.predict, tasks, body.label_config, body.project, context,
            limiter=predict_slots,
        )  # fmt: skip
        predicted = sum(1 for task in outcome.tasks if task.prediction)
        request.state.log_fields = {
            "project": outcome.project_id,
            "tasks": ",".join(str(task.task_id) for task in outcome.tasks[:20]),
            "predicted": f"{predicted}/{len(outcome.tasks)}",
            "mode": outcome.mode,
        }
        if outcome.mode == "interactive" and not predicted and outcome.tasks:
            reason = outcome.tasks[0].reason or "no prediction"
            return JSONResponse({"error": reason, "results": outcome.results()}, 422)
        return {"results": outcome.results(), "model_version": outcome.model_version}

    def accept(event: WebhookEvent, request: Request, signed: bool = True) -> dict[str, Any]:
        body = event.model_dump()
        accepted = sync.accept(body) if signed else {"events": 0, "new": 0}
        project = body.get("project")
        request.state.log_fields = {
            "action": event.action,
            "project": project.get("id") if isinstance(project, dict) else None,
            "events": accepted["events"],
            "new": accepted["new"],
        }
        return {"status": "ok", "action": event.action, **accepted}

    @app.post("/webhook", summary="Events Label Studio sends to a connected model")
    def webhook(event: WebhookEvent, request: Request) -> dict[str, Any]:
        # With a webhook secret, only signed events reach the table: Label Studio's own
        # model webhook carries no secret, and /data/upload receives the same events.
        return accept(event, request, signed=webhook_signed(settings, request.headers))

    @app.post("/data/upload", summary="Label Studio annotation webhooks, mirrored to the table")
    def data_upload(event: WebhookEvent, request: Request) -> dict[str, Any]:
        return accept(event, request)

    @app.get("/versions", summary="Model versions this backend can serve")
    async def versions(request: Request) -> dict[str, Any]:
        # Label Studio sends this GET with a JSON body naming the project.
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        project = body.get("project") if isinstance(body, dict) else None
        project_id = project_id_of(project)
        version = await anyio.to_thread.run_sync(predictor.model_version, project_id)
        return {"versions": [version]}

    @app.get("/metrics", summary="Prometheus metrics")
    def metrics_page() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    app.add_middleware(ServiceMiddleware, settings=settings)
    return app


def webhook_signed(settings: Settings, headers: Any) -> bool:
    """True without a webhook secret, or when the request carries it (constant time)."""
    if not settings.webhook_secret:
        return True
    given = headers.get(settings.webhook_secret_header.lower(), "") or ""
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"),
                                  settings.webhook_secret.encode("utf-8"))  # fmt: skip


def _extra_params(value: dict[str, Any] | str | None) -> dict[str, Any]:
    """Label Studio's ``extra_params``: an object, JSON text of one, or nothing."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise RequestError("extra_params must be a JSON object") from None
    if not isinstance(value, dict):
        raise RequestError("extra_params must be a JSON object")
    return value


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        for problem in problems:
            if problem.get("type") == "json_invalid":
                detail = problem.get("ctx", {}).get("error", "cannot be parsed")
                return JSONResponse({"error": f"the request body is not valid JSON: {detail}"}, 400)
        details = [
            {
                "field": ".".join(str(part) for part in problem.get("loc", ()) if part != "body")
                or "body",
                "problem": problem.get("msg", "invalid"),
            }
            for problem in problems[:20]
        ]
        summary = "; ".join(f"{item['field']}: {item['problem']}" for item in details[:5])
        return JSONResponse({"error": f"invalid request: {summary}", "details": details}, 422)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, error.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = error.detail if isinstance(error.detail, str) else "request refused"
        if error.status_code == 400:
            detail = f"the request body cannot be read: {detail}"
        return JSONResponse({"error": detail}, error.status_code, headers=error.headers)

    @app.exception_handler(ProviderNotReady)
    async def not_ready(request: Request, error: ProviderNotReady) -> JSONResponse:
        return JSONResponse({"error": str(error)}, 503)


class ServiceMiddleware:
    """Wraps the app: Basic auth, the body size cap, one log line and metrics per request."""

    def __init__(self, app: Callable, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._expected: tuple[bytes, bytes] | None = None
        if settings.auth_enabled:
            self._expected = (
                (settings.basic_auth_user or "").encode("utf-8"),
                (settings.basic_auth_pass or "").encode("utf-8"),
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        path = scope.get("path", "")
        status = {"code": 500}

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            if path not in OPEN_PATHS and not (self._authorized(scope) and self._signed(scope)):
                await _send_json(send_and_record, 401, {"error": "authentication required"},
                                 [(b"www-authenticate", b'Basic realm="label-studio-watsonx"')])  # fmt: skip
                return
            if scope.get("method") == "POST" and not _content_type(scope):
                # Treat a body sent without a content type as the JSON it must be.
                headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"content-type"]
                scope["headers"] = [*headers, (b"content-type", b"application/json")]
            if scope.get("method") == "POST" and not _is_json(scope):
                await _send_json(send_and_record, 415,
                                 {"error": "the request body must be JSON "
                                           "(Content-Type: application/json)"})  # fmt: skip
                return
            body = await self._read_body(scope, receive)
            if body is None:
                limit = self.settings.max_body_bytes
                await _send_json(send_and_record, 413,
                                 {"error": f"the request body is larger than {limit} bytes"
                                           " (MAX_BODY_BYTES)"})  # fmt: skip
                return
            await self.app(scope, _replay(_without_lone_surrogates(body), receive), send_and_record)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), path)
            if status["code"] == 500:
                await _send_json(send_and_record, 500, {"error": "internal error; see the service log"})
        finally:
            self._record(scope, status["code"], time.perf_counter() - started)

    def _authorized(self, scope: Scope) -> bool:
        if self._expected is None:
            return True
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, _, password = decoded.partition(b":")
        user_ok = secrets.compare_digest(user, self._expected[0])
        password_ok = secrets.compare_digest(password, self._expected[1])
        return user_ok and password_ok

    def _signed(self, scope: Scope) -> bool:
        """The webhook secret header, where one is configured, on ``/data/upload``."""
        if scope.get("path") != "/data/upload":
            return True
        headers = {key.decode("latin-1"): value.decode("latin-1")
                   for key, value in scope.get("headers") or ()}  # fmt: skip
        return webhook_signed(self.settings, headers)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None when it passes the size cap."""
        limit = self.settings.max_body_bytes
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        path = scope.get("path", "")
        route = path if path in KNOWN_ROUTES else "other"
        method = scope.get("method", "")
        metrics.REQUESTS.labels(method, route, str(status)).inc()
        metrics.LATENCY.labels(route).observe(seconds)
        fields = scope.get("state", {}).get("log_fields") or {}
        extra = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
        level = logging.DEBUG if route in ("/health", "/metrics") and status < 400 else logging.INFO
        log.log(level, "%s %s %d %.1fms %s", method, route, status, seconds * 1000, extra)


def _content_type(scope: Scope) -> bytes | None:
    return dict(scope.get("headers") or ()).get(b"content-type")


def _is_json(scope: Scope) -> bool:
    """True when the declared content type is JSON."""
    declared = _content_type(scope) or b""
    media = declared.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")


def _without_lone_surrogates(body: bytes) -> bytes:
    """JSON may spell half a UTF-16 pair (``\\ud800``); no text can hold one, so each
    becomes U+FFFD here rather than an error deep in a handler, database or model."""
    if not _SURROGATE_ESCAPE.search(body):
        return body
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return body  # the route answers 400 for it
    return json.dumps(_replace_surrogates(value), ensure_ascii=False).encode("utf-8", "replace")


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_replace_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_replace_surrogates(key): _replace_surrogates(item) for key, item in value.items()}
    return value


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(
    send: Send, status: int, payload: dict, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(payload).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
