"""Every environment variable the service reads, read once and checked.

``Settings.from_env()`` is called at start-up; the result is passed down to
everything else, so no other module reads the environment. A value that cannot be
used raises ``SettingsError`` naming the variable and what it accepts.

Values are read the way the docker-compose file of the setup this replaces wrote
them: an empty value means "not set", and one pair of surrounding quotes is
dropped (compose's list syntax keeps them). In the two prompt variables the
escapes ``\\n`` and ``\\t`` stand for a new line and a tab.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from .errors import SettingsError

T = TypeVar("T")

DEFAULT_PROMPT = "Answer the following question\n\n{text}"
PROMPT_TEMPLATE = (
    "Read the text below, then follow the instruction.\n\n"
    "Text:\n{text}\n\n"
    "Instruction: {prompt}"
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PROVIDERS = ("local", "watsonx", "echo")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def default_local_threads() -> int:
    """Half the cores: llama.cpp's threads spin at every barrier, so when they outnumber
    the free cores (Label Studio often shares the machine) generation slows down tenfold
    or more instead of by half."""
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class GenerationParams:
    """How an answer is generated; the same names serve every provider."""

    max_new_tokens: int = 400
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.1
    stop_sequences: tuple[str, ...] = ()
    random_seed: int | None = None

    def with_overrides(self, overrides: Mapping[str, object]) -> GenerationParams:
        """These parameters with a project's ``extra_params`` applied.

        Raises ``ValueError`` naming the first key or value that cannot be used.
        """
        limits = {"max_new_tokens": (int, 1, 32768), "temperature": (float, 0.0, 2.0),
                  "top_p": (float, 0.0, 1.0), "top_k": (int, 1, 100),
                  "repetition_penalty": (float, 1.0, 2.0), "random_seed": (int, 0, 2**32 - 1)}  # fmt: skip
        changes: dict[str, object] = {}
        for key, value in overrides.items():
            if key == "stop_sequences":
                value = [value] if isinstance(value, str) else value
                if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                    raise ValueError("extra_params.stop_sequences must be a string or a list of them")
                changes[key] = tuple(value)
                continue
            if key not in limits:
                names = ", ".join([*limits, "stop_sequences"])
                raise ValueError(f"extra_params.{key} is not a generation parameter ({names})")
            kind, low, high = limits[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"extra_params.{key} must be a number")
            if kind is int and value != int(value):
                raise ValueError(f"extra_params.{key} must be a whole number")
            if not low <= value <= high:
                raise ValueError(f"extra_params.{key} must be from {low} to {high}")
            changes[key] = kind(value)
        return replace(self, **changes)  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, object]:
        """The parameters as plain values, in a stable order (for cache keys)."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "stop_sequences": list(self.stop_sequences),
            "random_seed": self.random_seed,
        }


