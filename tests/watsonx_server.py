"""A loopback server speaking enough of IBM watsonx.ai's REST protocol for the real SDK.

No IBM Cloud account can be reached from the test machines, so the real, unmodified
``ibm-watsonx-ai`` SDK (1.8.1) is run against this: HTTPS on 127.0.0.1 with a
certificate from ``trustme``, IAM token exchange, the project/space lookup, the
foundation-model catalogue and text generation / chat, with deterministic answers,
a per-request latency, a requests-per-second limit and injectable faults. It records
every request so a test can check what was sent and that nothing but 127.0.0.1 was
contacted.

Point all three URLs at the server, and give the CA file to ``Credentials``::

    creds = Credentials(url=server.url, api_key="good-key", platform_url=server.url,
                        auth_url=server.url + "/identity/token", verify=ca_path)
    model = ModelInference(model_id="ibm/granite-3-8b-instruct", credentials=creds,
                           project_id="proj-1", max_retries=3, delay_time=0.05)

What the SDK does (read from the 1.8.1 source and checked against this server)
--------------------------------------------------------------------------------
* ``Credentials(...)`` does no I/O. ``url`` must start with ``https://`` (else
  ``WMLClientError``). Because ``platform_url`` is given, the client takes the
  IBM Cloud code path (``CLOUD_PLATFORM_SPACES``) and does *not* call the CPD
  ``GET /ml/wml_services/v2/version`` probe, which it only makes for URLs that are
  neither a known cloud region nor given a ``platform_url``. Without ``platform_url``
  a loopback URL is taken for Cloud Pak for Data (that probe, then ``WMLClientError``
  "Missing version in credentials for Cloud Pak for Data"). Without ``auth_url`` the
  token would be fetched from ``https://iam.test.cloud.ibm.com/identity/token``
  (``iam.cloud.ibm.com`` for the production region URLs): that is the only way the
  SDK reaches for another host during these calls.
* Construction of ``ModelInference(model_id=..., credentials=..., project_id=...)``
  makes, in order:

  1. ``POST {auth_url}`` (form ``apikey=<key>&grant_type=urn:ibm:params:oauth:grant-type:apikey``,
     ``Authorization: Basic Yng6Yng=``). The SDK reads only ``access_token``, and
     takes the expiry from the token's JWT ``exp`` claim (``expires_in``/
     ``expiration`` are ignored), so the token must be a JWT; it refreshes it 15 min
     before ``exp`` (1 min when the token lives under 3 min). A 4xx answer raises
     ``InvalidCredentialsError`` ("Attempt of authenticating connection to service
     failed, please validate your credentials. Error: <body>"); 5xx raises
     ``AuthenticationError``. IBM IAM answers an unknown key with 400
     ``BXNIM0415E``; that is what this server does (a 401 would first be retried 3
     times by the transport, see below).
  2. ``GET {platform_url}/v2/projects/{project_id}`` (``/v2/spaces/{id}`` for
     ``space_id``) with the Bearer token; needs ``entity.storage.type``. A non-200
     answer raises ``CannotSetProjectOrSpace``, a 429 ``ExceededLimitOfAPICalls``.
  3. ``GET {url}/ml/v1/foundation_model_specs?version=...&filters=!lifecycle_withdrawn&limit=200``
     and, only when the model is not in that answer, the same with
     ``tech_preview=true``. If the model is in neither, ``WMLClientError``
     ``"Model '<id>' is not supported for this environment. Supported models: [...]"``.
     A model whose ``lifecycle`` has a current ``deprecated``/``constricted`` entry
     gives a ``LifecycleWarning``. ``validate=False`` skips step 3.

* ``generate(prompt="...")`` → one ``POST {url}/ml/v1/text/generation?version=...``
  with ``{"model_id", "input", "parameters": {...}, "project_id"}``; returns the
  whole JSON (``results[0].generated_text`` etc.). ``generate(prompt=[...])`` sends
  one request per prompt from a ``ThreadPoolExecutor`` of ``min(len, concurrency_limit)``
  workers (default 8), each first taking a token from the SDK's own token bucket
  (8/s, capacity 8; only on the IBM Cloud path, and only for a list of prompts).
  That bucket does not keep the SDK under 8 requests/s: after every answer it is
  reset to ``x-requests-limit-remaining``, or to full when the header is absent, so
  without the header only ``concurrency_limit`` bounds the rate (measured: 24
  prompts, 0.2 s latency → 24 requests within 0.75 s); with it (this server at
  ``rate_limit=8``, 20 prompts, 0.2 s latency; two runs) 15-16 requests arrived
  within one second and 7-14 of 30-34 requests were 429s, retried until all passed.
  Single-prompt ``generate`` and ``chat`` are never throttled.
  ``generate_text`` returns ``results[0].generated_text`` only.
* ``chat(messages=...)`` → ``POST {url}/ml/v1/text/chat?version=...`` with
  ``{"model_id", "messages", "project_id", <params at top level>}`` (``max_tokens``,
  ``temperature``, ``stop``, ...); returns the whole JSON
  (``choices[0].message.content``, ``usage``).
* Non-200 answers from generation/chat raise ``ApiRequestFailure`` (a
  ``WMLClientError``) with the status and body in the message.

Retries: two independent layers
-------------------------------
1. Transport (``_wrappers/httpx/retry_transport``), on *every* SDK request (IAM,
   projects, specs, inference): 3 retries on status 401, 500, 502, 503, 504, 520,
   521, 524, sleeping ``min(0.3 * 2**attempt, 3)`` = 0.3, 0.6, 1.2 s; also retries
   a ``RemoteProtocolError`` (stale keep-alive). Module constants
   (``TRANSPORT_RETRIES``, ``TRANSPORT_BACKOFF_FACTOR``, ``TRANSPORT_STATUS_FORCELIST``
   in ``retry_transport/factories.py``), read when the client is built; there is no
   argument or environment variable for them. A single 503 is therefore invisible
   to the caller, and a persistent 503 costs 4 requests and 2.1 s per SDK-level
   attempt. 429 is *not* retried here.
2. ``RateLimitedRetryDecorator`` around generation/chat (and embeddings): retries on
   ``retry_status_codes`` (default 429, 503, 504, 520) up to ``max_retries``
   (default 10) times, sleeping ``min(delay_time * 2**attempt, 8) * (1 + 0.25*random())``
   (``delay_time`` default 0.5 s) and then taking a token from its bucket. If the
   failed answer carries ``x-requests-limit-remaining: 0`` it skips that sleep,
   empties the bucket and waits for the next token (~1/8 s) instead. Knobs, by
   priority: the ``ModelInference(max_retries=, delay_time=, retry_status_codes=)``
   arguments, then the environment variables ``WATSONX_MAX_RETRIES``,
   ``WATSONX_DELAY_TIME``, ``WATSONX_RETRY_STATUS_CODES`` (e.g. ``"[429,503]"``).
   After the last attempt the failing response is returned and turned into
   ``ApiRequestFailure``.

The SDK never reads ``Retry-After`` or ``x-ratelimit-*``. The only rate headers it
reads are ``x-requests-limit-remaining`` (generation/chat; for multi-prompt
``generate`` it also, oddly, sets the bucket *capacity* to that remaining count) and
``x-requests-limit-rate`` (embeddings only). This server sends both families.

Other findings
--------------
* ``ModelInference(verify=...)`` is accepted but, when ``credentials`` is a
  ``Credentials`` object, is only handed to ``APIClient(verify=...)``, which emits a
  ``DeprecationWarning`` and ignores it. Only ``Credentials(verify=...)`` counts.
  The SDK passes the CA path to httpx as a string, which httpx 0.28 answers with a
  ``DeprecationWarning`` ("``verify=<str>`` is deprecated") per client built.
* Building an ``APIClient`` writes ``Credentials.verify`` into the process
  environment as ``WX_CLIENT_VERIFY_REQUESTS`` (and keeps it): later clients built
  without ``verify`` inherit this CA path. Tests should restore the variable
  (``monkeypatch.delenv("WX_CLIENT_VERIFY_REQUESTS", raising=False)`` before).
* With no ``verify`` anywhere (credentials, that variable), an SSL error makes the
  SDK set ``GlobalHttpxSettings.verify = False`` process-wide and retry unverified.
  With a CA path given, a bad certificate raises ``OSError("Connection cannot be
  verified with default trusted CAs ...")`` instead.
* HTTP(S)_PROXY environment variables are honoured (``NO_PROXY`` too); with a proxy
  set, traffic would go to the proxy host. ``loopback_only()`` below catches that.

Server behaviour
----------------
* Answers: ``answer_fn(text)`` (default ``"answer to: <last non-blank line>"``) cut
  at the first stop sequence (``parameters.stop_sequences`` / chat ``stop``) and to
  ``max_new_tokens`` (default 20, as watsonx) / chat ``max_tokens`` or
  ``max_completion_tokens`` (default 1024) words. Token counts are word counts
  (``len(text.split())``). ``stop_reason``: ``eos_token``, ``max_tokens`` or
  ``stop_sequence``; chat ``finish_reason``: ``stop`` or ``length``.
* ``latency`` seconds of sleep per accepted generation/chat request, in the
  request's own thread (``ThreadingHTTPServer``; TLS handshakes also happen in the
  connection threads, so one slow client does not block the others).
* ``rate_limit`` accepted generation/chat requests in any sliding 1-second window;
  the rest get 429 with ``retry-after``, ``x-ratelimit-limit``/``-remaining``/
  ``-reset``, ``x-requests-limit-rate``/``-remaining``. Rejected requests do not
  use up the limit. ``None`` disables it.
* Faults on generation/chat only: ``fail_next(n, status)`` (checked before the rate
  limit) and ``always_fail(status)`` / ``always_fail(None)``.
* Unknown API key: IAM 400 ``BXNIM0415E``. Unknown or withdrawn model: absent from
  the catalogue (withdrawn ones are listed only when the query does not filter
  ``!lifecycle_withdrawn``), and 404 ``model_not_supported`` at inference.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import json
import socket
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_MODELS = ("ibm/granite-3-8b-instruct",)
WITHDRAWN_MODELS = ("ibm/granite-13b-chat-v2",)
GENERATION_PATH = "/ml/v1/text/generation"
CHAT_PATH = "/ml/v1/text/chat"
INFERENCE_PATHS = (GENERATION_PATH, CHAT_PATH)
DEFAULT_MAX_NEW_TOKENS = 20  # watsonx's default for text generation
DEFAULT_CHAT_MAX_TOKENS = 1024
LOOPBACK = ("127.0.0.1", "::1", "localhost")
TASKS = ("question_answering", "summarization", "classification", "generation", "extraction")


def default_answer(text: str) -> str:
    """``"answer to: <last non-blank line of text>"``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"answer to: {lines[-1] if lines else ''}"


