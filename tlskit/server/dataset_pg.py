"""The dataset REST API over the tables of one PostgreSQL schema (``--dataset postgresql://...``).

The API is :class:`~tlskit.server.dataset.RestDataset`'s, as over SQLite. What PostgreSQL adds:

- **Tables** are the ordinary and partitioned tables of ``--dataset-schema`` (default ``public``),
  read from the catalog; nothing else is reachable (no other schema, no system catalog, no view).
- **Keys**: a table with a one-column primary key (serial, identity, uuid, text, any type) has
  ``/api/<table>/<id>``; the id is cast to the key's type, so an index serves it. A table with a
  composite primary key, or none, is listed, filtered and inserted into, but has no item routes
  (``/api/<table>/<id>`` is a 404 that says to filter on the key columns instead).
- **Values** as JSON: integers and booleans as such; numeric as a JSON number when a double holds it
  exactly, else as a string (no digit is lost); timestamps, dates and times in ISO 8601; uuid as text;
  json and jsonb as the JSON they hold; arrays as arrays; bytea as base64; anything else as
  PostgreSQL's text for it. Writes take the same forms back; a json/jsonb column takes any JSON value,
  an array column a JSON array.
- **Errors**: a constraint violation (unique, foreign key, not null, check) is 409; a value the column's
  type refuses is 400; a privilege the database user lacks is 403; PostgreSQL unreachable, or not
  answering within ``query_timeout``, is 503 with Retry-After (the pool reconnects by itself).
- **Large tables**: every filter compares a column with a parameter cast to the column's type, so an
  index on that column is used; ``limit`` is in the SQL; list rows are streamed to the client as they
  arrive from the server. Only parameters and quoted identifiers from the catalog go into SQL.
- **A server that stops mid-list** (hangs, or goes away after the first rows): once no row has come for
  ``query_timeout``, the answer is cut off (the connection closes before the last chunk), with one log
  line; the connection is given up in the background, so the request never waits on psycopg's cancel.

Driver: psycopg 3 (``psycopg_pool.AsyncConnectionPool``), the same as the users store's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import logging
import math
import time
import uuid
from decimal import Decimal

from tlskit.errors import InputError, NetworkError, option
from tlskit.server.dataset import HttpError, RestDataset, RowStream, Table, _error, _ident, check_value
from tlskit.server.dataset_stream import RowsBrokeOff
from tlskit.server.stores import PostgresUrl

log = logging.getLogger("tlskit.serve")

QUERY_TIMEOUT = 5.0        # seconds a request may wait for PostgreSQL (a connection and its query) before a 503
CONNECT_WAIT = 3.0         # seconds a request waits for a pooled connection
DOWN_FOR = 1.0             # after a failure, seconds during which requests get the 503 at once
LOG_EVERY = 10.0
POOL_SIZE = 8              # connections per instance
RETRY_AFTER = b"2"
READ_AHEAD = 200           # rows of a list read from PostgreSQL ahead of what the client has taken
_END = object()

# One row per column of every table of the schema: name, type as shown, the type to cast parameters to
# (no modifier: a cast to varchar(5) would cut text), NOT NULL, part of the primary key, the type's category.
_COLUMNS_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, NULL),
       a.attnotnull, coalesce(a.attnum = ANY (i.indkey), false), t.typcategory
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname, a.attnum
"""
_SCHEMA_EXISTS = "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s"

_JSON_TYPES = {"B": {"type": "boolean"}, "N": {"type": "number"}, "A": {"type": "array"},
               "D": {"type": "string", "format": "date-time"}}
_INTEGERS = {"smallint", "integer", "bigint"}


def _q(name: str) -> str:
    """A quoted identifier that survives psycopg's %-placeholder parsing."""
    return _ident(name).replace("%", "%%")


