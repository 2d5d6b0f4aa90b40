"""Users of `tlskit serve`, kept in SQLite: hashed passwords, hashed tokens, methods and limits.

Secrets are never stored in clear:

- passwords are hashed with argon2id (new users) or kept as imported from an htpasswd file
  (bcrypt ``$2y$``, Apache ``$apr1$`` MD5, ``{SHA}``), the formats nginx ``auth_basic`` accepts;
- tokens are 256-bit random keys shown once; only their SHA-256 is stored. A slow hash buys nothing
  for a secret nobody can guess, and a fast one lets the server find the user by the hash.

The store is the one place that reads or writes the database. Two engines hold it: an SQLite file
(:class:`UserStore`, the default) and PostgreSQL (:class:`tlskit.server.users_pg.PostgresUserStore`,
for several instances). Both run the same SQL (:class:`SqlUsers`) over a schema that is versioned
(:data:`MIGRATIONS`, applied forward only when a store opens). :func:`open_user_store` opens either
from what ``--db`` names; :func:`open_user_source` is what the server reads users through.

Example::

    store = open_user_store(Path("users.sqlite"))      # or parse_database("postgresql://...", "db")
    token = store.add(NewUser("alice", token=True, methods=frozenset({"GET"})))
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from tlskit.errors import InputError, option
from tlskit.server.passwords import apr1_md5, hash_password, password_scheme, verify_password  # noqa: F401
from tlskit.server.stores import PostgresUrl, is_postgres
from tlskit.server.users_credentials import Added, CredentialSql, Pin, attach_credentials, new_s3_key_pair, with_secrets
# Re-exported: the schema's names are read through this module too.
from tlskit.server.users_schema import (MIGRATIONS, SCHEMA_VERSION, SELECT_ALL_TOKENS,  # noqa: F401
                                        SELECT_ALL_USERS, USER_COLUMNS, Migration, _Transaction, migrate_sqlite)

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Privileges that are no HTTP method; "all" does not grant them, they are named one by one.
METRICS_PRIVILEGE = "METRICS"   # may read GET /metrics
PRIVILEGES = (*ALL_METHODS, METRICS_PRIVILEGE)
DEFAULT_METHODS = ("GET",)
TOKEN_PREFIX = "tlk_"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-+")


@dataclass
class User:
    """One user as the server sees it. ``max_*`` None means "the server's default"; 0 means unlimited."""

    name: str
    methods: frozenset[str]
    password_hash: str | None = None
    token_hashes: list[str] = field(default_factory=list)
    max_requests: int | None = None
    max_concurrent: int | None = None
    cert_fingerprints: list[str] = field(default_factory=list)   # pinned client certificates (SHA-256 hex)
    s3_keys: dict[str, str] = field(default_factory=dict)        # S3 access key id -> secret (decrypted)
    s3_key_ids: list[str] = field(default_factory=list)          # every S3 access key id, opened or not

    def may(self, method: str) -> bool:
        # HEAD and OPTIONS read nothing that GET could not.
        if method in ("HEAD", "OPTIONS"):
            method = "GET"
        return method in self.methods

    def public(self) -> dict:
        """The stable JSON shape of `tlskit users list --json` (no hashes)."""
        return {
            "name": self.name,
            "methods": sorted(self.methods, key=PRIVILEGES.index),
            "password": password_scheme(self.password_hash) if self.password_hash else None,
            "tokens": len(self.token_hashes),
            "max_requests": self.max_requests,
            "max_concurrent": self.max_concurrent,
            "certificates": len(self.cert_fingerprints),
            "s3_keys": list(self.s3_key_ids),
        }


def parse_methods(text: str | list[str] | None) -> frozenset[str]:
    """"GET,POST" or ["GET", "POST"] or "all" -> a set of methods, refusing unknown ones."""
    if text is None:
        return frozenset(DEFAULT_METHODS)
    parts = text if isinstance(text, list) else [text]
    methods = {m.strip().upper() for part in parts for m in part.split(",") if m.strip()}
    if "ALL" in methods or "*" in methods:
        return frozenset(ALL_METHODS) | (methods & {METRICS_PRIVILEGE})
    unknown = methods - set(PRIVILEGES)
    if unknown or not methods:
        raise InputError(f"unknown method {', '.join(sorted(unknown)) or '(none)'}",
                         fix=f"use a comma-separated list of {','.join(PRIVILEGES)} (or 'all')")
    return frozenset(methods)


def check_name(name: str) -> str:
    if not name or len(name) > 128 or not set(name) <= _NAME_CHARS:
        raise InputError(f"invalid user name {name!r}",
                         fix="use letters, digits and . _ @ - + (no ':' since Basic auth splits on it)")
    return name


def check_limit(value: int | None, name: str) -> int | None:
    if value is not None and value < 0:
        raise InputError(f"{option(name)} {value} is negative", fix="give 0 (unlimited) or a positive number")
    return value


@dataclass(frozen=True)
class NewUser:
    """A user to add, checked when made: a bad name, a negative limit or no credential at all is refused
    before any database is opened, let alone created."""

    name: str
    password: str | None = None
    token: bool = False          # make a token (returned once by UserStore.add)
    methods: frozenset[str] = frozenset(DEFAULT_METHODS)
    max_requests: int | None = None
    max_concurrent: int | None = None
    certificates: tuple[Pin, ...] = ()   # pinned client certificates: enough on their own
    s3_key: bool = False         # make an S3 key pair (returned once by UserStore.create)

    def __post_init__(self) -> None:
        check_name(self.name)
        check_limit(self.max_requests, "max_requests")
        check_limit(self.max_concurrent, "max_concurrent")
        if self.password is None and not self.token and not self.certificates and not self.s3_key:
            ways = f"{option('password_file')} F, {option('token')}, {option('cert')} FILE or {option('s3_key')}"
            raise InputError(f"user {self.name!r} would have no credential", fix=f"give {ways}")


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


# ---- the store ---------------------------------------------------------------------------------

@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)   # {"line": n, "name": ..., "reason": ...}


@dataclass
class CopyReport:
    """What :meth:`SqlUsers.copy_from` did: users copied (with how many tokens), users left as they were."""

    copied: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    tokens: int = 0


class StoreUnavailable(Exception):
    """The users database cannot be read right now (corrupt, missing, unreadable): answer 503, not 500."""


class SqlUsers(CredentialSql):
    """The users' SQL, one copy for both engines: DB-API connections, ``?`` placeholders.

    A subclass opens ``_db``, names itself in ``location`` and says which exception a duplicate key
    raises (``_duplicate``); PostgreSQL's store rewrites the placeholders in :meth:`_execute`.
    """

    location: str
    _duplicate: tuple[type[Exception], ...] = ()

    def _execute(self, sql: str, params: tuple = ()):
        return self._db.execute(sql, params)

    def _transaction(self):
        raise NotImplementedError

    def close(self) -> None:
        self._db.close()

    # reading

    def get(self, name: str) -> User | None:
        row = self._execute(f"SELECT {USER_COLUMNS} FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        tokens = [r[0] for r in self._execute("SELECT token_sha256 FROM tokens WHERE name = ?", (name,)).fetchall()]
        return attach_credentials([_user(row, tokens)], *self.credential_rows(name), self.opener())[0]

    def all(self) -> list[User]:
        return users_from_rows(self._execute(SELECT_ALL_USERS).fetchall(), self._execute(SELECT_ALL_TOKENS).fetchall(),
                               *self.credential_rows(), self.opener())

    def require(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise InputError(f"no user {name!r} in {self.location}", fix="see `tlskit users list`")
        return user

    # writing

    def add(self, user: NewUser) -> str | None:
        """Create a user; returns the new token (to show once) when ``user.token`` is set."""
        return self.create(user).token

    def create(self, user: NewUser) -> Added:
        """Create a user with all its credentials in one transaction; returns what is shown once."""
        if self.get(user.name) is not None:
            raise _exists(user.name)
        password_hash = hash_password(user.password) if user.password is not None else None
        added = Added(new_token() if user.token else None, new_s3_key_pair() if user.s3_key else None)
        try:
            with self._transaction():
                self._insert_user(user.name, password_hash, ",".join(sorted(user.methods)), user.max_requests,
                                  user.max_concurrent, time.time())
                if added.token:
                    self._insert_token(token_sha256(added.token), user.name, time.time())
                self.insert_credentials(user.name, user.certificates, added.s3_key)
        except self._duplicate:
            raise _exists(user.name) from None       # added by someone else a moment ago
        return added

    def _insert_user(self, name, password_hash, methods, max_requests, max_concurrent, created) -> None:
        self._execute("INSERT INTO users (name, password_hash, methods, max_requests, max_concurrent, created)"
                      " VALUES (?, ?, ?, ?, ?, ?)", (name, password_hash, methods, max_requests, max_concurrent, created))

    def _insert_token(self, digest: str, name: str, created: float) -> None:
        self._execute("INSERT INTO tokens (token_sha256, name, created) VALUES (?, ?, ?)", (digest, name, created))

    def update(self, name: str, *, password: str | None = None, issue_token: bool = False,
               revoke_tokens: bool = False, methods: frozenset[str] | None = None,
               max_requests: int | None = None, max_concurrent: int | None = None) -> str | None:
        """Change what is given; returns a new token when ``issue_token`` is set (older ones stay unless revoked)."""
        check_limit(max_requests, "max_requests")
        check_limit(max_concurrent, "max_concurrent")
        self.require(name)
        token = new_token() if issue_token else None
        # Hash before the transaction: the database stays unlocked during the slow part.
        password_hash = hash_password(password) if password is not None else None
        with self._transaction():
            if password_hash is not None:
                self._execute("UPDATE users SET password_hash = ? WHERE name = ?", (password_hash, name))
            if methods is not None:
                self._execute("UPDATE users SET methods = ? WHERE name = ?", (",".join(sorted(methods)), name))
            if max_requests is not None:
                self._execute("UPDATE users SET max_requests = ? WHERE name = ?", (max_requests, name))
            if max_concurrent is not None:
                self._execute("UPDATE users SET max_concurrent = ? WHERE name = ?", (max_concurrent, name))
            if revoke_tokens:
                self._execute("DELETE FROM tokens WHERE name = ?", (name,))
            if token:
                self._insert_token(token_sha256(token), name, time.time())
        return token

    def remove(self, name: str) -> None:
        self.require(name)
        with self._transaction():
            self.delete_rows_of(name)

    def import_htpasswd(self, text: str, methods: frozenset[str] | None = None) -> ImportReport:
        """Import ``name:hash`` lines as nginx reads them; existing users get the file's password hash."""
        report = ImportReport()
        entries = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, stored = line.partition(":")
            # htpasswd lines may carry a trailing ":comment" field.
            stored = stored.split(":", 1)[0]
            if not sep or not stored:
                report.skipped.append({"line": number, "name": name, "reason": "not name:hash"})
                continue
            scheme = password_scheme(stored)
            if scheme == "unknown":
                report.skipped.append({"line": number, "name": name,
                                       "reason": "unsupported hash (crypt(3) DES or plain text); "
                                                 "use bcrypt (htpasswd -B) or apr1 (htpasswd -m)"})
                continue
            try:
                check_name(name)
            except InputError as exc:
                report.skipped.append({"line": number, "name": name, "reason": exc.what})
                continue
            entries.append((name, stored))
        with self._transaction():
            for name, stored in entries:
                exists = self._execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone()
                if exists:
                    self._execute("UPDATE users SET password_hash = ? WHERE name = ?", (stored, name))
                    report.updated.append(name)
                else:
                    self._insert_user(name, stored, ",".join(sorted(methods or DEFAULT_METHODS)), None, None,
                                      time.time())
                    report.added.append(name)
        return report

    # copying between stores

    def export(self) -> tuple[list[tuple], list[tuple]]:
        """Every user and token row as stored (hashes, limits, creation times): what copy_from takes."""
        users = self._execute(f"SELECT {USER_COLUMNS}, created FROM users ORDER BY name").fetchall()
        tokens = self._execute("SELECT token_sha256, name, created FROM tokens ORDER BY name").fetchall()
        return [tuple(row) for row in users], [tuple(row) for row in tokens]

    def copy_from(self, source: SqlUsers, replace: bool = False) -> CopyReport:
        """Copy every user of ``source`` here with its hashes, tokens, methods and limits, re-hashing nothing.

        A user that exists here already is left as it is, unless ``replace``. One transaction: all or nothing.
        """
        users, tokens = source.export()
        credentials = source.export_credentials()
        tokens_of: dict[str, list[tuple]] = {}
        for row in tokens:
            tokens_of.setdefault(row[1], []).append(row)
        report = CopyReport()
        with self._transaction():
            for row in users:
                name = row[0]
                exists = self._execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is not None
                if exists and not replace:
                    report.skipped.append(name)
                    continue
                if exists:
                    self.delete_rows_of(name)
                    report.replaced.append(name)
                else:
                    report.copied.append(name)
                self._insert_user(*row)
                for digest, _, created in tokens_of.get(name, []):
                    owner = self._execute("SELECT name FROM tokens WHERE token_sha256 = ?", (digest,)).fetchone()
                    if owner is not None:
                        raise InputError(f"a token of {name} in {source.location} already belongs to {owner[0]} "
                                         f"in {self.location}", fix="remove that user here first; nothing was copied")
                    self._insert_token(digest, name, created)
                    report.tokens += 1
                self.import_credentials(name, credentials)
        return report