def word_count(text: str) -> int:
    return len(text.split())


def make_ca(directory: str | Path):
    """A ``trustme.CA`` and the path of its PEM file written in ``directory``."""
    import trustme

    authority = trustme.CA()
    path = Path(directory) / "watsonx-ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, str(path)


@dataclass
class RecordedRequest:
    """One HTTP request as the server saw it."""

    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    client: tuple[str, int]
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, a dict for forms, else the raw text
    time: float  # time.monotonic() at arrival
    status: int | None = None  # set once answered

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class _Model:
    model_id: str
    state: str = "available"  # available | deprecated | withdrawn | tech_preview
    functions: tuple[str, ...] = ("text_generation", "text_chat", "autoai_rag")
    spec: dict = field(default_factory=dict)


def _b64url(data: dict) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _error(status: int, code: str, message: str) -> dict:
    return {
        "errors": [{"code": code, "message": message,
                    "more_info": "https://cloud.ibm.com/apidocs/watsonx-ai"}],
        "trace": uuid.uuid4().hex,
        "status_code": status,
    }  # fmt: skip


class WatsonxTestServer:
    """watsonx.ai's IAM, projects, model catalogue, generation and chat on 127.0.0.1 over TLS.

    :param cert: a ``trustme`` leaf certificate for 127.0.0.1 (``ca.issue_cert("127.0.0.1")``)
    :param api_key: the only API key IAM accepts
    :param models: model ids listed as available (generation and chat)
    :param withdrawn: model ids listed with a current ``withdrawn`` lifecycle state
    :param deprecated: model ids listed as deprecated (the SDK warns, then works)
    :param tech_preview: model ids listed only when the query has ``tech_preview=true``
    :param projects: project ids that exist (``None``: any); ``spaces`` likewise
    :param latency: seconds each accepted generation/chat request takes
    :param rate_limit: accepted generation/chat requests per sliding second (``None``: no limit)
    :param answer_fn: text → answer before truncation (default :func:`default_answer`)
    :param token_ttl: seconds the IAM tokens live
    :param bad_key_status: IAM status for an unknown key (IBM IAM: 400)
    """

    def __init__(
        self,
        cert,
        api_key: str = "good-key",
        models: Iterable[str] = DEFAULT_MODELS,
        *,
        withdrawn: Iterable[str] = WITHDRAWN_MODELS,
        deprecated: Iterable[str] = (),
        tech_preview: Iterable[str] = (),
        projects: Iterable[str] | None = None,
        spaces: Iterable[str] | None = None,
        latency: float = 0.0,
        rate_limit: int | None = None,
        answer_fn: Callable[[str], str] = default_answer,
        token_ttl: int = 3600,
        bad_key_status: int = 400,
        port: int = 0,
    ) -> None:
        self.cert = cert
        self.api_key = api_key
        self.latency = latency
        self.rate_limit = rate_limit
        self.answer_fn = answer_fn
        self.token_ttl = token_ttl
        self.bad_key_status = bad_key_status
        self.projects = None if projects is None else set(projects)
        self.spaces = None if spaces is None else set(spaces)
        self.port = port
        self.models: dict[str, _Model] = {}
        # Later lists win, so a model passed in ``models`` is available even if it is
        # in the default ``withdrawn`` list.
        for ids, state in ((withdrawn, "withdrawn"), (tech_preview, "tech_preview"),
                           (deprecated, "deprecated"), (models, "available")):  # fmt: skip
            for model_id in ids:
                self.add_model(model_id, state)

        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.tokens: set[str] = set()
        self._fail: deque[int] = deque()
        self._always: int | None = None
        self._accepted: deque[float] = deque()  # monotonic times of accepted inference requests
        self.in_flight = 0
        self.max_in_flight = 0
        self._server: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self.connections: set = set()

    # -- control -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return self.url + "/identity/token"

    def credentials_kwargs(self, ca_path: str, api_key: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``ibm_watsonx_ai.Credentials`` pointing every URL here."""
        return {
            "url": self.url,
            "platform_url": self.url,
            "auth_url": self.auth_url,
            "api_key": self.api_key if api_key is None else api_key,
            "verify": ca_path,
        }

    def start(self) -> WatsonxTestServer:
        server = self

        class Handler(_Handler):
            engine = server

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.cert.configure_cert(context)
        httpd = _TLSServer(("127.0.0.1", self.port), Handler, context)
        self.port = httpd.server_address[1]
        self._server = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="watsonx-test-server", daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self.lock:
            connections = list(self.connections)
            self.connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                connection.close()

    def __enter__(self) -> WatsonxTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_model(self, model_id: str, state: str = "available",
                  functions: Iterable[str] = _Model.functions) -> None:  # fmt: skip
        """List a model; ``state``: available, deprecated, withdrawn or tech_preview."""
        model = _Model(model_id, state, tuple(functions))
        model.spec = _model_spec(model)
        self.models[model_id] = model

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` generation/chat requests with ``status``."""
        with self.lock:
            self._fail.extend([status] * count)

    def always_fail(self, status: int | None = 503) -> None:
        """Answer every generation/chat request with ``status`` until ``always_fail(None)``."""
        with self.lock:
            self._always = status

    def reset_records(self) -> None:
        with self.lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight

    # -- records -------------------------------------------------------------------

    def _snapshot(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self.requests)

    @property
    def calls(self) -> list[tuple[str, str]]:
        """``(method, path)`` of every request, in arrival order."""
        return [(r.method, r.path) for r in self._snapshot()]

    @property
    def clients(self) -> set[str]:
        """Every client address that sent a request."""
        return {r.client[0] for r in self._snapshot()}

    @property
    def authorizations(self) -> list[str | None]:
        return [r.authorization for r in self._snapshot()]

    @property
    def inference_requests(self) -> list[RecordedRequest]:
        return [r for r in self._snapshot() if r.method == "POST" and r.path in INFERENCE_PATHS]

    @property
    def generation_bodies(self) -> list[dict]:
        return [r.body for r in self.inference_requests if r.path == GENERATION_PATH]

    @property
    def chat_bodies(self) -> list[dict]:
        return [r.body for r in self.inference_requests if r.path == CHAT_PATH]

    @property
    def inference_times(self) -> list[float]:
        """Arrival times (``time.monotonic()``) of all generation/chat requests, any status."""
        return [r.time for r in self.inference_requests]

    def statuses(self, path: str | None = None) -> list[int | None]:
        return [r.status for r in self._snapshot() if path is None or r.path == path]

    def max_requests_in_window(
        self, window: float = 1.0, *, statuses: Iterable[int] | None = None
    ) -> int:
        """Most generation/chat requests that arrived within any ``window`` seconds
        (half-open ``[t, t + window)``); only those answered with ``statuses`` if given."""
        wanted = None if statuses is None else set(statuses)
        times = [r.time for r in self.inference_requests if wanted is None or r.status in wanted]
        return max_in_window(times, window)

    # -- behaviour -----------------------------------------------------------------

    def _issue_token(self) -> dict:
        now = int(time.time())
        expiry = now + self.token_ttl
        header = {"kid": "watsonx-test", "alg": "RS256", "typ": "JWT"}
        payload = {
            "iam_id": "iam-ServiceId-watsonx-test", "id": "iam-ServiceId-watsonx-test",
            "realmid": "iam", "jti": uuid.uuid4().hex, "identifier": "ServiceId-watsonx-test",
            "sub": "ServiceId-watsonx-test", "sub_type": "ServiceId",
            "account": {"valid": True, "bss": "watsonx-test-account"},
            "iat": now, "exp": expiry, "iss": self.url + "/identity",
            "grant_type": "urn:ibm:params:oauth:grant-type:apikey",
            "scope": "ibm openid", "client_id": "bx", "acr": 1, "amr": ["pwd"],
        }  # fmt: skip
        signature = base64.urlsafe_b64encode(b"not-signed").decode().rstrip("=")
        token = f"{_b64url(header)}.{_b64url(payload)}.{signature}"
        with self.lock:
            self.tokens.add(token)
        return {"access_token": token, "refresh_token": "not_supported", "ims_user_id": 0,
                "token_type": "Bearer", "expires_in": self.token_ttl, "expiration": expiry,
                "scope": "ibm openid"}  # fmt: skip

    def _admit(self) -> tuple[int | None, dict[str, str]]:
        """Fault/rate-limit decision for an inference request: (error status or None, headers)."""
        now = time.monotonic()
        with self.lock:
            window = self._accepted
            while window and window[0] <= now - 1.0:
                window.popleft()
            limit = self.rate_limit
            if self._fail:
                status = self._fail.popleft()
            elif self._always is not None:
                status = self._always
            elif limit is not None and len(window) >= limit:
                status = 429
            else:
                status = None
                window.append(now)
            headers: dict[str, str] = {}
            if limit is not None:
                remaining = 0 if status == 429 else max(0, limit - len(window))
                reset = (window[0] + 1.0 - now) if window else 0.0
                headers = {
                    "x-requests-limit-rate": str(limit),
                    "x-requests-limit-remaining": str(remaining),
                    "x-ratelimit-limit": str(limit),
                    "x-ratelimit-remaining": str(remaining),
                    "x-ratelimit-reset": f"{max(reset, 0.0):.3f}",
                }
            if status == 429:
                headers["retry-after"] = "1"
            if status is None:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return status, headers

    def _done(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def _find_model(self, model_id: Any) -> _Model | None:
        model = self.models.get(model_id) if isinstance(model_id, str) else None
        return None if model is None or model.state == "withdrawn" else model

    def generate(self, body: dict) -> dict:
        parameters = body.get("parameters") or {}
        prompt = body["input"]
        text = self.answer_fn(prompt)
        stop = parameters.get("stop_sequences") or []
        text, stopped = _cut_at_stop(text, stop, keep=parameters.get("include_stop_sequence", True))
        limit = parameters.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        text, truncated = _truncate_words(text, limit)
        reason = "max_tokens" if truncated else "stop_sequence" if stopped else "eos_token"
        result = {"generated_text": text, "generated_token_count": word_count(text),
                  "input_token_count": word_count(prompt), "stop_reason": reason}  # fmt: skip
        options = parameters.get("return_options") or {}
        if options.get("input_text"):
            result["input_text"] = prompt
        return {"model_id": body["model_id"], "model_version": "1.1.0",
                "created_at": _now_iso(), "results": [result]}  # fmt: skip

    def chat(self, body: dict) -> dict:
        messages = body["messages"]
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        last = _content_text(users[-1].get("content")) if users else ""
        text = self.answer_fn(last)
        text, stopped = _cut_at_stop(text, body.get("stop") or [], keep=False)
        limit = (body.get("max_completion_tokens") or body.get("max_tokens")
                 or DEFAULT_CHAT_MAX_TOKENS)  # fmt: skip
        text, truncated = _truncate_words(text, limit)
        prompt_tokens = sum(word_count(_content_text(m.get("content")))
                            for m in messages if isinstance(m, dict))  # fmt: skip
        completion = word_count(text)
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "model_id": body["model_id"],
            "model": body["model_id"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "length" if truncated else "stop"}],
            "created": int(time.time()),
            "model_version": "1.1.0",
            "created_at": _now_iso(),
            "usage": {"completion_tokens": completion, "prompt_tokens": prompt_tokens,
                      "total_tokens": completion + prompt_tokens},
        }  # fmt: skip

    def specs(self, query: dict[str, list[str]]) -> dict:
        tech = (query.get("tech_preview") or ["false"])[0].lower() == "true"
        predicate = _parse_filters((query.get("filters") or [""])[0])
        try:
            limit = min(max(int((query.get("limit") or ["100"])[0]), 1), 200)
        except ValueError:
            limit = 100
        resources = [m.spec for m in self.models.values()
                     if (tech or m.state != "tech_preview") and predicate(m.spec)]  # fmt: skip
        page = resources[:limit]
        return {"total_count": len(resources), "limit": limit,
                "first": {"href": f"{self.url}/ml/v1/foundation_model_specs?limit={limit}"},
                "resources": page}  # fmt: skip


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """Most of ``times`` falling in any half-open interval ``[t, t + window)``."""
    ordered = sorted(times)
    best = 0
    for i, start in enumerate(ordered):
        best = max(best, bisect.bisect_left(ordered, start + window, lo=i) - i)
    return best


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content
                         if isinstance(part, dict) and part.get("type") == "text")  # fmt: skip
    return ""


