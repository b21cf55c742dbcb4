"""Annotation rows in watsonx.data, through its Presto engine and ``prestodb``.

Presto has no MERGE and no ``ON CONFLICT``, so an upsert is: read the stored
``updated_at`` of the batch's ids, delete the ids that will be written (and those
deleted in Label Studio), insert the new rows. Each step can be repeated without
harm; after inserting, ids that appear twice (``prestodb`` re-sends a POST answered
503, which can run an INSERT twice) are rewritten once.

Values are bound with ``?``; ``prestodb`` sends each statement's text in an HTTP
header, which Presto caps at about 8 KiB, so statements are cut to stay under
``HEADER_BUDGET`` once URL-encoded.

TLS: ``WATSONX_ENG_VERIFY`` is set on the client's session and the session ignores
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, which would otherwise override it.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from urllib.parse import quote

import httpx

from ...settings import Settings
from .base import Column, Engine, EngineError, TransientEngineError, quote_identifier

log = logging.getLogger(__name__)

SQL_TYPES = {"text": "VARCHAR", "integer": "BIGINT", "double": "DOUBLE", "boolean": "BOOLEAN",
             "timestamp": "TIMESTAMP"}  # fmt: skip
HEADER_BUDGET = 6000


class IamToken:
    """An IAM bearer token for ``ibmlhtoken_<user>`` logins, renewed before it expires."""

    def __init__(self, api_key: str, url: str, verify: bool | str) -> None:
        self.api_key = api_key
        self.url = url
        self.verify = verify
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._expires - 300:
                verify = (ssl.create_default_context(cafile=self.verify)
                          if isinstance(self.verify, str) else self.verify)  # fmt: skip
                try:
                    response = httpx.post(
                        self.url,
                        data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey",
                              "apikey": self.api_key},
                        headers={"Accept": "application/json"},
                        verify=verify, timeout=30,
                    )  # fmt: skip
                except httpx.HTTPError as error:
                    raise TransientEngineError(f"IAM at {self.url} unreachable: {error}") from None
                if response.status_code != 200:
                    raise TransientEngineError(
                        f"IAM refused the API key ({response.status_code}); check WATSONX_API_KEY"
                    )
                answer = response.json()
                self._token = answer["access_token"]
                self._expires = time.time() + float(answer.get("expires_in", 3600))
            return self._token


class PrestoEngine(Engine):
    """One Iceberg table in a watsonx.data catalog, reached over HTTPS with Basic auth."""

    name = "presto"
    sql_types = SQL_TYPES

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: Callable[[], str],
        catalog: str,
        schema: str,
        table: str,
        verify: bool | str = True,
        http_scheme: str = "https",
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.catalog = catalog
        self.schema = schema
        self.table = table
        self.verify = verify
        self.http_scheme = http_scheme
        self._local = threading.local()

    @classmethod
    def from_settings(cls, settings: Settings) -> PrestoEngine:
        user = settings.engine_username or ""
        key = settings.watsonx_api_key or ""
        if user.startswith("ibmlhtoken_"):
            password: Callable[[], str] = IamToken(key, settings.iam_url, settings.engine_verify)
        else:
            password = lambda: key  # noqa: E731
        return cls(
            host=settings.engine_host or "",
            port=settings.engine_port,
            user=user,
            password=password,
            catalog=settings.catalog,
            schema=settings.schema or "",
            table=settings.table,
            verify=settings.engine_verify,
        )

    def describe(self) -> str:
        return f"presto {self.host}:{self.port} table {self.catalog}.{self.schema}.{self.table}"

    @property
    def qualified_table(self) -> str:
        return ".".join(quote_identifier(part) for part in (self.catalog, self.schema, self.table))

    # -- talking to Presto ---------------------------------------------------------

    def _connection(self):
        """This thread's connection, made again when the password changes (IAM tokens)."""
        password = self.password()
        cached = getattr(self._local, "connection", None)
        if cached is None or cached[1] != password:
            self._local.connection = (self._connect(password), password)
        return self._local.connection[0]

    def _connect(self, password: str):
        import prestodb

        connection = prestodb.dbapi.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            catalog=self.catalog,
            schema=self.schema,
            http_scheme=self.http_scheme,
            auth=prestodb.auth.BasicAuthentication(self.user, password)
            if self.http_scheme == "https" else None,
            max_attempts=3,
            request_timeout=60,
        )  # fmt: skip
        # prestodb has no verify= argument: set it on its requests session, and stop the
        # session reading REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE, which would override it.
        session = connection._http_session
        session.verify = self.verify
        session.trust_env = False
        return connection

    def run(self, sql: str, params: Sequence[object] | None = None) -> list[list]:
        """One statement; its rows. Errors become ``EngineError`` or ``TransientEngineError``."""
        try:
            return self._run(sql, params)
        except EngineError:
            self._local.connection = None  # start afresh after any failure
            raise

    def _run(self, sql: str, params: Sequence[object] | None) -> list[list]:
        import prestodb
        import requests

        try:
            cursor = self._connection().cursor()
            cursor.execute(sql, list(params) if params else None)
            return cursor.fetchall()
        except TransientEngineError:
            raise
        except prestodb.exceptions.PrestoUserError as error:
            raise EngineError(f"presto refused {_first_words(sql)}: {error.message}") from None
        except prestodb.exceptions.HttpError as error:
            text = str(error)
            if text.startswith(("error 401", "error 403")):
                raise TransientEngineError(
                    f"presto refused the login of {self.user} ({text[:9]}); check "
                    "WATSONX_ENG_USERNAME (ibmlhapikey_<user> or ibmlhtoken_<user>) and "
                    "WATSONX_API_KEY"
                ) from None
            raise TransientEngineError(f"presto at {self.host}:{self.port}: {text[:300]}") from None
        except (prestodb.exceptions.DatabaseError, prestodb.exceptions.Error) as error:
            raise TransientEngineError(f"presto at {self.host}:{self.port}: {error}") from None
        except requests.exceptions.RequestException as error:
            raise TransientEngineError(
                f"presto at {self.host}:{self.port} unreachable: {type(error).__name__}"
            ) from None

    # -- schema --------------------------------------------------------------------

    def _create_table(self, columns: Sequence[Column]) -> None:
        self._ensure_schema()
        definitions = ", ".join(self._definition(column) for column in columns)
        self.run(f"CREATE TABLE IF NOT EXISTS {self.qualified_table} ({definitions})")

    def _add_column(self, column: Column) -> None:
        self.run(f"ALTER TABLE {self.qualified_table} ADD COLUMN {self._definition(column)}")

    def _column_names(self) -> list[str]:
        rows = self.run(
            f"SELECT column_name FROM {quote_identifier(self.catalog)}.information_schema.columns"
            " WHERE table_schema = ? AND table_name = ?",
            [self.schema.lower(), self.table.lower()],
        )
        return [row[0] for row in rows]

    def _ensure_schema(self) -> None:
        rows = self.run(
            f"SELECT schema_name FROM {quote_identifier(self.catalog)}.information_schema.schemata"
            " WHERE schema_name = ?",
            [self.schema.lower()],
        )
        if rows:
            return
        try:
            self.run(
                f"CREATE SCHEMA IF NOT EXISTS "
                f"{quote_identifier(self.catalog)}.{quote_identifier(self.schema)}"
            )
        except EngineError as error:
            raise TransientEngineError(
                f"schema {self.schema} does not exist in catalog {self.catalog} and could not "
                f"be created ({error}); create it in watsonx.data with a storage location"
            ) from None

    # -- rows ----------------------------------------------------------------------

    def apply(self, upserts: Sequence[dict], deletes: Sequence[int]) -> None:
        stored = self._stored_versions([row["annotation_id"] for row in upserts])
        writes = [row for row in upserts if _not_older(row, stored.get(row["annotation_id"]))]
        self._delete([row["annotation_id"] for row in writes] + list(deletes))
        if not writes:
            return
        self._insert(writes)
        doubled = self._doubled([row["annotation_id"] for row in writes])
        if doubled:
            log.warning("rewriting %d rows inserted twice by a retried request", len(doubled))
            again = [row for row in writes if row["annotation_id"] in doubled]
            self._delete(list(doubled))
            self._insert(again)

    def _stored_versions(self, ids: Sequence[int]) -> dict[int, object]:
        found: dict[int, object] = {}
        head = f"SELECT annotation_id, updated_at FROM {self.qualified_table} WHERE annotation_id IN "
        for chunk in self._id_chunks(head, ids):
            for annotation_id, updated_at in self.run(head + _marks(len(chunk)), chunk):
                found[int(annotation_id)] = _as_datetime(updated_at)
        return found

    def _delete(self, ids: Sequence[int]) -> None:
        head = f"DELETE FROM {self.qualified_table} WHERE annotation_id IN "
        for chunk in self._id_chunks(head, sorted(set(ids))):
            try:
                self.run(head + _marks(len(chunk)), chunk)
            except EngineError as error:
                if "delete" in str(error).lower() and "not supported" in str(error).lower():
                    raise TransientEngineError(
                        "this Presto engine cannot delete rows (Presto C++ has no DELETE); "
                        "point WATSONX_ENG_HOST at a Presto (Java) engine"
                    ) from None
                raise

    def _doubled(self, ids: Sequence[int]) -> set[int]:
        head = f"SELECT annotation_id FROM {self.qualified_table} WHERE annotation_id IN "
        tail = " GROUP BY annotation_id HAVING count(*) > 1"
        doubled: set[int] = set()
        for chunk in self._id_chunks(head + tail, ids):
            doubled.update(int(row[0]) for row in self.run(head + _marks(len(chunk)) + tail, chunk))
        return doubled

    def _insert(self, rows: Sequence[dict]) -> None:
        names = list(dict.fromkeys(name for row in rows for name in row))
        head = (
            f"INSERT INTO {self.qualified_table} "
            f"({', '.join(quote_identifier(name) for name in names)}) VALUES "
        )
        one = "(" + ", ".join("?" * len(names)) + ")"
        per_row = _encoded_length(one + ", ")
        room = HEADER_BUDGET - _encoded_length(head)
        if room < per_row:
            raise EngineError(
                f"a row of {len(names)} columns does not fit one Presto statement; "
                "the labeling config has too many tags"
            )
        size = max(1, room // per_row)
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            values = [row.get(name) for row in chunk for name in names]
            self.run(head + ", ".join([one] * len(chunk)), values)

    @staticmethod
    def _id_chunks(sql: str, ids: Sequence[int]) -> list[list[int]]:
        ids = list(ids)
        if not ids:
            return []
        size = max(1, (HEADER_BUDGET - _encoded_length(sql)) // _encoded_length("?, "))
        return [ids[start : start + size] for start in range(0, len(ids), size)]


def _marks(count: int) -> str:
    return "(" + ", ".join("?" * count) + ")"


def _encoded_length(text: str) -> int:
    return len(quote(text, safe=""))


def _first_words(sql: str) -> str:
    return " ".join(sql.split()[:2])


def _as_datetime(value: object) -> datetime | None:
    if isinstance(value, datetime) or value is None:
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", ""))
    except ValueError:
        return None


def _not_older(row: dict, stored: object) -> bool:
    new = row.get("updated_at")
    return stored is None or new is None or new >= stored  # type: ignore[operator]
