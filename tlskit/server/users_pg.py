"""Users in PostgreSQL, for several `tlskit serve` instances: the same store, and how the server reads it.

Driver: psycopg 3. It is libpq underneath, so ``--db`` means exactly what it means to ``psql``: the
URL's parameters (``sslmode``, ``target_session_attrs``...), ``PGPASSWORD``, ``~/.pgpass``, service
files; one driver has both the blocking API the `tlskit users` commands want and the asyncio API the
server needs (``LISTEN``/``NOTIFY`` included); and its binary wheel carries its own libpq.

- :class:`PostgresUserStore` is :class:`~tlskit.server.users.SqlUsers` on a blocking connection: what
  `tlskit users` and ``users migrate`` use. Tables live in the schema ``tlskit``.
- :class:`PostgresUserFeed` is what the server's :class:`~tlskit.server.auth.Authenticator` reads: a
  snapshot of every user, loaded once at start and then kept fresh by a background task on the event
  loop that ``LISTEN``s for the notification the schema's triggers send on every change, and polls the
  change counter every second besides (a notification sent while the connection was down is not lost).
  A request never waits on PostgreSQL. When the database cannot be reached, :meth:`changed` raises
  :class:`~tlskit.server.users.StoreUnavailable` and the Authenticator's outage rules apply; the task
  reconnects by itself.
"""

from __future__ import annotations

import asyncio
import time

from tlskit.errors import InputError, NetworkError, option
from tlskit.server.stores import PostgresUrl
from tlskit.server.users import (MIGRATIONS, SCHEMA_VERSION, SELECT_ALL_TOKENS, SELECT_ALL_USERS, SqlUsers,
                                 StoreUnavailable, User, users_from_rows)
from tlskit.server.users_credentials import SELECT_ALL_PINS, SELECT_ALL_S3_KEYS

CHANNEL = "tlskit_users"
# pg_advisory_lock key of schema migrations: two instances starting on an empty database migrate in turn.
MIGRATION_LOCK = 0x746C736B6974     # "tlskit"
POLL_INTERVAL = 1.0       # seconds between two reads of the change counter (notifications come sooner)
QUERY_TIMEOUT = 3.0       # seconds a read of the feed may take before PostgreSQL counts as unreachable