def _cut_at_stop(text: str, stops: list, keep: bool) -> tuple[str, bool]:
    hits = [(text.find(s), s) for s in stops if isinstance(s, str) and s and s in text]
    if not hits:
        return text, False
    position, stop = min(hits)
    return text[: position + (len(stop) if keep else 0)], True


def _truncate_words(text: str, limit: Any) -> tuple[str, bool]:
    words = text.split()
    if not isinstance(limit, int) or len(words) <= limit:
        return text, False
    return " ".join(words[: max(limit, 0)]), True


def _model_spec(model: _Model) -> dict:
    provider, _, name = model.model_id.partition("/")
    names = {"ibm": "IBM", "meta-llama": "Meta", "mistralai": "Mistral AI"}
    provider_name = names.get(provider, provider)
    lifecycle: list[dict] = [{"id": "available", "start_date": "2024-10-21"}]
    if model.state == "deprecated":
        lifecycle += [{"id": "deprecated", "label": "deprecated", "start_date": "2025-01-06",
                       "alternative_model_ids": ["ibm/granite-3-8b-instruct"]},
                      {"id": "withdrawn", "start_date": "2099-01-01"}]  # fmt: skip
    elif model.state == "withdrawn":
        lifecycle = [{"id": "available", "start_date": "2023-11-30"},
                     {"id": "deprecated", "start_date": "2024-11-04",
                      "alternative_model_ids": ["ibm/granite-3-8b-instruct"]},
                     {"id": "withdrawn", "start_date": "2025-02-03"}]  # fmt: skip
    spec = {
        "model_id": model.model_id,
        "label": name or model.model_id,
        "provider": provider_name,
        "source": provider_name,
        "functions": [{"id": f} for f in model.functions],
        "short_description": f"{name} (watsonx test server)",
        "long_description": f"Deterministic stand-in for {model.model_id}.",
        "input_tier": "class_1",
        "output_tier": "class_1",
        "number_params": "8b",
        "min_shot_size": 0,
        "task_ids": list(TASKS),
        "tasks": [{"id": t} for t in TASKS],
        "model_limits": {"max_sequence_length": 131072, "max_output_tokens": 8192},
        "limits": {plan: {"call_time": "10m0s", "max_output_tokens": 8192}
                   for plan in ("lite", "v2-professional", "v2-standard")},  # fmt: skip
        "lifecycle": lifecycle,
        "versions": [{"version": "1.1.0", "available_date": lifecycle[0]["start_date"]}],
        "supported_languages": ["en"],
    }
    if model.state == "tech_preview":
        spec["tech_preview"] = True
    return spec


