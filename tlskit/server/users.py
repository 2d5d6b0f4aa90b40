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

    store = open_user_store(Path("users.sqlite"))      # or parse_database("postgresql://...", "--db")
    token = store.add(NewUser("alice", token=True, methods=frozenset({"GET"})))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from tlskit.errors import InputError
from tlskit.server.stores import PostgresUrl, is_postgres

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


def check_limit(value: int | None, flag: str) -> int | None:
    if value is not None and value < 0:
        raise InputError(f"{flag} {value} is negative", fix="give 0 (unlimited) or a positive number")
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

    def __post_init__(self) -> None:
        check_name(self.name)
        check_limit(self.max_requests, "--max-requests")
        check_limit(self.max_concurrent, "--max-concurrent")
        if self.password is None and not self.token:
            raise InputError(f"user {self.name!r} would have no credential", fix="give --password-file F or --token")


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


# ---- password hashes ---------------------------------------------------------------------------

def hash_password(password: str) -> str:
    """argon2id with argon2-cffi's defaults (RFC 9106 second recommendation, ~50 ms)."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def password_scheme(stored: str) -> str:
    if stored.startswith("$argon2"):
        return "argon2"
    if stored.startswith(("$2y$", "$2b$", "$2a$")):
        return "bcrypt"
    if stored.startswith("$apr1$"):
        return "apr1"
    if stored.startswith("{SHA}"):
        return "sha1"
    return "unknown"


def verify_password(stored: str, password: str) -> bool:
    """Check a password against any hash format the store holds; False for any malformed hash."""
    scheme = password_scheme(stored)
    secret = password.encode("utf-8")
    try:
        if scheme == "argon2":
            from argon2 import PasswordHasher
            from argon2.exceptions import Argon2Error, InvalidHashError

            try:
                return PasswordHasher().verify(stored, secret)
            except (Argon2Error, InvalidHashError):
                return False
        if scheme == "bcrypt":
            import bcrypt

            # The Python bcrypt reads 72 bytes at most, as every bcrypt does; longer raises in bcrypt 5.
            return bcrypt.checkpw(secret[:72], stored.encode())
        if scheme == "apr1":
            return hmac.compare_digest(apr1_md5(secret, stored.split("$")[2].encode()).encode(), stored.encode())
        if scheme == "sha1":
            digest = base64.b64encode(hashlib.sha1(secret).digest()).decode()
            return hmac.compare_digest(("{SHA}" + digest).encode(), stored.encode())
    except (ValueError, IndexError, TypeError, UnicodeError):
        return False
    return False


_APR1_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def apr1_md5(password: bytes, salt: bytes) -> str:
    """Apache's ``$apr1$`` hash: Poul-Henning Kamp's MD5-crypt with the magic "$apr1$".

    Written out here because nothing in the standard library or our dependencies implements it,
    and htpasswd files made by ``htpasswd -m`` or ``openssl passwd -apr1`` use it.
    """
    magic = b"$apr1$"
    salt = salt[:8]
    final = hashlib.md5(password + salt + password).digest()
    context = password + magic + salt
    for i in range(len(password), 0, -16):
        context += final[:min(i, 16)]
    i = len(password)
    while i:
        context += b"\0" if i & 1 else password[:1]
        i >>= 1
    final = hashlib.md5(context).digest()
    # 1000 rounds "to slow things down" (1995's idea of slow).
    for i in range(1000):
        round_input = password if i & 1 else final
        if i % 3:
            round_input += salt
        if i % 7:
            round_input += password
        round_input += final if i & 1 else password
        final = hashlib.md5(round_input).digest()

    def to64(value: int, length: int) -> str:
        out = ""
        for _ in range(length):
            out += _APR1_ALPHABET[value & 0x3F]
            value >>= 6
        return out

    encoded = ""
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        encoded += to64(final[a] << 16 | final[b] << 8 | final[c], 4)
    encoded += to64(final[11], 2)
    return f"$apr1${salt.decode('ascii', 'replace')}${encoded}"


# ---- the schema --------------------------------------------------------------------------------

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
)
SCHEMA_VERSION = MIGRATIONS[-1].version
# The columns every reader selects, in the order _user() takes them.
USER_COLUMNS = "name, password_hash, methods, max_requests, max_concurrent"
SELECT_ALL_USERS = f"SELECT {USER_COLUMNS} FROM users ORDER BY name"
SELECT_ALL_TOKENS = "SELECT token_sha256, name FROM tokens"


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


class SqlUsers:
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
        return _user(row, tokens)

    def all(self) -> list[User]:
        return users_from_rows(self._execute(SELECT_ALL_USERS).fetchall(), self._execute(SELECT_ALL_TOKENS).fetchall())

    def require(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise InputError(f"no user {name!r} in {self.location}", fix="see `tlskit users list`")
        return user

    # writing

    def add(self, user: NewUser) -> str | None:
        """Create a user; returns the new token (to show once) when ``user.token`` is set."""
        if self.get(user.name) is not None:
            raise _exists(user.name)
        password_hash = hash_password(user.password) if user.password is not None else None
        new = new_token() if user.token else None
        try:
            with self._transaction():
                self._insert_user(user.name, password_hash, ",".join(sorted(user.methods)), user.max_requests,
                                  user.max_concurrent, time.time())
                if new:
                    self._insert_token(token_sha256(new), user.name, time.time())
        except self._duplicate:
            raise _exists(user.name) from None       # added by someone else a moment ago
        return new

    def _insert_user(self, name, password_hash, methods, max_requests, max_concurrent, created) -> None:
        self._execute("INSERT INTO users (name, password_hash, methods, max_requests, max_concurrent, created)"
                      " VALUES (?, ?, ?, ?, ?, ?)", (name, password_hash, methods, max_requests, max_concurrent, created))

    def _insert_token(self, digest: str, name: str, created: float) -> None:
        self._execute("INSERT INTO tokens (token_sha256, name, created) VALUES (?, ?, ?)", (digest, name, created))

    def update(self, name: str, *, password: str | None = None, new_token_: bool = False,
               revoke_tokens: bool = False, methods: frozenset[str] | None = None,
               max_requests: int | None = None, max_concurrent: int | None = None) -> str | None:
        """Change what is given; returns a new token when ``new_token_`` is set (older ones stay unless revoked)."""
        check_limit(max_requests, "--max-requests")
        check_limit(max_concurrent, "--max-concurrent")
        self.require(name)
        token = new_token() if new_token_ else None
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
            self._execute("DELETE FROM tokens WHERE name = ?", (name,))
            self._execute("DELETE FROM users WHERE name = ?", (name,))

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
                    self._execute("DELETE FROM tokens WHERE name = ?", (name,))
                    self._execute("DELETE FROM users WHERE name = ?", (name,))
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
                             "pass a tlskit users database with --db") from None
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


def schema_version(store: SqlUsers) -> int:
    """The highest migration applied to the store's database."""
    return store._execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def open_user_store(location: Path | PostgresUrl, create: bool = True) -> SqlUsers:
    """The store ``--db`` names: an SQLite file (``create=False``: only one that exists) or PostgreSQL.

    Raises InputError for a bad file, NetworkError when PostgreSQL cannot be reached.
    """
    if is_postgres(location):
        from tlskit.server.users_pg import PostgresUserStore

        return PostgresUserStore(location)
    return UserStore(Path(location), create=create)


def open_user_source(location: Path | PostgresUrl):
    """What the server reads users through: ``changed()``, ``all()``, ``location``, ``close()``.

    SQLite answers on the spot (a local file, cheap to ask); PostgreSQL is read by a background task into
    a snapshot (:class:`tlskit.server.users_pg.PostgresUserFeed`), so no request ever waits on the network.
    """
    if is_postgres(location):
        from tlskit.server.users_pg import PostgresUserFeed

        return PostgresUserFeed(location)
    return UserStore(Path(location))


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


def users_from_rows(user_rows, token_rows) -> list[User]:
    """Users from the rows of SELECT_ALL_USERS and SELECT_ALL_TOKENS (either engine)."""
    tokens: dict[str, list[str]] = {}
    for digest, name in token_rows:
        tokens.setdefault(name, []).append(digest)
    return [_user(row, tokens.get(row[0], [])) for row in user_rows]


def _user(row: tuple, tokens: list[str]) -> User:
    name, password_hash, methods, max_requests, max_concurrent = row
    return User(name=name, methods=frozenset(m for m in methods.split(",") if m), password_hash=password_hash,
                token_hashes=tokens, max_requests=max_requests, max_concurrent=max_concurrent)
