"""REST over a database's tables: the default handler behind the gate. SQLite here; PostgreSQL in
:mod:`.dataset_pg`, with the same API (:func:`open_dataset` opens what ``--dataset`` names).

    GET    /api                  tables and their columns
    GET    /api/<table>          rows; ?limit (default 100, max 1000), ?offset, ?<column>=<value> filters
    GET    /api/<table>/<id>     one row by primary key (or rowid)
    POST   /api/<table>          insert a JSON object -> 201 + the row + Location
    PUT    /api/<table>/<id>     update the given columns -> the row (PATCH: the same)
    DELETE /api/<table>/<id>     -> 204
    GET    /openapi.json         OpenAPI 3.0 description of the above for this file's tables

The gate already mapped methods to privileges (GET=SELECT, POST=INSERT, PUT/PATCH=UPDATE,
DELETE=DELETE). Table and column names only ever come from the file's own schema (a request naming
anything else is a 404 or 400); values are always SQL parameters. Client mistakes are 400/404/405/409/413,
never 500.

:class:`RestDataset` is the API (routes, bodies, answers, OpenAPI); an engine subclass finds the tables
and runs the five operations (``list_rows``, ``get``, ``insert``, ``update``, ``delete``), and turns
its driver's errors into answers (``error_answer``). A list may answer with a :class:`RowStream`,
sent as it is read.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from tlskit.errors import InputError, option
from tlskit.server import bodies
from tlskit.server.dataset_stream import JSON_HEADERS, RowStream, _encode_json  # noqa: F401 (RowStream re-exported)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# One encoder for every answer: json.dumps with options builds a new encoder per call.


def ensure_demo_dataset(state_dir: Path) -> Path:
    """The demo dataset as a writable copy under the state dir, created once from the package's demo.sql."""
    from importlib.resources import files

    target = state_dir / "demo.sqlite"
    if target.exists():
        return target
    try:
        script = files("tlskit.data").joinpath("demo.sql").read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError):
        raise InputError("the demo dataset is missing from this tlskit installation",
                         fix=f"reinstall tlskit, or pass {option('dataset')} FILE.sqlite") from None
    state_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    db = sqlite3.connect(str(partial))
    # One transaction: one journal sync for the whole script instead of one per statement.
    db.executescript(f"BEGIN;\n{script}\nCOMMIT;")
    db.close()
    shutil.move(str(partial), str(target))
    return target