def describe(exc: BaseException) -> str:
    """One line for a driver error (libpq's messages run over several lines)."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "no answer in time"
    return " ".join(str(exc).split()) or type(exc).__name__


class PostgresUserStore(SqlUsers):
    """Users in a PostgreSQL database (schema ``tlskit``, created and migrated when opened)."""

    def __init__(self, url: PostgresUrl) -> None:
        import psycopg

        self.url = url
        self.location = str(url)
        self._duplicate = (psycopg.errors.UniqueViolation,)
        self._psycopg = psycopg
        self._queries: dict[str, str] = {}
        try:
            self._db = psycopg.connect(**url.connect_options(), autocommit=True)
            migrate_postgres(self._db)
            self._db.execute("SET search_path TO tlskit")
        except psycopg.Error as exc:
            raise _store_error(exc, url) from None

    def _execute(self, sql: str, params: tuple = ()):
        query = self._queries.get(sql)
        if query is None:
            query = self._queries[sql] = sql.replace("?", "%s")
        try:
            return self._db.execute(query, params)
        except self._duplicate:
            raise
        except self._psycopg.Error as exc:
            raise _store_error(exc, self.url) from None

    def _transaction(self):
        return _Transaction(self)

    def change_version(self) -> int:
        return self._execute("SELECT version FROM changes").fetchone()[0]


class _Transaction:
    def __init__(self, store: PostgresUserStore) -> None:
        self.store = store
        self.inner = None

    def __enter__(self) -> None:
        try:
            self.inner = self.store._db.transaction()
            self.inner.__enter__()
        except self.store._psycopg.Error as exc:
            raise _store_error(exc, self.store.url) from None

    def __exit__(self, kind, value, traceback):
        try:
            return self.inner.__exit__(kind, value, traceback)
        except self.store._duplicate:
            raise
        except self.store._psycopg.Error as exc:
            raise _store_error(exc, self.store.url) from None


def _store_error(exc, url: PostgresUrl):
    import psycopg

    if isinstance(exc, psycopg.OperationalError):
        return NetworkError(f"cannot use the users database {url}", describe(exc),
                            f"check {option('db')}, and that PostgreSQL runs and lets this user in")
    if getattr(exc, "sqlstate", None) is None:       # libpq refused the URL itself (a bad parameter)
        return InputError(f"bad {option('db')} URL {url}", describe(exc), "fix the URL's parameters (see libpq's list)")
    return InputError(f"the users database {url} refused", describe(exc),
                      "the database user needs CREATE on the database (the first time) and rights on schema tlskit")


def migrate_postgres(db) -> int:
    """Bring the ``tlskit`` schema to :data:`SCHEMA_VERSION` (a blocking autocommit connection);
    returns the version it was at."""
    def current() -> int:
        exists = db.execute("SELECT to_regclass('tlskit.schema_migrations')").fetchone()[0]
        if exists is None:
            return 0
        return db.execute("SELECT coalesce(max(version), 0) FROM tlskit.schema_migrations").fetchone()[0]

    found = current()
    if found >= SCHEMA_VERSION:
        return found
    # The lock is taken before the transaction begins: a transaction that begins sees the catalog as the
    # previous holder committed it (one that waited for a lock inside would still see it as it was).
    db.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        with db.transaction():
            found = current()
            db.execute("CREATE SCHEMA IF NOT EXISTS tlskit")
            db.execute("CREATE TABLE IF NOT EXISTS tlskit.schema_migrations (version integer PRIMARY KEY,"
                       " description text NOT NULL, applied double precision NOT NULL)")
            for step in MIGRATIONS:
                if step.version > found:
                    for statement in step.postgresql:
                        db.execute(statement)
                    db.execute("INSERT INTO tlskit.schema_migrations (version, description, applied)"
                               " VALUES (%s, %s, %s)", (step.version, step.description, time.time()))
    finally:
        db.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return found


class PostgresUserFeed:
    """The users as the server sees them: a snapshot kept fresh in the background (see the module doc)."""

    # changed() reads memory, so the Authenticator asks on every request: an outage the feed noticed
    # counts from the next request, not from the next second (which could vouch for one more credential).
    refresh_interval = 0.0

    def __init__(self, url: PostgresUrl, poll_interval: float = POLL_INTERVAL,
                 query_timeout: float = QUERY_TIMEOUT, secret_box=None) -> None:
        self.url = url
        self.location = str(url)
        self.poll_interval = poll_interval
        self.query_timeout = query_timeout
        self.secret_box = secret_box        # opens the S3 secrets (tlskit.server.s3secrets)
        store = PostgresUserStore(url)      # creates the schema on first use; NetworkError when unreachable
        store.secret_box, store.open_secrets = secret_box, secret_box is not None
        try:
            self._version = store.change_version()
            self._users = store.all()
        finally:
            store.close()
        self._fresh = True                  # a snapshot the reader has not taken yet
        self._down: str | None = None
        self._task: asyncio.Task | None = None
        self.reloads = 0

    # what the Authenticator asks

    def set_busy_timeout(self, milliseconds: int) -> None:
        """Nothing waits here: reads happen in the background task."""

    def changed(self) -> bool:
        """True once for every new snapshot; raises StoreUnavailable while PostgreSQL cannot be reached."""
        if self._task is None:
            self._start()
        if self._down is not None:
            raise StoreUnavailable(f"{self.location}: {self._down}")
        if self._fresh:
            self._fresh = False
            return True
        return False

    def all(self) -> list[User]:
        return list(self._users)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    # the background task

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return       # read outside the server (a test, a tool): the snapshot of the start stays
        self._task = loop.create_task(self._watch(), name="tlskit-users-feed")

    async def _watch(self) -> None:
        import psycopg

        backoff = 0.25
        while True:
            try:
                connection = await asyncio.wait_for(
                    psycopg.AsyncConnection.connect(**self.url.connect_options(connect_timeout=3), autocommit=True),
                    self.query_timeout + 3)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._mark_down(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            try:
                async with connection:
                    await asyncio.wait_for(connection.execute("SET search_path TO tlskit"), self.query_timeout)
                    await asyncio.wait_for(connection.execute(f"LISTEN {CHANNEL}"), self.query_timeout)
                    await self._poll(connection)
                    self._down = None
                    backoff = 0.25
                    while True:
                        async for _ in connection.notifies(timeout=self.poll_interval, stop_after=1):
                            pass
                        await self._poll(connection)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._mark_down(exc)
                await asyncio.sleep(backoff)

    async def _poll(self, connection) -> None:
        """Read the change counter; on a change, read every user and token in one snapshot."""
        async def read() -> None:
            if await _fetch_version(connection) == self._version:
                return
            async with connection.transaction():
                await connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                version = await _fetch_version(connection)
                users = await (await connection.execute(SELECT_ALL_USERS)).fetchall()
                tokens = await (await connection.execute(SELECT_ALL_TOKENS)).fetchall()
                pins = await (await connection.execute(SELECT_ALL_PINS)).fetchall()
                keys = await (await connection.execute(SELECT_ALL_S3_KEYS)).fetchall()
            self._users = users_from_rows(users, tokens, pins, keys, self.secret_box)
            self._version = version
            self._fresh = True
            self.reloads += 1

        await asyncio.wait_for(read(), self.query_timeout)

    def _mark_down(self, exc: BaseException) -> None:
        # The Authenticator logs the outage (and the recovery) once; this only keeps the reason.
        self._down = describe(exc)


async def _fetch_version(connection) -> int:
    cursor = await connection.execute("SELECT version FROM changes")
    return (await cursor.fetchone())[0]