def _exists(name: str) -> InputError:
    return InputError(f"user {name!r} already exists", fix="change it with `tlskit users set`")


class UserStore(SqlUsers):
    """Users in one SQLite file. Opening creates the file (0600) and the tables when missing.

    ``create=False`` opens an existing database only; the server opens it that way again whenever the
    file on disk is replaced (:meth:`changed`), so a restored backup is read and not recreated empty.
    """

    _duplicate = (sqlite3.IntegrityError,)

    def __init__(self, path: Path, create: bool = True) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        if not self.path.exists():
            if not create:
                raise InputError(f"users database {self.path} does not exist",
                                 fix="add a user first: tlskit users add NAME --token")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The file holds password hashes: private from the first byte.
            self.path.touch(mode=0o600)
        try:
            self._db = self._connect(create=True)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot open users database {self.path}", str(exc),
                             f"pass a tlskit users database with {option('db')}") from None
        self._file = _file_state(self.path)
        self._version: int | None = None

    def _connect(self, create: bool) -> sqlite3.Connection:
        if create:
            db = sqlite3.connect(str(self.path), timeout=10, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA foreign_keys = ON")
            migrate_sqlite(db)
            return db
        db = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=10, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute("SELECT 1 FROM users LIMIT 1").fetchall()
            db.execute("SELECT 1 FROM tokens LIMIT 1").fetchall()
            db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error:
            db.close()
            raise
        return db

    def changed(self) -> bool:
        """True when the users changed since the last call: a commit by another process, or another file
        put in place of this one (renamed over it, deleted and recreated). Raises StoreUnavailable."""
        state = _file_state(self.path)
        if state is None:
            raise StoreUnavailable(f"{self.path} is missing")
        if state[:2] != self._file[:2]:
            self._reopen(state)
            return True
        self._file = state
        try:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if _transient(exc):
                return False
            raise StoreUnavailable(f"{self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreUnavailable(f"{self.path}: {exc}") from None
        if version != self._version:
            self._version = version
            return True
        return False

    def _reopen(self, state: tuple) -> None:
        busy = self._busy_ms
        try:
            db = self._connect(create=False)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"{self.path}: {exc}") from None
        self._db.close()
        self._db = db
        self._file = state
        self._version = None
        if busy is not None:
            self.set_busy_timeout(busy)

    _busy_ms: int | None = None

    def set_busy_timeout(self, milliseconds: int) -> None:
        """How long a read waits for a writer's lock. The server keeps it short: it reads on its event loop."""
        self._busy_ms = int(milliseconds)
        self._db.execute(f"PRAGMA busy_timeout = {int(milliseconds)}")

    def data_version(self) -> int:
        """Changes whenever another connection (the `tlskit users` CLI) commits: cheap to poll."""
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    def _transaction(self):
        return _Transaction(self._db)


def schema_version(store: SqlUsers) -> int:
    """The highest migration applied to the store's database."""
    return store._execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]


