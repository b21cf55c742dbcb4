"""A loopback server speaking Presto's statement protocol, with the SQL run in DuckDB.

No watsonx.data engine can be reached from the test machines, so the real
``prestodb`` client is tested against this: HTTPS with a certificate for 127.0.0.1
(from ``trustme``), Basic auth, ``POST /v1/statement`` answered with a ``nextUri``
that the client follows for columns and data, ``X-Presto-*`` headers, prepared
statements (``PREPARE``/``EXECUTE ... USING``/``DEALLOCATE``, the statement text
travelling in ``X-Presto-Prepared-Statement``), Presto-shaped errors, and an 8 KiB
cap on request headers like Presto's. DuckDB stands in for the Iceberg catalog:
``ATTACH``ed under the catalog's name, it takes the same three-part names.

Faults for tests: ``fail_next(n, status)`` answers the next n statements with an
HTTP error; ``fail_after_prefix`` runs the next statement starting with it and then
answers 503, as a proxy timing out would, so the client sends it again; ``stop()``/``start()`` take
the engine away and bring it back on the same port.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import socket
import ssl
import threading
import uuid
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, quote

import duckdb

HEADER_LIMIT = 8192
_LITERAL = re.compile(
    r"\s*(?:(NULL)|(true|false)|(-?\d+)(?![.\d])|DOUBLE\s+'([^']*)'|TIMESTAMP\s+'([^']*)'"
    r"|'((?:[^']|'')*)')\s*(?:,|$)",
    re.IGNORECASE | re.DOTALL,
)
PRESTO_TYPES = {"BIGINT": "bigint", "INTEGER": "integer", "VARCHAR": "varchar", "DOUBLE": "double",
                "BOOLEAN": "boolean", "TIMESTAMP": "timestamp"}  # fmt: skip


def parse_literals(text: str) -> list[object]:
    """The values of an ``EXECUTE ... USING`` list, as prestodb formats them."""
    values: list[object] = []
    position = 0
    while position < len(text):
        match = _LITERAL.match(text, position)
        if match is None:
            raise ValueError(f"cannot read literal at {text[position:position + 40]!r}")
        null, boolean, integer, double, timestamp, string = match.groups()
        if null:
            values.append(None)
        elif boolean:
            values.append(boolean.lower() == "true")
        elif integer is not None:
            values.append(int(integer))
        elif double is not None:
            values.append(float(double))
        elif timestamp is not None:
            values.append(datetime.fromisoformat(timestamp))
        else:
            values.append(string.replace("''", "'"))
        position = match.end()
    return values


class PrestoTestServer:
    """Presto's HTTP protocol on 127.0.0.1, over TLS, backed by an in-memory DuckDB."""

    def __init__(self, cert, user: str, password: str, catalog: str = "iceberg_data") -> None:
        self.cert = cert
        self.user = user
        self.password = password
        self.catalog = catalog
        self.db = duckdb.connect()
        self.db.execute(f'ATTACH \':memory:\' AS "{catalog}"')
        self.lock = threading.Lock()
        self.results: dict[str, dict] = {}
        self.port = 0
        self.clients: set[str] = set()
        self.statements: list[str] = []
        self.max_header_bytes = 0
        self.logins: list[str] = []
        self._fail: list[int] = []
        self.fail_after_prefix: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._ids = itertools.count(1)
        self.connections: set = set()
        self.iam_api_key: str | None = None

    # -- control -------------------------------------------------------------------

    def start(self) -> None:
        server = self

        class Handler(_Handler):
            engine = server

        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.cert.configure_cert(context)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        self.port = httpd.server_address[1]
        self._server = httpd
        threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening and cut every open connection, as an engine going away does."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for connection in list(self.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            except OSError:
                pass
        self.connections.clear()

    def fail_next(self, count: int, status: int = 503) -> None:
        self._fail.extend([status] * count)

    def query(self, sql: str) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql).fetchall()

    # -- the protocol --------------------------------------------------------------

    def statement(self, sql: str, prepared: dict[str, str]) -> tuple[dict, dict[str, str]]:
        """Run one statement; the first response body and extra headers."""
        query_id = f"q{next(self._ids)}_{uuid.uuid4().hex[:8]}"
        headers: dict[str, str] = {}
        text = sql.strip().rstrip(";")
        try:
            match = re.match(r"PREPARE\s+(\w+)\s+FROM\s+(.*)", text, re.IGNORECASE | re.DOTALL)
            if match:
                headers["X-Presto-Added-Prepare"] = f"{match.group(1)}={quote(match.group(2))}"
                result = {"columns": [], "data": []}
            elif re.match(r"DEALLOCATE\s+PREPARE\s+(\w+)", text, re.IGNORECASE):
                name = text.split()[-1]
                headers["X-Presto-Deallocated-Prepare"] = name
                result = {"columns": [], "data": []}
            else:
                match = re.match(r"EXECUTE\s+(\w+)(?:\s+USING\s+(.*))?$", text, re.IGNORECASE | re.DOTALL)
                if match:
                    body = prepared[match.group(1)]
                    result = self._run(body, parse_literals(match.group(2) or ""))
                    if self.fail_after_prefix and body.startswith(self.fail_after_prefix):
                        self.fail_after_prefix = None
                        headers["X-Test-Fail-After-Running"] = "1"
                else:
                    result = self._run(text, [])
        except Exception as error:  # every failure becomes a Presto error, as the server would
            result = {"error": {
                "message": str(error), "errorCode": 1, "errorName": "SYNTAX_ERROR",
                "errorType": "USER_ERROR", "failureInfo": {"type": type(error).__name__},
            }}  # fmt: skip
        self.results[query_id] = result
        first = {
            "id": query_id,
            "infoUri": f"https://127.0.0.1:{self.port}/ui/query.html?{query_id}",
            "nextUri": f"https://127.0.0.1:{self.port}/v1/statement/queued/{query_id}/1",
            "stats": {"state": "QUEUED", "queued": True, "scheduled": False},
        }
        return first, headers

    def _run(self, sql: str, params: list[object]) -> dict:
        translated = re.sub(r'"?' + re.escape(self.catalog) + r'"?\.information_schema\.',
                            "information_schema.", sql)  # fmt: skip
        with self.lock:
            self.statements.append(sql)
            cursor = self.db.execute(translated, params)
            description = cursor.description or []
            rows = cursor.fetchall() if description else []
        columns = [{"name": d[0], "type": PRESTO_TYPES.get(str(d[1]), "varchar")} for d in description]
        return {"columns": columns, "data": [[_json_value(v) for v in row] for row in rows]}

    def page(self, query_id: str) -> dict:
        result = self.results.pop(query_id, {"columns": [], "data": []})
        body = {"id": query_id, "infoUri": f"https://127.0.0.1:{self.port}/ui/query.html?{query_id}",
                "stats": {"state": "FAILED" if "error" in result else "FINISHED"}}  # fmt: skip
        body.update(result)
        return body


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


