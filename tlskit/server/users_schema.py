"""The users schema, versioned: its forward-only migrations for SQLite and PostgreSQL, the SQL every
reader of it runs, and how an SQLite file is brought up to date (PostgreSQL's is in :mod:`.users_pg`).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from tlskit.server import users_credentials

@dataclass(frozen=True)
class Migration:
    """One step of the users schema, written for each engine.

    Steps run in order, each once, in the transaction that records it in ``schema_migrations``; an
    applied step is never edited, a change is a new step at the end. Steps only add (a table, a column
    that is NULL-able or has a DEFAULT, an index, a trigger): an instance still running an older tlskit
    reads its own columns by name and keeps working on a newer schema during a rolling upgrade.
    PostgreSQL keeps the tables in a schema of their own, ``tlskit``, apart from any dataset.
    """

    version: int
    description: str
    sqlite: tuple[str, ...] = ()
    postgresql: tuple[str, ...] = ()


MIGRATIONS = (
    Migration(
        1, "users and tokens",
        sqlite=(
            "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, password_hash TEXT, methods TEXT NOT NULL,"
            " max_requests INTEGER, max_concurrent INTEGER, created REAL NOT NULL)",
            "CREATE TABLE IF NOT EXISTS tokens (token_sha256 TEXT PRIMARY KEY,"
            " name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE, created REAL NOT NULL)",
        ),
        postgresql=(
            "CREATE TABLE tlskit.users (name text PRIMARY KEY, password_hash text, methods text NOT NULL,"
            " max_requests bigint, max_concurrent bigint, created double precision NOT NULL)",
            "CREATE TABLE tlskit.tokens (token_sha256 text PRIMARY KEY, name text NOT NULL"
            " REFERENCES tlskit.users (name) ON DELETE CASCADE ON UPDATE CASCADE, created double precision NOT NULL)",
        )),
    Migration(
        2, "tokens found by their user",
        sqlite=("CREATE INDEX IF NOT EXISTS tokens_name ON tokens (name)",),
        postgresql=("CREATE INDEX tokens_name ON tlskit.tokens (name)",)),
    # SQLite tells readers about commits itself (PRAGMA data_version); PostgreSQL gets a change counter
    # and a notification from every statement that changes users or tokens, whoever runs it (tlskit
    # users, psql), so every instance rereads within a moment.
    Migration(
        3, "change counter and notifications",
        postgresql=(
            "CREATE TABLE tlskit.changes (one boolean PRIMARY KEY DEFAULT true CHECK (one), version bigint NOT NULL)",
            "INSERT INTO tlskit.changes (version) VALUES (0)",
            "CREATE FUNCTION tlskit.users_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " UPDATE tlskit.changes SET version = version + 1; PERFORM pg_notify('tlskit_users', '');"
            " RETURN NULL; END $$",
            "CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tlskit.users"
            " FOR EACH STATEMENT EXECUTE FUNCTION tlskit.users_changed()",
            "CREATE TRIGGER tokens_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tlskit.tokens"
            " FOR EACH STATEMENT EXECUTE FUNCTION tlskit.users_changed()",
        )),
    Migration(4, users_credentials.DESCRIPTION, sqlite=users_credentials.SQLITE_MIGRATION,
              postgresql=users_credentials.POSTGRESQL_MIGRATION),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
# The columns every reader selects, in the order _user() takes them.
USER_COLUMNS = "name, password_hash, methods, max_requests, max_concurrent"
SELECT_ALL_USERS = f"SELECT {USER_COLUMNS} FROM users ORDER BY name"
SELECT_ALL_TOKENS = "SELECT token_sha256, name FROM tokens"


def migrate_sqlite(db: sqlite3.Connection) -> int:
    """Bring an SQLite users database to :data:`SCHEMA_VERSION`; returns the version it was at.

    A database made before the schema was versioned has the tables of step 1 and no record: step 1
    (``IF NOT EXISTS``) records it without touching the data.
    """
    def current() -> int:
        try:
            return db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    found = current()
    if found >= SCHEMA_VERSION:
        return found
    with _Transaction(db):       # BEGIN IMMEDIATE: two processes opening a new file migrate one at a time
        db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                   " description TEXT NOT NULL, applied REAL NOT NULL)")
        found = current()
        for step in MIGRATIONS:
            if step.version > found:
                for statement in step.sqlite:
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations (version, description, applied) VALUES (?, ?, ?)",
                           (step.version, step.description, time.time()))
    return found


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
