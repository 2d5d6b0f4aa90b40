"""REST over an SQLite file: the default handler behind the gate.

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
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from tlskit.errors import InputError

MAX_BODY = 1024 * 1024
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
JSON_HEADERS = [(b"content-type", b"application/json")]
# One encoder for every answer: json.dumps with options builds a new encoder per call.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


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
                         fix="reinstall tlskit, or pass --dataset FILE.sqlite") from None
    state_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    db = sqlite3.connect(str(partial))
    db.executescript(script)
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

    @property
    def column_names(self) -> set[str]:
        return {c["name"] for c in self.columns}

    def public(self) -> dict:
        return {"name": self.name, "key": self.key, "columns": self.columns}


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


def _encode(value):
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


class Dataset:
    """An ASGI application over one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"dataset {self.path} does not exist", fix="pass an SQLite file with --dataset")
        try:
            self.db = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, isolation_level=None,
                                      check_same_thread=False, timeout=5)
            self.db.execute("PRAGMA foreign_keys = ON")
            self._reading = False
            self.tables = self._introspect()
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

    def table(self, name: str) -> Table:
        table = self.tables.get(name)
        if table is None:
            self.tables = self._introspect()    # a table created since we started
            table = self.tables.get(name)
        if table is None:
            raise _error(404, "not found", f"no table {name!r}; GET /api lists them")
        return table

    # ASGI

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        try:
            status, document, headers = await self.route(scope, receive)
        except HttpError as answer:
            status, document, headers = answer.status, answer.document, answer.headers
        except sqlite3.IntegrityError as exc:
            status, document, headers = 409, {"error": "conflict", "detail": str(exc)}, []
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                status, document, headers = 503, {"error": "busy", "detail": "the dataset is locked; retry"}, [(b"retry-after", b"1")]
            else:
                status, document, headers = 400, {"error": "bad request", "detail": str(exc)}, []
        except (sqlite3.DataError, sqlite3.ProgrammingError, sqlite3.InterfaceError, OverflowError,
                UnicodeError) as exc:
            status, document, headers = 400, {"error": "bad request", "detail": str(exc)}, []
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
            self.tables = self._introspect()
            return 200, {"tables": [t.public() for t in self.tables.values()]}, []
        table = self.table(parts[1])
        if len(parts) == 2:
            self._only(method, ("GET", "POST"))
            if method == "GET":
                return 200, self.list(table, scope["query_string"]), []
            row = self.insert(table, await self._body(scope, receive))
            location = f"/api/{table.name}/{row[table.key] if table.key in row else ''}"
            return 201, row, [(b"location", location.encode())]
        key = parts[2]
        self._only(method, ("GET", "PUT", "PATCH", "DELETE"))
        if method == "GET":
            return 200, self.get(table, key), []
        if method == "DELETE":
            self.delete(table, key)
            return 204, None, []
        return 200, self.update(table, key, await self._body(scope, receive)), []

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
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _error(400, "bad request", "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise _error(413, "payload too large", f"the body is over {MAX_BODY} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        try:
            document = json.loads(b"".join(chunks))
        except (ValueError, UnicodeDecodeError) as exc:
            raise _error(400, "bad json", f"the body is not valid JSON ({exc})") from None
        except RecursionError:
            raise _error(400, "bad json", "the body nests too deeply") from None
        if not isinstance(document, dict) or not document:
            raise _error(400, "bad json", "the body must be a non-empty JSON object of column: value")
        return document

    def _values(self, table: Table, document: dict) -> dict:
        unknown = set(document) - table.column_names
        if unknown:
            raise _error(400, "bad request", f"unknown column(s) {', '.join(sorted(unknown))} in {table.name}")
        for name, value in document.items():
            if isinstance(value, (dict, list)):
                raise _error(400, "bad request", f"column {name} takes a string, number, boolean or null")
            if isinstance(value, float) and not math.isfinite(value):
                raise _error(400, "bad request", f"column {name}: {value} is not a finite number")
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    # A lone surrogate ("\ud800") is valid JSON but not text SQLite can store.
                    raise _error(400, "bad request", f"column {name}: not valid Unicode text") from None
        return document

    # the four operations

    def _rows(self, cursor) -> list[dict]:
        names = [d[0] for d in cursor.description]
        return [{n: _encode(v) for n, v in zip(names, row)} for row in cursor.fetchall()]

    def _select(self, table: Table) -> str:
        extra = "rowid AS rowid, " if table.key == "rowid" else ""
        return f"SELECT {extra}* FROM {_ident(table.name)}"

    def list(self, table: Table, query_string: bytes) -> dict:
        limit, offset = DEFAULT_LIMIT, 0
        where, params = [], []
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
                where.append(f"{_ident(name)} = ?")
                params.append(value)
            else:
                raise _error(400, "bad request", f"unknown filter {name!r}: not a column of {table.name}")
        sql = self._select(table)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {_ident(table.key)} LIMIT ? OFFSET ?"
        rows = self._rows(self._read(sql, (*params, limit, offset)))
        return {"table": table.name, "rows": rows, "limit": limit, "offset": offset}

    def get(self, table: Table, key: str) -> dict:
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

    def insert(self, table: Table, document: dict) -> dict:
        values = self._values(table, document)
        names = ", ".join(_ident(n) for n in values)
        marks = ", ".join("?" for _ in values)
        cursor = self._write(f"INSERT INTO {_ident(table.name)} ({names}) VALUES ({marks})", tuple(values.values()))
        rows = self._rows(self._read(f"{self._select(table)} WHERE rowid = ?", (cursor.lastrowid,)))
        return rows[0] if rows else dict(values)

    def update(self, table: Table, key: str, document: dict) -> dict:
        values = self._values(table, document)
        assignments = ", ".join(f"{_ident(n)} = ?" for n in values)
        cursor = self._write(f"UPDATE {_ident(table.name)} SET {assignments} WHERE {_ident(table.key)} = ?",
                                 (*values.values(), key))
        if cursor.rowcount == 0:
            raise _error(404, "not found", f"no row {key!r} in {table.name}")
        new_key = values.get(table.key, key)
        return self.get(table, str(new_key))

    def delete(self, table: Table, key: str) -> None:
        cursor = self._write(f"DELETE FROM {_ident(table.name)} WHERE {_ident(table.key)} = ?", (key,))
        if cursor.rowcount == 0:
            raise _error(404, "not found", f"no row {key!r} in {table.name}")

    # description

    def openapi(self) -> dict:
        types = {"INTEGER": "integer", "REAL": "number", "TEXT": "string", "NUMERIC": "number", "BLOB": "string"}
        paths: dict = {"/api": {"get": {"summary": "List tables", "responses": {"200": {"description": "tables"}}}}}
        schemas = {}
        for table in self.tables.values():
            props = {c["name"]: {"type": types.get(c["type"].upper().split("(")[0], "string")} for c in table.columns}
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
            "info": {"title": f"tlskit serve: {self.path.name}", "version": "1"},
            "components": {"schemas": schemas, "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
            "security": [{"basic": []}, {"bearer": []}, {"apiKey": []}],
            "paths": paths,
        }