def _current_states(spec: dict) -> set[str]:
    today = date.today().isoformat()
    return {e.get("id") for e in spec.get("lifecycle", []) if str(e.get("start_date", "")) <= today}


def _spec_has(spec: dict, term: str) -> bool:
    for prefix, values in (
        ("modelid_", lambda: [spec["model_id"]]),
        ("provider_", lambda: [spec.get("provider")]),
        ("source_", lambda: [spec.get("source")]),
        ("input_tier_", lambda: [spec.get("input_tier")]),
        ("output_tier_", lambda: [spec.get("output_tier")]),
        ("tier_", lambda: [spec.get("input_tier"), spec.get("output_tier")]),
        ("task_", lambda: spec.get("task_ids", [])),
        ("lifecycle_", lambda: _current_states(spec)),
        ("function_", lambda: [f["id"] for f in spec.get("functions", [])]),
    ):
        if term.startswith(prefix):
            return term[len(prefix):] in values()
    return False


def _parse_filters(text: str) -> Callable[[dict], bool]:
    """``tfilter[,tfilter][:(or|and)]``, ``tfilter: filter | !filter``; ``and`` if unspecified."""
    text = text.strip()
    if not text:
        return lambda spec: True
    mode = "and"
    head, sep, tail = text.rpartition(":")
    if sep and tail in ("and", "or"):
        text, mode = head, tail
    terms = [t.strip() for t in text.split(",") if t.strip()]

    def check(spec: dict) -> bool:
        results = [(not _spec_has(spec, t[1:])) if t.startswith("!") else _spec_has(spec, t)
                   for t in terms]  # fmt: skip
        return all(results) if mode == "and" else any(results)

    return check