def _tables(rows, schema: str) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    for relname, column, shown, cast, notnull, pk, category in rows:
        table = tables.get(relname)
        if table is None:
            table = tables[relname] = Table(relname, [], "", qualified=f"{_q(schema)}.{_q(relname)}")
        table.columns.append({"name": column, "type": shown, "notnull": bool(notnull), "pk": bool(pk)})
        table.casts[column] = cast.replace("%", "%%")
        table.categories[column] = "J" if cast in ("json", "jsonb") else category
    for table in tables.values():
        keys = [c["name"] for c in table.columns if c["pk"]]
        table.key = keys[0] if len(keys) == 1 else ""
    return tables


def to_json(value):
    """A value psycopg read, as JSON can carry it (see the module docstring)."""
    kind = value.__class__
    if value is None or kind is int or kind is str or kind is bool:
        return value
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if kind is Decimal:
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value() and abs(value) < 10 ** 15:
            return int(value)
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if kind in (datetime.datetime, datetime.date, datetime.time):
        return value.isoformat()
    if kind is uuid.UUID:
        return str(value)
    if kind is bytes or kind is memoryview or kind is bytearray:
        return base64.b64encode(bytes(value)).decode()
    if kind is list:
        return [to_json(v) for v in value]
    if kind is dict:
        return value
    if kind is datetime.timedelta:
        return str(value)
    return str(value)


def _row(names, values) -> dict:
    return {name: to_json(value) for name, value in zip(names, values)}


def _connect_error(url: PostgresUrl, exc) -> NetworkError:
    from tlskit.server.users_pg import describe

    return NetworkError(f"cannot open the dataset {url}", describe(exc),
                        f"check {option('dataset')}, and that PostgreSQL runs and lets this user in")


def check_postgres_dataset(url: PostgresUrl, schema: str) -> dict[str, Table]:
    """Connect once and read the schema's tables (blocking: at start, before anything listens)."""
    import psycopg

    try:
        with psycopg.connect(**url.connect_options(), autocommit=True) as db:
            if db.execute(_SCHEMA_EXISTS, (schema,)).fetchone() is None:
                raise InputError(f"the dataset {url} has no schema {schema!r}",
                                 fix=f"give the schema of your tables with {option('dataset_schema')} (default public)")
            return _tables(db.execute(_COLUMNS_SQL, (schema,)).fetchall(), schema)
    except psycopg.Error as exc:
        raise _connect_error(url, exc) from None