def open_user_store(location: Path | PostgresUrl, create: bool = True, state_dir: Path | None = None) -> SqlUsers:
    """The store ``--db`` names: an SQLite file (``create=False``: only one that exists) or PostgreSQL;
    it seals S3 secrets with the key file :func:`~.users_credentials.with_secrets` finds.

    Raises InputError for a bad file, NetworkError when PostgreSQL cannot be reached.
    """
    if is_postgres(location):
        from tlskit.server.users_pg import PostgresUserStore

        return with_secrets(PostgresUserStore(location), location, state_dir)
    return with_secrets(UserStore(Path(location), create=create), location, state_dir)


def open_user_source(location: Path | PostgresUrl, state_dir: Path | None = None):
    """What the server reads users through: ``changed()``, ``all()``, ``location``, ``close()`` (S3 secrets
    opened as :func:`~.users_credentials.with_secrets` says).

    SQLite answers on the spot (a local file, cheap to ask); PostgreSQL is read by a background task into
    a snapshot (:class:`tlskit.server.users_pg.PostgresUserFeed`), so no request ever waits on the network.
    """
    if is_postgres(location):
        from tlskit.server.users_pg import PostgresUserFeed

        return PostgresUserFeed(location, secret_box=with_secrets(None, location, state_dir))
    return with_secrets(UserStore(Path(location)), location, state_dir, open_secrets=True)


def _file_state(path: Path) -> tuple[int, int, int, int] | None:
    """(device, inode, size, mtime): a rename or a recreate changes the first two."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _transient(exc: sqlite3.OperationalError) -> bool:
    """A writer holds the lock: keep what was read last and try again on the next poll."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def users_from_rows(user_rows, token_rows, pin_rows=(), key_rows=(), box=None) -> list[User]:
    """Users from the rows of SELECT_ALL_USERS, SELECT_ALL_TOKENS, SELECT_ALL_PINS and SELECT_ALL_S3_KEYS."""
    tokens: dict[str, list[str]] = {}
    for digest, name in token_rows:
        tokens.setdefault(name, []).append(digest)
    return attach_credentials([_user(row, tokens.get(row[0], [])) for row in user_rows], pin_rows, key_rows, box)


def _user(row: tuple, tokens: list[str]) -> User:
    name, password_hash, methods, max_requests, max_concurrent = row
    return User(name=name, methods=frozenset(m for m in methods.split(",") if m), password_hash=password_hash,
                token_hashes=tokens, max_requests=max_requests, max_concurrent=max_concurrent)