@dataclass(frozen=True)
class Settings:
    """The service's whole configuration. Build it with ``Settings.from_env()``."""

    host: str = "0.0.0.0"
    port: int = 9090
    workers: int = 1
    threads: int = 8
    log_level: str = "INFO"
    basic_auth_user: str | None = None
    basic_auth_pass: str | None = field(default=None, repr=False)
    max_body_bytes: int = 10 * 1024 * 1024
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_secret_header: str = "X-Webhook-Secret"
    data_dir: Path = Path("data")

    label_studio_url: str | None = None
    label_studio_api_key: str | None = field(default=None, repr=False)

    llm_provider: str = "local"
    local_model_path: Path | None = None
    local_context_size: int = 4096
    local_threads: int = 1
    watsonx_api_key: str | None = field(default=None, repr=False)
    watsonx_project_id: str | None = None
    watsonx_modeltype: str | None = None
    watsonx_url: str = "https://us-south.ml.cloud.ibm.com"
    watsonx_platform_url: str | None = None
    watsonx_verify: bool | str = True
    watsonx_concurrency: int = 8
    watsonx_rate_limit: float = 8.0
    watsonx_max_retries: int = 4
    watsonx_delay_time: float = 0.5
    predict_timeout: float = 90.0
    llm_cache: bool = True

    engine_host: str | None = None
    engine_port: int = 443
    engine_username: str | None = None
    engine_verify: bool | str = True
    catalog: str = "iceberg_data"
    schema: str | None = None
    table: str = "annotations"
    sync_batch_size: int = 500
    sync_max_attempts: int = 5
    sync_max_backoff: float = 60.0
    iam_url: str = "https://iam.cloud.ibm.com/identity/token"

    default_prompt: str = DEFAULT_PROMPT
    use_internal_prompt: bool = False
    prompt_prefix: str = "prompt"
    prompt_template: str = PROMPT_TEMPLATE
    generation: GenerationParams = field(default_factory=GenerationParams)

    @property
    def engine(self) -> str:
        """Where annotation rows go: ``presto`` (watsonx.data) or ``sqlite``."""
        return "presto" if self.engine_host else "sqlite"

    @property
    def auth_enabled(self) -> bool:
        return self.basic_auth_user is not None

    def secrets(self) -> list[str]:
        """Every configured secret value, for scrubbing text before it is shown."""
        values = [self.basic_auth_pass, self.label_studio_api_key, self.watsonx_api_key,
                  self.webhook_secret]  # fmt: skip
        return [value for value in values if value]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check every variable; raise ``SettingsError`` on the first bad one."""
        reader = _Reader(os.environ if env is None else env)

        user = reader.text("BASIC_AUTH_USER")
        password = reader.text("BASIC_AUTH_PASS")
        if user is not None and ":" in user:
            raise SettingsError("BASIC_AUTH_USER", user, "a user name without ':' (Basic auth "
                                "separates the name from the password with it)")  # fmt: skip
        if (user is None) != (password is None):
            missing = "BASIC_AUTH_PASS" if password is None else "BASIC_AUTH_USER"
            raise SettingsError(
                missing, "", "a value whenever the other Basic auth variable is set"
            )

        watsonx_key = reader.text("WATSONX_API_KEY")
        watsonx_project = reader.text("WATSONX_PROJECT_ID")
        provider = reader.choice("LLM_PROVIDER", PROVIDERS, default=None)
        if provider is None:
            provider = "watsonx" if watsonx_key and watsonx_project else "local"
        if provider == "watsonx" and not (watsonx_key and watsonx_project):
            raise SettingsError(
                "LLM_PROVIDER",
                "watsonx",
                "watsonx only when WATSONX_API_KEY and WATSONX_PROJECT_ID are set",
            )

        engine_host = reader.text("WATSONX_ENG_HOST")
        engine_user = reader.text("WATSONX_ENG_USERNAME")
        schema = reader.text("WATSONX_SCHEMA")
        if engine_host:
            for name, value in (("WATSONX_ENG_USERNAME", engine_user),
                                ("WATSONX_API_KEY", watsonx_key), ("WATSONX_SCHEMA", schema)):  # fmt: skip
                if not value:
                    raise SettingsError(name, "", "a value whenever WATSONX_ENG_HOST is set")

        use_internal = reader.boolean("USE_INTERNAL_PROMPT", default=None)
        if use_internal is None:
            use_internal = reader.boolean("USE_INTERNAL_PROMPT_TEMPLATE", default=False)

        prompt_template = reader.prompt("PROMPT_TEMPLATE", PROMPT_TEMPLATE)
        if "{prompt}" not in prompt_template:
            raise SettingsError(
                "PROMPT_TEMPLATE", prompt_template, "a template containing {prompt}, where the "
                "typed prompt goes (and usually {text}, where the task's text goes)"
            )

        return cls(
            host=reader.text("HOST") or "0.0.0.0",
            port=reader.integer("PORT", 9090, 1, 65535),
            workers=reader.integer("WORKERS", 1, 1, 64),
            threads=reader.integer("THREADS", 8, 1, 256),
            log_level=reader.choice("LOG_LEVEL", LOG_LEVELS, default="INFO", upper=True),
            basic_auth_user=user,
            basic_auth_pass=password,
            max_body_bytes=reader.integer("MAX_BODY_BYTES", 10 * 1024 * 1024, 1024, 2**31),
            webhook_secret=reader.text("WEBHOOK_SECRET"),
            webhook_secret_header=reader.header_name("WEBHOOK_SECRET_HEADER") or "X-Webhook-Secret",
            data_dir=Path(reader.text("DATA_DIR") or "data"),
            label_studio_url=reader.url("LABEL_STUDIO_URL"),
            label_studio_api_key=reader.text("LABEL_STUDIO_API_KEY"),
            llm_provider=provider,
            local_model_path=reader.existing_file("LOCAL_MODEL_PATH"),
            local_context_size=reader.integer("LOCAL_CONTEXT_SIZE", 4096, 256, 131072),
            local_threads=reader.integer("LOCAL_THREADS", default_local_threads(), 1, 256),
            watsonx_api_key=watsonx_key,
            watsonx_project_id=watsonx_project,
            watsonx_modeltype=reader.text("WATSONX_MODELTYPE"),
            watsonx_url=reader.https_url("WATSONX_URL") or "https://us-south.ml.cloud.ibm.com",
            watsonx_platform_url=reader.https_url("WATSONX_PLATFORM_URL"),
            watsonx_verify=reader.verify("WATSONX_VERIFY"),
            watsonx_concurrency=reader.integer("WATSONX_CONCURRENCY", 8, 1, 10),
            watsonx_rate_limit=reader.number("WATSONX_RATE_LIMIT", 8.0, 0.1, 1000.0),
            watsonx_max_retries=reader.integer("WATSONX_MAX_RETRIES", 4, 0, 20),
            watsonx_delay_time=reader.number("WATSONX_DELAY_TIME", 0.5, 0.01, 30.0),
            predict_timeout=reader.number("PREDICT_TIMEOUT", 90.0, 1.0, 3600.0),
            llm_cache=reader.boolean("LLM_CACHE", default=True),
            engine_host=engine_host,
            engine_port=reader.integer("WATSONX_ENG_PORT", 443, 1, 65535),
            engine_username=engine_user,
            engine_verify=reader.verify("WATSONX_ENG_VERIFY"),
            catalog=reader.text("WATSONX_CATALOG") or "iceberg_data",
            schema=schema,
            table=reader.text("WATSONX_TABLE") or "annotations",
            sync_batch_size=reader.integer("SYNC_BATCH_SIZE", 500, 1, 10000),
            sync_max_attempts=reader.integer("SYNC_MAX_ATTEMPTS", 5, 1, 1000),
            sync_max_backoff=reader.number("SYNC_MAX_BACKOFF", 60.0, 0.01, 3600.0),
            iam_url=reader.https_url("WATSONX_AUTH_URL") or "https://iam.cloud.ibm.com/identity/token",
            default_prompt=reader.prompt("DEFAULT_PROMPT", DEFAULT_PROMPT),
            use_internal_prompt=use_internal,
            prompt_prefix=reader.text("PROMPT_PREFIX") or "prompt",
            prompt_template=prompt_template,
            generation=GenerationParams(
                max_new_tokens=reader.integer("MAX_NEW_TOKENS", 400, 1, 32768),
                temperature=reader.number("TEMPERATURE", 0.0, 0.0, 2.0),
                top_p=reader.number("TOP_P", 1.0, 0.0, 1.0),
                top_k=reader.integer("TOP_K", 50, 1, 100),
                repetition_penalty=reader.number("REPETITION_PENALTY", 1.1, 1.0, 2.0),
                stop_sequences=reader.string_list("STOP_SEQUENCES"),
                random_seed=reader.integer("RANDOM_SEED", None, 0, 2**32 - 1),
            ),
        )


class _Reader:
    """Typed access to one environment mapping; every method names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        raw = self.env.get(name)
        if raw is None:
            return None
        value = raw.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        return value or None

    def _parsed(
        self, name: str, default: T, accepts: str, parse: Callable[[str], T]
    ) -> T:
        value = self.text(name)
        if value is None:
            return default
        try:
            return parse(value)
        except (ValueError, TypeError, RecursionError):
            raise SettingsError(name, value, accepts) from None

    def integer(self, name: str, default: T, low: int, high: int) -> int | T:
        accepts = f"a whole number from {low} to {high}"

        def parse(value: str) -> int:
            number = int(value)
            if not low <= number <= high:
                raise ValueError
            return number

        return self._parsed(name, default, accepts, parse)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        accepts = f"a number from {low:g} to {high:g}"

        def parse(value: str) -> float:
            number = float(value)
            if not low <= number <= high:
                raise ValueError
            return number

        return self._parsed(name, default, accepts, parse)

    def boolean(self, name: str, default: T) -> bool | T:
        accepts = "1, 0, true, false, yes, no, on or off"

        def parse(value: str) -> bool:
            word = value.lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            raise ValueError

        return self._parsed(name, default, accepts, parse)

    def choice(
        self, name: str, options: tuple[str, ...], default: T, upper: bool = False
    ) -> str | T:
        accepts = "one of " + ", ".join(options)

        def parse(value: str) -> str:
            word = value.upper() if upper else value.lower()
            if word not in options:
                raise ValueError
            return word

        return self._parsed(name, default, accepts, parse)

    def url(self, name: str) -> str | None:
        def parse(value: str) -> str:
            if not value.startswith(("http://", "https://")) or len(value) < 10:
                raise ValueError
            return value.rstrip("/")

        return self._parsed(name, None, "an http:// or https:// address", parse)

    def header_name(self, name: str) -> str | None:
        def parse(value: str) -> str:
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", value):
                raise ValueError
            return value

        return self._parsed(name, None, "an HTTP header name (letters, digits, '-')", parse)

    def https_url(self, name: str) -> str | None:
        def parse(value: str) -> str:
            if not value.startswith("https://") or len(value) < 12:
                raise ValueError
            return value.rstrip("/")

        return self._parsed(name, None, "an https:// address", parse)

    def existing_file(self, name: str) -> Path | None:
        def parse(value: str) -> Path:
            path = _file_at(value)
            if path is None:
                raise ValueError
            return path

        return self._parsed(name, None, "the path of an existing file", parse)

    def verify(self, name: str) -> bool | str:
        """TLS checking: ``true``, ``false``, or the path of a CA bundle."""
        accepts = "true, false, or the path of an existing CA bundle file"

        def parse(value: str) -> bool | str:
            word = value.lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            path = _file_at(value)
            if path is None:
                raise ValueError
            return str(path)

        return self._parsed(name, True, accepts, parse)

    def string_list(self, name: str) -> tuple[str, ...]:
        accepts = 'a JSON list of strings, such as ["\\n\\n", "END"], or one string'

        def parse(value: str) -> tuple[str, ...]:
            if not value.startswith("["):
                return (_unescape(value),)
            items = json.loads(value)
            if not all(isinstance(item, str) and item for item in items):
                raise ValueError
            return tuple(items)

        return self._parsed(name, (), accepts, parse)

    def prompt(self, name: str, default: str) -> str:
        """A prompt given as text, or as the path of a file that holds it."""
        value = self.text(name)
        if value is None:
            return default
        path = _file_at(value)
        if path is not None:
            try:
                return path.read_text(encoding="utf-8").rstrip("\n")
            except (OSError, UnicodeDecodeError):
                raise SettingsError(name, value, "text, or a readable UTF-8 file") from None
        if _looks_like_path(value):
            raise SettingsError(name, value, "text, or the path of an existing file")
        return _unescape(value)


def _looks_like_path(value: str) -> bool:
    """A single word starting like a path: surely a file name mistyped, not a prompt."""
    return not any(char.isspace() for char in value) and value.startswith(("/", "./", "../", "~/"))


def _file_at(value: str) -> Path | None:
    """The existing file ``value`` names, or None when it names none (or is not a path)."""
    if "\n" in value or "\0" in value:
        return None
    try:
        path = Path(value).expanduser()
        return path if path.is_file() else None
    except (OSError, RuntimeError, ValueError):  # too long, unknown ~user, bad bytes
        return None


def _unescape(value: str) -> str:
    return value.replace("\\n", "\n").replace("\\t", "\t")