class PostgresDataset(RestDataset):
    """The REST API over the tables of one schema of a PostgreSQL database."""

    # A JSON number is kept as written (19.99 stays 19.99 in a numeric column, all 30 digits of a long one).
    parse_float = Decimal

    def __init__(self, url: PostgresUrl, schema: str = "public", query_timeout: float = QUERY_TIMEOUT,
                 pool_size: int = POOL_SIZE) -> None:
        import psycopg

        self.url = url
        self.schema = schema
        self.title = f"{schema} in {url}"
        self.query_timeout = query_timeout
        self.pool_size = pool_size
        self.tables = check_postgres_dataset(url, schema)
        self._psycopg = psycopg
        self._pool = None
        self._opening: asyncio.Task | None = None
        self._down_until = 0.0
        self._down: str | None = None
        self._logged_at = -math.inf
        self._abandoned: set[asyncio.Task] = set()      # work a request gave up on, still being cancelled

    # --- connections ----------------------------------------------------------------------------------

    async def _connections(self):
        if self._down is not None and time.monotonic() < self._down_until:
            raise _unavailable()
        if self._pool is None:
            if self._opening is None:
                self._opening = asyncio.get_running_loop().create_task(self._open_pool())
            await asyncio.shield(self._opening)
        return self._pool

    async def _open_pool(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        options = self.url.connect_options(connect_timeout=3)
        conninfo = options.pop("conninfo")
        # The pool's own warnings would print a line per reconnection attempt; ours say it once per 10 s.
        pool_log = logging.getLogger("psycopg.pool")
        pool_log.propagate = False
        pool_log.addHandler(logging.NullHandler())
        # reconnect_timeout=0: a connection that cannot be made is not retried in the background for
        # minutes; the next request that needs one tries again, so the pool is back as soon as PostgreSQL is.
        pool = AsyncConnectionPool(conninfo, kwargs={**options, "autocommit": True}, min_size=1,
                                   max_size=self.pool_size, timeout=CONNECT_WAIT, open=False,
                                   reconnect_timeout=0, name="tlskit-dataset")
        await pool.open(wait=False)
        self._pool = pool

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def _fetch(self, sql: str, params: tuple, one: bool = False):
        """Run one statement on a pooled connection: (column names, rows) or (names, first row)."""
        async def run():
            pool = await self._connections()
            async with pool.connection() as connection:
                cursor = await connection.execute(sql, params)
                if cursor.description is None:          # DELETE: a count, no rows
                    return [], None, cursor.rowcount
                names = [d.name for d in cursor.description]
                if one:
                    return names, await cursor.fetchone(), cursor.rowcount
                return names, await cursor.fetchall(), cursor.rowcount

        result = await self._within(run())
        self._reachable()
        return result

    async def _within(self, work, late=None):
        """``work``'s result, or TimeoutError after ``query_timeout``. Past the timeout the work is
        cancelled in the background: psycopg's cancel of a query on a server that does not answer takes
        seconds of its own (a cancel request, then closing the connection), which the request need not
        wait for. ``late`` gets a result that arrives after the request gave up (to give it back)."""
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.query_timeout)
        except BaseException:
            if not task.done():
                task.cancel()
                self._abandoned.add(task)
                task.add_done_callback(lambda done: self._settle(done, late))
            raise

    def _settle(self, task: asyncio.Task, late) -> None:
        self._abandoned.discard(task)
        if task.cancelled() or task.exception() is not None:
            return          # the exception is read, so asyncio does not report it as lost
        if late is not None:
            self._abandoned.add(asyncio.get_running_loop().create_task(late(task.result())))

    def _reachable(self) -> None:
        if self._down is not None:
            self._down = None
            log.warning("dataset %s reachable again", self.url)

    def _unreachable(self, exc: BaseException, action: str = "answering 503") -> None:
        from tlskit.server.users_pg import describe

        self._down = describe(exc)
        self._down_until = time.monotonic() + DOWN_FOR
        if time.monotonic() - self._logged_at >= LOG_EVERY:
            self._logged_at = time.monotonic()
            log.warning("dataset %s unreachable (%s): %s", self.url, self._down, action)

    # --- what RestDataset asks ------------------------------------------------------------------------

    async def introspect(self) -> dict[str, Table]:
        _, rows, _ = await self._fetch(_COLUMNS_SQL, (self.schema,))
        return _tables(rows, self.schema)

    def json_schema(self, column: dict) -> dict:
        table_type = column["type"]
        if table_type.split("(")[0] in _INTEGERS:
            return {"type": "integer"}
        if table_type.startswith("json"):
            return {}
        if table_type == "uuid":
            return {"type": "string", "format": "uuid"}
        if table_type.endswith("[]"):
            return {"type": "array"}
        if table_type in ("boolean",):
            return {"type": "boolean"}
        if table_type.startswith(("numeric", "real", "double")):
            return {"type": "number"}
        if table_type.startswith("timestamp"):
            return {"type": "string", "format": "date-time"}
        if table_type == "date":
            return {"type": "string", "format": "date"}
        return {"type": "string"}

    def error_answer(self, exc: Exception) -> HttpError | None:
        errors = self._psycopg.errors
        from psycopg_pool import PoolTimeout

        if isinstance(exc, (asyncio.TimeoutError, TimeoutError, PoolTimeout, self._psycopg.OperationalError,
                            errors.QueryCanceled)) and not isinstance(exc, errors.InsufficientPrivilege):
            self._unreachable(exc)
            return _unavailable()
        if isinstance(exc, self._psycopg.IntegrityError):
            return HttpError(409, {"error": "conflict", "detail": _message(exc)})
        if isinstance(exc, errors.InsufficientPrivilege):
            return HttpError(403, {"error": "forbidden", "detail": _message(exc)})
        if isinstance(exc, (self._psycopg.DataError, self._psycopg.ProgrammingError)):
            return HttpError(400, {"error": "bad request", "detail": _message(exc)})
        if isinstance(exc, self._psycopg.Error):
            return HttpError(503, {"error": "unavailable", "detail": _message(exc)}, [(b"retry-after", RETRY_AFTER)])
        if isinstance(exc, (OverflowError, UnicodeError, ValueError)):
            return HttpError(400, {"error": "bad request", "detail": str(exc)})
        return None

    def _order(self, table: Table) -> str:
        keys = [_q(c["name"]) for c in table.columns if c["pk"]]
        return f" ORDER BY {', '.join(keys)}" if keys else ""

    async def list_rows(self, table: Table, limit: int, offset: int, filters: list[tuple[str, str]]):
        sql = f"SELECT * FROM {table.qualified}"
        if filters:
            sql += " WHERE " + " AND ".join(f"{_q(name)} = %s::{table.casts[name]}" for name, _ in filters)
        sql += f"{self._order(table)} LIMIT %s OFFSET %s"
        params = (*(value for _, value in filters), limit, offset)
        pool = await self._connections()

        async def start():
            # The connection is held until the last row is sent: released by the stream when it ends.
            manager = pool.connection()
            connection = await manager.__aenter__()
            try:
                cursor = connection.cursor()
                rows = cursor.stream(sql, params, size=100)
                first = await anext(rows, None)
            except BaseException as exc:
                await _leave(manager, exc)
                raise
            # Once an empty stream has ended the cursor has no description any more.
            names = [d.name for d in cursor.description] if first is not None else []
            return manager, rows, first, names

        async def give_back(started) -> None:
            manager, rows, *_ = started
            await rows.aclose()
            await _leave(manager, None)

        manager, rows, first, names = await self._within(start(), late=give_back)
        self._reachable()
        rest, done = self._rest_of_list(table, manager, rows, names)
        return RowStream(table.name, limit, offset, None if first is None else _row(names, first), rest, done)

    def _rest_of_list(self, table: Table, manager, rows, names):
        """The rows after the first, and what gives the connection back once they are sent.

        A task of its own reads them (up to READ_AHEAD ahead), so that waiting for the next one can stop
        after ``query_timeout`` without cancelling psycopg in the request: its cancel of a query on a
        server that does not answer takes seconds of its own.
        """
        queue: asyncio.Queue = asyncio.Queue(READ_AHEAD)
        reader: asyncio.Task | None = None
        whole = False

        async def read() -> None:
            try:
                async for values in rows:
                    await queue.put(_row(names, values))
            except Exception as exc:        # OperationalError: the server went away mid-list
                await queue.put(exc)
                return
            await queue.put(_END)

        async def rest():
            nonlocal reader, whole
            reader = asyncio.get_running_loop().create_task(read(), name="tlskit-dataset-rows")
            sent = 1
            while True:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:  # waits only when PostgreSQL is behind: one timer, not one a row
                    try:
                        item = await asyncio.wait_for(queue.get(), self.query_timeout)
                    except asyncio.TimeoutError as exc:
                        item = exc
                if item is _END:
                    whole = True
                    return
                if isinstance(item, BaseException):
                    self._unreachable(item, f"list of {table.name} cut off after {sent} rows")
                    raise RowsBrokeOff from None
                sent += 1
                yield item

        async def give_back() -> None:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader
            with contextlib.suppress(Exception):
                await rows.aclose()
            await _leave(manager, None)

        async def done() -> None:
            if reader is None or whole:
                await give_back()           # all read, or none asked for (HEAD): quick
                return
            # Cut off, or the client went away: the query may still run on a server that does not answer.
            task = asyncio.get_running_loop().create_task(give_back(), name="tlskit-dataset-give-back")
            self._abandoned.add(task)
            task.add_done_callback(self._abandoned.discard)

        return rest(), done

    def _item(self, table: Table, key: str) -> str:
        if not table.key:
            keys = [c["name"] for c in table.columns if c["pk"]]
            detail = (f"table {table.name} has a composite primary key ({', '.join(keys)}): list it with "
                      f"filters on those columns" if keys else f"table {table.name} has no primary key: list it with filters")
            raise _error(404, "not found", detail)
        return f"{_q(table.key)} = %s::{table.casts[table.key]}"

    async def get(self, table: Table, key: str) -> dict:
        where = self._item(table, key)
        try:
            names, row, _ = await self._fetch(f"SELECT * FROM {table.qualified} WHERE {where}", (key,), one=True)
        except self._psycopg.DataError:
            row = None          # an id the key's type cannot take names no row
        if row is None:
            raise _error(404, "not found", f"no row {key!r} in {table.name}")
        return _row(names, row)

    def _values(self, table: Table, document: dict) -> tuple[list[str], list[str], tuple]:
        from psycopg.types.json import Jsonb

        unknown = set(document) - table.column_names
        if unknown:
            raise _error(400, "bad request", f"unknown column(s) {', '.join(sorted(unknown))} in {table.name}")
        names, marks, values = [], [], []
        for name, value in document.items():
            category = table.categories[name]
            if category == "J":
                value = None if value is None else Jsonb(value)
            else:
                check_value(name, value, f" ({table.casts[name]})", arrays=category == "A")
                if isinstance(value, str) and "\x00" in value:
                    raise _error(400, "bad request", f"column {name}: PostgreSQL text cannot hold a NUL character")
            names.append(_q(name))
            marks.append(f"%s::{table.casts[name]}")
            values.append(value)
        return names, marks, tuple(values)

    async def insert(self, table: Table, document: dict) -> dict:
        names, marks, values = self._values(table, document)
        sql = f"INSERT INTO {table.qualified} ({', '.join(names)}) VALUES ({', '.join(marks)}) RETURNING *"
        columns, row, _ = await self._fetch(sql, values, one=True)
        return _row(columns, row)

    async def update(self, table: Table, key: str, document: dict) -> dict:
        where = self._item(table, key)
        names, marks, values = self._values(table, document)
        assignments = ", ".join(f"{name} = {mark}" for name, mark in zip(names, marks))
        sql = f"UPDATE {table.qualified} SET {assignments} WHERE {where} RETURNING *"
        try:
            columns, row, _ = await self._fetch(sql, (*values, key), one=True)
        except self._psycopg.DataError as exc:
            if _key_refused(exc, key):
                raise _error(404, "not found", f"no row {key!r} in {table.name}") from None
            raise
        if row is None:
            raise _error(404, "not found", f"no row {key!r} in {table.name}")
        return _row(columns, row)

    async def delete(self, table: Table, key: str) -> None:
        where = self._item(table, key)
        try:
            _, _, count = await self._fetch(f"DELETE FROM {table.qualified} WHERE {where}", (key,), one=True)
        except self._psycopg.DataError:
            count = 0
        if count == 0:
            raise _error(404, "not found", f"no row {key!r} in {table.name}")


def _unavailable() -> HttpError:
    return HttpError(503, {"error": "unavailable", "detail": "the dataset cannot be reached right now; retry"},
                     [(b"retry-after", RETRY_AFTER)])


async def _leave(manager, exc: BaseException | None) -> None:
    if exc is None:
        await manager.__aexit__(None, None, None)
    else:
        await manager.__aexit__(type(exc), exc, exc.__traceback__)


def _key_refused(exc, key: str) -> bool:
    """A DataError about the id itself (not about a value in the body)."""
    return repr(key)[1:-1] in str(exc) or f'"{key}"' in str(exc)


def _message(exc) -> str:
    diag = getattr(exc, "diag", None)
    parts = [getattr(diag, "message_primary", None) or " ".join(str(exc).split())]
    detail = getattr(diag, "message_detail", None)
    if detail:
        parts.append(detail)
    return ": ".join(parts)