class _TLSServer(ThreadingHTTPServer):
    """TLS handshakes in the per-connection threads, not in the accept loop."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:
        engine: WatsonxTestServer = self.RequestHandlerClass.engine
        request.settimeout(30)
        with contextlib.suppress(OSError):  # headers and body go out as two writes: no Nagle delay
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # e.g. a client that does not trust the CA; it sees the TLS alert
        with engine.lock:
            engine.connections.add(connection)
        try:
            self.RequestHandlerClass(connection, client_address, self)
        except OSError:
            pass
        finally:
            with engine.lock:
                engine.connections.discard(connection)
            with contextlib.suppress(OSError):
                connection.close()


class _Handler(BaseHTTPRequestHandler):
    engine: WatsonxTestServer
    protocol_version = "HTTP/1.1"
    server_version = "watsonx-test-server"
    timeout = 120

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    # -- plumbing ------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.record.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _dispatch(self) -> None:
        engine = self.engine
        arrival = time.monotonic()
        raw = self._read_body()
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        content_type = self.headers.get("Content-Type", "")
        text = raw.decode("utf-8", errors="replace")
        body: Any = text
        if "json" in content_type:
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
        elif "x-www-form-urlencoded" in content_type:
            form = parse_qs(text, keep_blank_values=True)
            body = {k: v[0] if len(v) == 1 else v for k, v in form.items()}
        self.record = RecordedRequest(
            method=self.command, path=parts.path, query=query, client=self.client_address,
            headers={k.lower(): v for k, v in self.headers.items()}, body=body, time=arrival,
        )  # fmt: skip
        with engine.lock:
            engine.requests.append(self.record)
        self.query = query
        route = self._route(self.command, parts.path)
        if route is None:
            self._reply(404, _error(404, "not_found", f"{self.command} {parts.path} not found"))
            return
        route()

    def _route(self, method: str, path: str) -> Callable[[], None] | None:
        if method == "POST" and path == "/identity/token":
            return self._iam
        if method == "GET" and path.startswith(("/v2/projects/", "/v2/spaces/")):
            return self._container
        if method == "GET" and path == "/ml/v1/foundation_model_specs":
            return self._specs
        if method == "POST" and path in INFERENCE_PATHS:
            return self._inference
        if method == "POST" and path == "/ml/v1/text/tokenization":
            return self._tokenize
        return None

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _authorized(self) -> bool:
        scheme, _, token = (self.record.authorization or "").partition(" ")
        with self.engine.lock:
            ok = scheme == "Bearer" and token in self.engine.tokens
        if not ok:
            message = ("Failed to authenticate the request due to invalid token: "
                       "Failed to parse and verify token")  # fmt: skip
            self._reply(401, _error(401, "authentication_token_not_valid", message))
        return ok

    def _versioned(self) -> bool:
        if self.query.get("version"):
            return True
        message = "Missing query parameter `version`"
        self._reply(400, _error(400, "missing_query_parameter", message))
        return False

    # -- endpoints -----------------------------------------------------------------

    def _iam(self) -> None:
        form = self.record.body if isinstance(self.record.body, dict) else {}
        if form.get("grant_type") != "urn:ibm:params:oauth:grant-type:apikey":
            self._reply(400, {"errorCode": "BXNIM0109E",
                              "errorMessage": "Property missing or empty",
                              "context": {"requestId": uuid.uuid4().hex}})  # fmt: skip
            return
        if form.get("apikey") != self.engine.api_key:
            self._reply(self.engine.bad_key_status, {
                "context": {"requestId": uuid.uuid4().hex, "requestType": "incoming.Identity_Token",
                            "url": self.engine.url, "locale": "en_US"},
                "errorCode": "BXNIM0415E",
                "errorMessage": "Provided API key could not be found.",
            })  # fmt: skip
            return
        self._reply(200, self.engine._issue_token())

    def _container(self) -> None:
        if not self._authorized():
            return
        kind, _, ident = self.record.path[len("/v2/"):].partition("/")
        known = self.engine.projects if kind == "projects" else self.engine.spaces
        if not ident or "/" in ident or (known is not None and ident not in known):
            self._reply(404, _error(404, "does_not_exist", f"{kind[:-1]} {ident} does not exist"))
            return
        entity: dict[str, Any] = {
            "name": f"watsonx-test-{kind[:-1]}",
            "description": "",
            "storage": {"type": "bmcos_object_storage",
                        "guid": str(uuid.uuid5(uuid.NAMESPACE_URL, ident))},
            "compute": [{"type": "machine_learning", "guid": "wml-test-instance",
                         "name": "watsonx-test-wml", "crn": "crn:v1:test:wml"}],
        }  # fmt: skip
        self._reply(200, {"metadata": {"guid": ident, "url": f"/v2/{kind}/{ident}",
                                       "created_at": "2024-01-01T00:00:00.000Z"},
                          "entity": entity})  # fmt: skip

    def _specs(self) -> None:
        if self._versioned():
            self._reply(200, self.engine.specs(self.query))

    def _tokenize(self) -> None:
        if not (self._authorized() and self._versioned()):
            return
        body = self.record.body if isinstance(self.record.body, dict) else {}
        text = body.get("input", "") if isinstance(body.get("input"), str) else ""
        result = {"token_count": word_count(text)}
        self._reply(200, {"model_id": body.get("model_id"), "result": result})

    def _inference(self) -> None:
        engine = self.engine
        if not (self._authorized() and self._versioned()):
            return
        status, headers = engine._admit()
        if status is not None:
            codes = {429: "too_many_requests", 500: "internal_server_error", 502: "bad_gateway",
                     503: "service_unavailable", 504: "gateway_timeout",
                     520: "unknown_error"}  # fmt: skip
            message = ("The number of requests exceeded the rate limit" if status == 429
                       else "Injected fault from the watsonx test server")  # fmt: skip
            self._reply(status, _error(status, codes.get(status, "error"), message), headers)
            return
        try:
            body = self.record.body
            problem = self._check_body(body)
            if problem is not None:
                self._reply(problem[0], _error(*problem), headers)
                return
            if engine.latency:
                time.sleep(engine.latency)
            is_generation = self.record.path == GENERATION_PATH
            answer = engine.generate(body) if is_generation else engine.chat(body)
            self._reply(200, answer, headers)
        finally:
            engine._done()

    def _check_body(self, body: Any) -> tuple[int, str, str] | None:
        if not isinstance(body, dict):
            return 400, "json_type_error", "Json document is not an object"
        if self.engine._find_model(body.get("model_id")) is None:
            return 404, "model_not_supported", f"Model '{body.get('model_id')}' is not supported"
        if not (body.get("project_id") or body.get("space_id") or body.get("wml_instance_crn")):
            return (400, "json_validation_error",
                    "Either 'space_id' or 'project_id' or 'wml_instance_crn' has to be provided")
        if self.record.path == GENERATION_PATH and not isinstance(body.get("input"), str):
            return 400, "json_validation_error", "Field 'input' is required and must be a string"
        messages = body.get("messages")
        if self.record.path == CHAT_PATH and not (isinstance(messages, list) and messages):
            return (400, "json_validation_error",
                    "Field 'messages' is required and must be a non-empty list")
        return None


# -- a guard for tests: refuse any connection that is not to the loopback address ----


@dataclass
class LoopbackGuard:
    """What :func:`loopback_only` saw: every host looked up or connected to."""

    lookups: list[str] = field(default_factory=list)
    connects: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


@contextlib.contextmanager
def loopback_only() -> Iterator[LoopbackGuard]:
    """Patch ``socket`` so that lookups of, and connections to, anything but the
    loopback address fail (and are recorded) for the duration of the block."""
    guard = LoopbackGuard()
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def host_of(address: Any) -> str:
        return str(address[0]) if isinstance(address, tuple) else str(address)

    def allowed(host: str) -> bool:
        return host in LOOPBACK or host.startswith("127.")

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        guard.lookups.append(name)
        if host is not None and not allowed(name):
            guard.refused.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"loopback_only: lookup of {name} refused")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(sock, address) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = host_of(address)
            guard.connects.append(host)
            if not allowed(host):
                guard.refused.append(host)
                raise ConnectionRefusedError(f"loopback_only: connection to {host} refused")

    def connect(self, address):
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(self, address)
        return real_connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    try:
        yield guard
    finally:
        socket.getaddrinfo = real_getaddrinfo
        socket.socket.connect = real_connect
        socket.socket.connect_ex = real_connect_ex