@dataclass
class Table:
    name: str
    columns: list[dict]        # {"name", "type", "notnull", "pk"}
    key: str                   # primary key column, or "rowid"
    by_key: str | None = None  # SELECT ... WHERE key = ?, built on first use
    names: tuple[str, ...] | None = None
    # PostgreSQL: the schema-qualified name, and per column the type parameters are cast to and its kind.
    qualified: str = ""
    casts: dict[str, str] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> set[str]:
        return {c["name"] for c in self.columns}

    def public(self) -> dict:
        return {"name": self.name, "key": self.key or None, "columns": self.columns}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class HttpError(Exception):
    """Raised inside the handler to answer at once with a client error (status + JSON document)."""

    def __init__(self, status: int, document: dict | None, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.document = document
        self.headers = headers or []


def _error(status: int, error: str, detail: str) -> HttpError:
    return HttpError(status, {"error": error, "detail": detail})


class _Fetched:
    """A cursor's answer read in full (for reads made outside an event loop)."""

    def __init__(self, description, rows) -> None:
        self.description = description
        self._rows = rows

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def fetchall(self):
        return self._rows


def check_value(name: str, value, column: str = "", arrays: bool = False) -> None:
    """A JSON value that a plain column can take, else a 400: no object (nor array, unless ``arrays``),
    a finite number, text that is valid Unicode (a lone surrogate, "\\ud800", is valid JSON but no
    text an engine can store). ``column`` names the column's type in the message."""
    if isinstance(value, dict) or (isinstance(value, list) and not arrays):
        raise _error(400, "bad request", f"column {name}{column} takes a string, number, boolean or null")
    if isinstance(value, float) and not math.isfinite(value):
        raise _error(400, "bad request", f"column {name}: {value} is not a finite number")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _error(400, "bad request", f"column {name}: not valid Unicode text") from None


def _require_json(scope) -> None:
    """Writes take ``Content-Type: application/json`` only (any charset parameter).

    A browser sends a cross-site form or a ``text/plain`` fetch without asking the server first, with
    the user's cached Basic credentials attached; requiring a JSON type (which such a request cannot
    carry without a CORS preflight) keeps another site from writing rows in the user's name.
    """
    for name, value in scope["headers"]:
        if name == b"content-type":
            if value.split(b";", 1)[0].strip().lower() == b"application/json":
                return
            break
    raise _error(415, "unsupported media type", "send the row as JSON with Content-Type: application/json")


_SQLITE_TYPES = {"INTEGER": "integer", "REAL": "number", "TEXT": "string", "NUMERIC": "number", "BLOB": "string"}


def list_query(table: Table, query_string: bytes) -> tuple[int, int, list[tuple[str, str]]]:
    """``?limit``, ``?offset`` and ``?<column>=<value>`` filters of a list, checked against the table."""
    limit, offset, filters = DEFAULT_LIMIT, 0, []
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in ("limit", "offset"):
            try:
                number = int(value)
                if number < 0:
                    raise ValueError
            except ValueError:
                raise _error(400, "bad request", f"{name} must be a non-negative integer") from None
            if name == "limit":
                limit = min(number, MAX_LIMIT)
            else:
                offset = number
        elif name.lower().lstrip("@").startswith("authtoken"):
            continue     # the credential (tlskit.server.query's rule), not a filter
        elif name in table.column_names or (name == "rowid" and table.key == "rowid"):
            filters.append((name, value))
        else:
            raise _error(400, "bad request", f"unknown filter {name!r}: not a column of {table.name}")
    return limit, offset, filters


def check_dataset(location, schema: str = "public") -> None:
    """Open what ``--dataset`` names once, so a bad one is an error before the server listens."""
    from tlskit.server.stores import is_postgres

    if is_postgres(location):
        from tlskit.server.dataset_pg import check_postgres_dataset

        check_postgres_dataset(location, schema)
        return
    Dataset(location).close()


def open_dataset(location, schema: str = "public") -> RestDataset:
    """The REST API over an SQLite file or a PostgreSQL schema (``--dataset``, ``--dataset-schema``)."""
    from tlskit.server.stores import is_postgres

    if is_postgres(location):
        from tlskit.server.dataset_pg import PostgresDataset

        return PostgresDataset(location, schema)
    return Dataset(location)


def _encode(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


class RestDataset:
    """The REST API; a subclass is one engine (see the module docstring). ``tables`` and ``title`` are its."""

    tables: dict[str, Table]
    title: str
    parse_float = float          # how a JSON number with a fraction is read from a body

    async def table(self, name: str) -> Table:
        table = self.tables.get(name)
        if table is None:
            self.tables = await self.introspect()    # a table created since we started
            table = self.tables.get(name)
        if table is None:
            raise _error(404, "not found", f"no table {name!r}; GET /api lists them")
        return table

    def json_schema(self, column: dict) -> dict:
        """The OpenAPI schema of a column's values."""
        return {"type": _SQLITE_TYPES.get(column["type"].upper().split("(")[0], "string")}

    # ASGI

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        try:
            status, document, headers = await self.route(scope, receive)
        except HttpError as answer:
            status, document, headers = answer.status, answer.document, answer.headers
        except Exception as exc:
            answer = self.error_answer(exc)
            if answer is None:
                raise
            status, document, headers = answer.status, answer.document, answer.headers
        if isinstance(document, RowStream):
            await document.send(send, scope["method"] == "HEAD")
            return
        body = b"" if document is None else _encode_json(document).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": (JSON_HEADERS if document is not None else []) + headers
                    + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def route(self, scope, receive):
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        parts = [p for p in scope["path"].split("/") if p]
        if parts == ["openapi.json"]:
            self._only(method, ("GET",))
            return 200, self.openapi(), []
        if not parts:
            self._only(method, ("GET",))
            return 200, {"api": "/api", "openapi": "/openapi.json", "tables": sorted(self.tables)}, []
        if parts[0] != "api" or len(parts) > 3:
            raise _error(404, "not found", f"no route {scope['path']}")
        if len(parts) == 1:
            self._only(method, ("GET",))
            self.tables = await self.introspect()
            return 200, {"tables": [t.public() for t in self.tables.values()]}, []
        table = await self.table(parts[1])
        if len(parts) == 2:
            self._only(method, ("GET", "POST"))
            if method == "GET":
                limit, offset, filters = list_query(table, scope["query_string"])
                return 200, await self.list_rows(table, limit, offset, filters), []
            row = await self.insert(table, await self._body(scope, receive))
            location = f"/api/{table.name}/{row[table.key] if table.key in row else ''}"
            return 201, row, [(b"location", location.encode())]
        key = parts[2]
        self._only(method, ("GET", "PUT", "PATCH", "DELETE"))
        if method == "GET":
            return 200, await self.get(table, key), []
        if method == "DELETE":
            await self.delete(table, key)
            return 204, None, []
        return 200, await self.update(table, key, await self._body(scope, receive)), []

    @staticmethod
    def _only(method: str, allowed: tuple[str, ...]) -> None:
        if method not in allowed:
            allow = ", ".join(allowed + (("HEAD",) if "GET" in allowed else ()))
            raise HttpError(405, {"error": "method not allowed", "detail": f"{method} is not allowed here"},
                           [(b"allow", allow.encode())])

    async def _body(self, scope, receive) -> dict:
        form = scope.get("tlskit.form")
        if form is not None:
            # A form post that carried its own authtoken (the gate took it out): the fields are the row.
            if not form:
                raise _error(400, "bad request", "the form has no fields besides authtoken")
            return dict(form)
        _require_json(scope)
        try:
            body = await bodies.read_body(receive)
        except bodies.TooLarge:
            raise _error(413, "payload too large", f"the body is over {bodies.MAX_BODY} bytes") from None
        except bodies.ClientGone:
            raise _error(400, "bad request", "the client went away") from None
        try:
            document = json.loads(body, parse_float=self.parse_float)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _error(400, "bad json", f"the body is not valid JSON ({exc})") from None
        except RecursionError:
            raise _error(400, "bad json", "the body nests too deeply") from None
        if not isinstance(document, dict) or not document:
            raise _error(400, "bad json", "the body must be a non-empty JSON object of column: value")
        return document

    # description

    def openapi(self) -> dict:
        paths: dict = {"/api": {"get": {"summary": "List tables", "responses": {"200": {"description": "tables"}}}}}
        schemas = {}
        for table in self.tables.values():
            props = {c["name"]: self.json_schema(c) for c in table.columns}
            schemas[table.name] = {"type": "object", "properties": props,
                                   "required": [c["name"] for c in table.columns if c["notnull"] and not c["pk"]]}
            ref = {"$ref": f"#/components/schemas/{table.name}"}
            body = {"required": True, "content": {"application/json": {"schema": ref}}}
            row = {"description": "the row", "content": {"application/json": {"schema": ref}}}
            filters = [{"name": c["name"], "in": "query", "required": False, "schema": props[c["name"]]}
                       for c in table.columns]
            paging = [{"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": MAX_LIMIT}},
                      {"name": "offset", "in": "query", "schema": {"type": "integer"}}]
            paths[f"/api/{table.name}"] = {
                "get": {"summary": f"List {table.name}", "parameters": paging + filters,
                        "responses": {"200": {"description": "rows"}}},
                "post": {"summary": f"Insert into {table.name}", "requestBody": body, "responses": {"201": row}},
            }
            key = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
            paths[f"/api/{table.name}/{{id}}"] = {
                "get": {"parameters": key, "responses": {"200": row, "404": {"description": "no such row"}}},
                "put": {"parameters": key, "requestBody": body, "responses": {"200": row}},
                "patch": {"parameters": key, "requestBody": body, "responses": {"200": row}},
                "delete": {"parameters": key, "responses": {"204": {"description": "deleted"}}},
            }
        return {
            "openapi": "3.0.3",
            "info": {"title": f"tlskit serve: {self.title}", "version": "1"},
            "components": {"schemas": schemas, "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
            "security": [{"basic": []}, {"bearer": []}, {"apiKey": []}],
            "paths": paths,
        }


class Dataset(RestDataset):
    """The REST API over one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"dataset {self.path} does not exist", fix=f"pass an SQLite file with {option('dataset')}")
        try:
            self.db = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, isolation_level=None,
                                      check_same_thread=False, timeout=5)
            self.db.execute("PRAGMA foreign_keys = ON")
            self._reading = False
            self.tables = self._introspect()
            self.title = self.path.name
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot open dataset {self.path}", str(exc), "pass an SQLite database file") from None

    def _read(self, sql: str, params: tuple = ()):
        """Run a SELECT inside the read transaction of this event-loop turn.

        Each statement outside a transaction takes and drops SQLite's file lock (a handful of system
        calls, most of a key lookup's cost); the reads of the requests answered in one turn of the
        loop share one transaction instead, ended as soon as the turn is over, so a writer in another
        process waits a moment at most and every read still sees committed data.
        """
        if not self._reading:
            self.db.execute("BEGIN")
            self._reading = True
            try:
                asyncio.get_running_loop().call_soon(self._end_read)
            except RuntimeError:          # no loop (a direct call): end it at once after this read
                cursor = self.db.execute(sql, params)
                rows = cursor.fetchall()
                self._end_read()
                return _Fetched(cursor.description, rows)
        return self.db.execute(sql, params)

    def _end_read(self) -> None:
        if self._reading:
            self._reading = False
            self.db.execute("COMMIT")

    def _write(self, sql: str, params: tuple):
        self._end_read()       # writes run in autocommit, never inside a shared read transaction
        return self.db.execute(sql, params)

    def _introspect(self) -> dict[str, Table]:
        tables = {}
        for (name,) in self.db.execute("SELECT name FROM sqlite_schema WHERE type = 'table' "
                                       "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall():
            columns = [{"name": c[1], "type": c[2] or "ANY", "notnull": bool(c[3]), "pk": bool(c[5])}
                       for c in self.db.execute(f"PRAGMA table_info({_ident(name)})")]
            keys = [c["name"] for c in columns if c["pk"]]
            tables[name] = Table(name, columns, keys[0] if len(keys) == 1 else "rowid")
        return tables

    async def introspect(self) -> dict[str, Table]:
        return self._introspect()

    def close(self) -> None:
        self.db.close()

    def error_answer(self, exc: Exception) -> HttpError | None:
        if isinstance(exc, sqlite3.IntegrityError):
            return HttpError(409, {"error": "conflict", "detail": str(exc)})
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
            return HttpError(503, {"error": "busy", "detail": "the dataset is locked; retry"}, [(b"retry-after", b"1")])
        if isinstance(exc, (sqlite3.OperationalError, sqlite3.DataError, sqlite3.ProgrammingError,
                            sqlite3.InterfaceError, OverflowError, UnicodeError)):
            return HttpError(400, {"error": "bad request", "detail": str(exc)})
        return None

    def _values(self, table: Table, document: dict) -> dict:
        unknown = set(document) - table.column_names
        if unknown:
            raise _error(400, "bad request", f"unknown column(s) {', '.join(sorted(unknown))} in {table.name}")
        for name, value in document.items():
            check_value(name, value)
        return document

    # the four operations

    def _rows(self, cursor) -> list[dict]:
        names = [d[0] for d in cursor.description]
        return [{n: _encode(v) for n, v in zip(names, row)} for row in cursor.fetchall()]

    def _select(self, table: Table) -> str:
        extra = "rowid AS rowid, " if table.key == "rowid" else ""
        return f"SELECT {extra}* FROM {_ident(table.name)}"

    async def list_rows(self, table: Table, limit: int, offset: int, filters: list[tuple[str, str]]) -> dict:
        sql = self._select(table)
        if filters:
            sql += " WHERE " + " AND ".join(f"{_ident(name)} = ?" for name, _ in filters)
        sql += f" ORDER BY {_ident(table.key)} LIMIT ? OFFSET ?"
        rows = self._rows(self._read(sql, (*(value for _, value in filters), limit, offset)))
        return {"table": table.name, "rows": rows, "limit": limit, "offset": offset}

    async def get(self, table: Table, key: str) -> dict:
        # The hot path of a read API: one cached statement, one row.
        sql = table.by_key
        if sql is None:
            sql = table.by_key = f"{self._select(table)} WHERE {_ident(table.key)} = ?"
        cursor = self._read(sql, (key,))
        row = cursor.fetchone()
        if row is None:
            raise _error(404, "not found", f"no row {key!r} in {table.name}")
        names = table.names
        if names is None:
            names = table.names = tuple(d[0] for d in cursor.description)
        return {n: _encode(v) if v.__class__ is bytes else v for n, v in zip(names, row)}

    async def insert(self, table: Table, document: dict) -> dict:
        values = self._values(table, document)
        names = ", ".join(_ident(n) for n in values)
        marks = ", ".join("?" for _ in values)
        cursor = self._write(f"INSERT INTO {_ident(table.name)} ({names}) VALUES ({marks})", tuple(values.values()))
        rows = self._rows(self._read(f"{self._select(table)} WHERE rowid = ?", (cursor.lastrowid,)))
        return rows[0] if rows else dict(values)

    async def update(self, table: Table, key: str, document: dict) -> dict:
        values = self._values(table, document)
        assignments = ", ".join(f"{_ident(n)} = ?" for n in values)
        cursor = self._write(f"UPDATE {_ident(table.name)} SET {assignments} WHERE {_ident(table.key)} = ?",
                                 (*values.values(), key))
        if cursor.rowcount == 0:
            raise _error(404, "not found", f"no row {key!r} in {table.name}")
        new_key = values.get(table.key, key)
        return await self.get(table, str(new_key))

    async def delete(self, table: Table, key: str) -> None:
        cursor = self._write(f"DELETE FROM {_ident(table.name)} WHERE {_ident(table.key)} = ?", (key,))
        if cursor.rowcount == 0:
            raise _error(404, "not found", f"no row {key!r} in {table.name}")
