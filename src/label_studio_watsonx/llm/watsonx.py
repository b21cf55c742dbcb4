"""IBM watsonx.ai foundation models, through IBM's SDK (``ibm-watsonx-ai``).

The SDK, and the pandas it pulls in, is imported only here, and only when watsonx
is the provider. Connecting (IAM token, project, model check) happens in the
background from ``start()``, so ``/health`` never waits for IBM Cloud.

Chat and instruct models are called through the chat API, which applies the model's
own template; other models through text generation. Calls from many threads share
one ``RateLimiter`` (``WATSONX_RATE_LIMIT`` requests in any second) and retry on
429/503/504/520 with exponential backoff and jitter, honouring ``Retry-After``,
until ``WATSONX_MAX_RETRIES`` or the request's deadline; the SDK's own retries are
turned off so that every request, retries included, passes the limiter.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
import warnings
from typing import Any

from ..errors import ProviderError, ProviderNotReady
from ..settings import GenerationParams, Settings
from .base import Completion, Provider, ProviderStatus
from .ratelimit import RateLimiter

log = logging.getLogger(__name__)

DEFAULT_MODEL = "ibm/granite-3-8b-instruct"
RETRY_STATUSES = frozenset({429, 503, 504, 520})
MAX_DELAY = 8.0
RECONNECT_AFTER = 30.0


class ModelChoiceError(ProviderError):
    """``WATSONX_MODELTYPE`` names no model the endpoint offers."""


def resolve_model_id(value: str | None) -> str:
    """A model id from ``WATSONX_MODELTYPE``: an id as it is, or a legacy enum name."""
    if not value:
        return DEFAULT_MODEL
    if "/" in value:
        return value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ModelTypes is deprecated, and frozen
        from ibm_watsonx_ai.foundation_models.utils.enums import ModelTypes

        member = ModelTypes.__members__.get(value.upper())
    if member is None:
        raise ModelChoiceError(
            f"WATSONX_MODELTYPE={value!r} is neither a model id (such as {DEFAULT_MODEL}) nor "
            "a name in the SDK's ModelTypes"
        )
    return str(member.value)


class WatsonxProvider(Provider):
    name = "watsonx"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._model_id = resolve_model_id(settings.watsonx_modeltype)
        self.max_concurrency = settings.watsonx_concurrency
        self.limiter = RateLimiter(settings.watsonx_rate_limit)
        self._inference: Any = None
        self._chat = True
        self._error: str | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._starter: threading.Thread | None = None

    @property
    def model_id(self) -> str:
        return self._model_id

    def _scrub(self, text: str) -> str:
        for secret in self.settings.secrets():
            text = text.replace(secret, "***")
        return text

    # -- connecting ------------------------------------------------------------------

    def start(self) -> None:
        if self._starter is None:
            self._starter = threading.Thread(target=self._connect_quietly, name="watsonx-connect",
                                             daemon=True)  # fmt: skip
            self._starter.start()

    def _connect_quietly(self) -> None:
        try:
            self._connected()
        except ProviderError:
            pass  # recorded in status(), reported by /health and the next request

    def status(self) -> ProviderStatus:
        if self._inference is not None:
            api = "chat" if self._chat else "text generation"
            return ProviderStatus("ready", f"{self._model_id} through {api}")
        if self._error:
            return ProviderStatus("error", self._error)
        return ProviderStatus("loading", f"connecting to {self.settings.watsonx_url}")

    def _connected(self) -> Any:
        with self._lock:
            if self._inference is not None:
                return self._inference
            if self._error and time.monotonic() < self._retry_at:
                raise ProviderError(self._error)  # do not ask IBM Cloud again at once
            self._retry_at = time.monotonic() + RECONNECT_AFTER
            try:
                self._inference = self._connect()
                self._error = None
            except ProviderError as error:
                self._error = str(error)
                log.error("watsonx.ai: %s", error)
                raise
            return self._inference

    def _connect(self) -> Any:
        try:
            from ibm_watsonx_ai import Credentials
            from ibm_watsonx_ai.foundation_models import ModelInference
            from ibm_watsonx_ai.wml_client_error import WMLClientError
        except ImportError:
            raise ProviderError(
                "ibm-watsonx-ai is not installed: pip install 'label-studio-watsonx[watsonx]'"
            ) from None

        settings = self.settings
        verify = settings.watsonx_verify
        credentials = Credentials(
            url=settings.watsonx_url,
            api_key=settings.watsonx_api_key,
            platform_url=settings.watsonx_platform_url,
            auth_url=settings.iam_url,
            verify=verify,
        )
        try:
            inference = ModelInference(
                model_id=self._model_id,
                credentials=credentials,
                project_id=settings.watsonx_project_id,
                max_retries=0,  # retries happen in _call, through the rate limiter
            )
        except WMLClientError as error:
            raise self._explain(error) from None
        except Exception as error:  # network failures surface as httpx/requests errors
            raise ProviderError(
                f"watsonx.ai at {settings.watsonx_url} is unreachable: "
                f"{type(error).__name__}: {self._scrub(str(error))[:300]}"
            ) from None
        self._chat = self._supports_chat(inference)
        self._follow_limit_headers(inference)
        log.info("watsonx.ai model %s ready (%s)", self._model_id,
                 "chat" if self._chat else "text generation")  # fmt: skip
        return inference

    def _follow_limit_headers(self, inference: Any) -> None:
        """Lower the limiter to the rate watsonx.ai announces (``x-requests-limit-rate``).

        The SDK hides response headers from its callers, so this listens on its HTTP
        client; an SDK without that client keeps the configured rate.
        """
        configured = self.settings.watsonx_rate_limit

        def follow(response: Any) -> None:
            announced = response.headers.get("x-requests-limit-rate")
            try:
                rate = float(announced) if announced is not None else 0.0
            except ValueError:
                return
            if 0 < rate < min(configured, self.limiter.rate + 0.001) and rate != self.limiter.rate:
                log.info("watsonx.ai announces %g requests/s; following it", rate)
                self.limiter.set_rate(rate)

        client = getattr(getattr(inference, "_client", None), "httpx_client", None)
        hooks = getattr(client, "event_hooks", None)
        if isinstance(hooks, dict):
            hooks.setdefault("response", []).append(follow)

    def _supports_chat(self, inference: Any) -> bool:
        try:
            details = inference.get_details()
        except Exception:  # details are a nicety: chat is the default for instruct models
            return True
        functions = {item.get("id") for item in details.get("functions", []) if isinstance(item, dict)}
        return "text_chat" in functions or not functions

    def _explain(self, error: Exception) -> ProviderError:
        """A message naming what is wrong; the model list when the model is unknown."""
        kind = type(error).__name__
        text = self._scrub(str(error))
        if "Credentials" in kind or "apikey" in text.lower() or "api key" in text.lower():
            return ProviderError(
                "watsonx.ai refused the API key: check WATSONX_API_KEY (and WATSONX_AUTH_URL "
                "for a private deployment)"
            )
        if "model" in text.lower() and ("not supported" in text.lower() or "available" in text.lower()
                                        or "Unsupported" in kind):  # fmt: skip
            listed = re.search(r"Supported models: \[(.*?)\]", text)
            offered = ([name.strip(" '\"") for name in listed.group(1).split(",") if name.strip()]
                       if listed else self._offered_models())  # fmt: skip
            listing = ", ".join(offered) if offered else "see the endpoint's model list"
            return ModelChoiceError(
                f"watsonx.ai at {self.settings.watsonx_url} does not offer {self._model_id} "
                f"(withdrawn or unknown); set WATSONX_MODELTYPE to one of: {listing}"
            )
        if "project" in text.lower():
            return ProviderError(
                f"watsonx.ai cannot use project {self.settings.watsonx_project_id}: "
                f"check WATSONX_PROJECT_ID ({text[:200]})"
            )
        return ProviderError(f"watsonx.ai: {kind}: {text[:300]}")

    def _offered_models(self) -> list[str]:
        """The endpoint's models, for when the SDK's message does not list them."""
        try:
            from ibm_watsonx_ai.foundation_models import get_model_specs

            specs = get_model_specs(url=self.settings.watsonx_url, verify=self.settings.watsonx_verify)
        except Exception:  # the list is a courtesy: the error stands without it
            return []
        return sorted(
            item.get("model_id", "") for item in specs.get("resources", [])
            if not any(stage.get("id") == "withdrawn" for stage in item.get("lifecycle", []))
        )  # fmt: skip

    # -- generating --------------------------------------------------------------------

    def complete(
        self, prompt: str, params: GenerationParams, deadline: float | None = None
    ) -> Completion:
        inference = self._inference
        if inference is None:
            try:
                inference = self._connected()
            except ProviderError as error:
                raise ProviderNotReady(str(error)) from None
        if self._chat:
            answer = self._call(lambda: inference.chat(
                messages=[{"role": "user", "content": prompt}], params=_chat_params(params)
            ), deadline)  # fmt: skip
            choice = answer["choices"][0]
            usage = answer.get("usage") or {}
            return Completion(
                text=(choice.get("message", {}).get("content") or "").strip(),
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
                stop_reason=choice.get("finish_reason"),
            )
        answer = self._call(lambda: inference.generate(prompt=prompt, params=_text_params(params)),
                            deadline)  # fmt: skip
        result = answer["results"][0]
        return Completion(
            text=(result.get("generated_text") or "").strip(),
            input_tokens=int(result.get("input_token_count", 0)),
            output_tokens=int(result.get("generated_token_count", 0)),
            stop_reason=result.get("stop_reason"),
        )

    def _call(self, request, deadline: float | None) -> dict:
        from ibm_watsonx_ai.wml_client_error import ApiRequestFailure, WMLClientError

        retries = self.settings.watsonx_max_retries
        started = time.monotonic()
        for attempt in range(retries + 1):
            if not self.limiter.acquire(deadline):
                raise ProviderError(
                    f"{self._model_id}: no request slot before the deadline "
                    f"(WATSONX_RATE_LIMIT={self.settings.watsonx_rate_limit:g}/s)"
                )
            try:
                return request()
            except ApiRequestFailure as error:
                status = getattr(getattr(error, "response", None), "status_code", None)
                if status not in RETRY_STATUSES or attempt == retries:
                    raise ProviderError(
                        f"{self._model_id}: watsonx.ai answered {status} after {attempt + 1} "
                        f"attempt(s) in {time.monotonic() - started:.1f}s: "
                        f"{self._scrub(str(error))[:200]}"
                    ) from None
                delay = self._backoff(error.response, attempt)
                if status == 429:
                    self.limiter.pause(delay)
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise ProviderError(
                        f"{self._model_id}: watsonx.ai answered {status}; no time left to retry"
                    ) from None
                log.info("watsonx.ai answered %s; retry %d in %.2fs", status, attempt + 1, delay)
                time.sleep(delay)
            except WMLClientError as error:
                raise ProviderError(f"{self._model_id}: {self._scrub(str(error))[:300]}") from None
            except Exception as error:  # connection errors from httpx
                raise ProviderError(
                    f"{self._model_id}: watsonx.ai unreachable: {type(error).__name__}"
                ) from None
        raise AssertionError("unreachable")

    def _backoff(self, response: Any, attempt: int) -> float:
        headers = getattr(response, "headers", {}) or {}
        after = headers.get("retry-after")
        if after is not None:
            try:
                return min(MAX_DELAY * 4, max(0.0, float(after))) + random.uniform(0, 0.1)
            except ValueError:
                pass
        base = min(MAX_DELAY, self.settings.watsonx_delay_time * 2**attempt)
        return base * random.uniform(1.0, 1.5)


def _chat_params(params: GenerationParams) -> dict:
    chat: dict[str, object] = {"max_tokens": params.max_new_tokens, "temperature": params.temperature,
                               "top_p": params.top_p}  # fmt: skip
    if params.stop_sequences:
        chat["stop"] = list(params.stop_sequences)
    if params.random_seed is not None:
        chat["seed"] = params.random_seed
    return chat


def _text_params(params: GenerationParams) -> dict:
    text: dict[str, object] = {
        "decoding_method": "greedy" if params.temperature == 0 else "sample",
        "max_new_tokens": params.max_new_tokens,
        "repetition_penalty": params.repetition_penalty,
    }
    if params.temperature > 0:
        text.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
    if params.stop_sequences:
        text["stop_sequences"] = list(params.stop_sequences)
    if params.random_seed is not None:
        text["random_seed"] = params.random_seed
    return text