class _Handler(BaseHTTPRequestHandler):
    engine: PrestoTestServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.engine.connections.add(self.connection)

    def finish(self) -> None:
        self.engine.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _reply(self, status: int, body: dict | None = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _checked(self) -> bool:
        engine = self.engine
        engine.clients.add(self.client_address[0])
        size = sum(len(key) + len(value) + 4 for key, value in self.headers.items())
        engine.max_header_bytes = max(engine.max_header_bytes, size)
        if size > HEADER_LIMIT:
            self._reply(431, {"message": "Request Header Fields Too Large"})
            return False
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            user, password = "", ""
        if scheme != "Basic" or user != engine.user or password != engine.password:
            self._reply(401, {"message": "Unauthorized"})
            return False
        engine.logins.append(self.headers.get("X-Presto-User", ""))
        return True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        sql = self.rfile.read(length).decode()
        if self.path == "/identity/token":  # IBM Cloud IAM, for ibmlhtoken_ logins
            self._iam_token(sql)
            return
        if not self._checked():
            return
        if self.path != "/v1/statement":
            self._reply(404, {"message": "not found"})
            return
        engine = self.engine
        if engine._fail:
            self._reply(engine._fail.pop(0), None)
            return
        prepared: dict[str, str] = {}
        for item in self.headers.get("X-Presto-Prepared-Statement", "").split(","):
            if "=" in item:
                name, _, text = item.partition("=")
                prepared[name.strip()] = unquote(text.strip())
        first, headers = engine.statement(sql, prepared)
        if headers.pop("X-Test-Fail-After-Running", None):
            self._reply(503, None)
            return
        self._reply(200, first, headers)

    def _iam_token(self, form: str) -> None:
        from urllib.parse import parse_qs

        engine = self.engine
        engine.clients.add(self.client_address[0])
        fields = parse_qs(form)
        if fields.get("apikey") != [engine.iam_api_key]:
            self._reply(400, {"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found."})
            return
        self._reply(200, {"access_token": engine.password, "expires_in": 3600, "token_type": "Bearer"})

    def do_GET(self) -> None:
        if not self._checked():
            return
        match = re.match(r"/v1/statement/queued/([\w]+)/\d+", self.path)
        if not match:
            self._reply(404, {"message": "not found"})
            return
        self._reply(200, self.engine.page(match.group(1)))
