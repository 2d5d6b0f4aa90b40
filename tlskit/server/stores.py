"""Where `tlskit serve` keeps its state, as the user names it: parsed once, here.

- ``--db`` and ``--dataset`` take an SQLite path or a ``postgresql://`` URL (:func:`parse_database`).
  The URL goes to libpq as it is, so everything libpq reads works: ``sslmode`` and the other
  parameters, the password from the URL, ``PGPASSWORD`` or ``~/.pgpass`` (``PGPASSFILE``).
- ``--limits-store`` takes ``memory``, ``sqlite:PATH`` or ``redis://`` / ``rediss://``
  (:func:`parse_limits_store`). A ``rediss://`` URL verifies the server's certificate and name against
  the system's trust store, or against the CA file its ``ssl_ca_certs`` parameter names.

Locations print without their password (``str()``), so they may go into banners, logs and errors.
Each kind of state opens its own engine from these (:mod:`.users`, :mod:`.limits`, :mod:`.dataset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tlskit.errors import InputError, option

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
REDIS_SCHEMES = ("redis://", "rediss://")
# The URL parameters a --limits-store URL may carry: redis-py's own names for its TLS options, so the URL
# means what it means to redis-py. Anything else would reach redis-py only at the first connection, as a
# TypeError that looks like an outage; the timeouts are the limiter's to set.
REDIS_TLS_FILES = ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile")
REDIS_TLS_OPTIONS = {"ssl_check_hostname": ("true", "false"), "ssl_cert_reqs": ("required", "optional", "none")}
CONNECT_TIMEOUT = 5      # seconds libpq may take to connect, unless the URL says otherwise


@dataclass(frozen=True)
class PostgresUrl:
    """A libpq connection URI, kept as given (libpq is the one that reads it)."""

    conninfo: str

    def __str__(self) -> str:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(self.conninfo)
        user = f"{params['user']}@" if params.get("user") else ""
        host = params.get("host") or "localhost"
        port = f":{params['port']}" if params.get("port") else ""
        return f"postgresql://{user}{host}{port}/{params.get('dbname') or ''}"

    def connect_options(self, **defaults) -> dict:
        """Keyword arguments for ``psycopg.connect``: the URL, plus ``defaults`` the URL does not set."""
        from psycopg.conninfo import conninfo_to_dict

        given = conninfo_to_dict(self.conninfo)
        options = {"connect_timeout": CONNECT_TIMEOUT, "application_name": "tlskit", **defaults}
        return {"conninfo": self.conninfo, **{k: v for k, v in options.items() if k not in given}}


def is_postgres(value) -> bool:
    return isinstance(value, PostgresUrl) or (isinstance(value, str) and value.startswith(POSTGRES_SCHEMES))


def parse_database(value, label: str) -> Path | PostgresUrl | None:
    """An SQLite path or a PostgreSQL URL; None stays None (the default location). ``label`` is how a
    message names the option, e.g. ``option("db")``."""
    if value is None or isinstance(value, PostgresUrl):
        return value
    text = str(value)
    if not text.startswith(POSTGRES_SCHEMES):
        if "://" in text:
            raise InputError(f"{label} {redact_url(text)} is not an SQLite path nor a postgresql:// URL",
                             fix="give a file path, or postgresql://user@host:port/dbname")
        return Path(text)
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(text)
    except Exception:   # psycopg.ProgrammingError; its text may quote the password, so it is left out
        raise InputError(f"bad {label} URL {redact_url(text)}", "libpq cannot read it",
                         "use postgresql://user[:password]@host:port/dbname[?sslmode=...]") from None
    if not params.get("dbname"):
        raise InputError(f"{label} {redact_url(text)} names no database",
                         fix="end the URL with /DBNAME, e.g. postgresql://tlskit@db:5432/tlskit")
    return PostgresUrl(text)


@dataclass(frozen=True)
class RedisUrl:
    url: str

    def __str__(self) -> str:
        return redact_url(self.url)


@dataclass(frozen=True)
class LimitsStore:
    """``memory`` (one process), ``sqlite`` (a file shared by the processes of one machine) or ``redis``."""

    kind: str
    path: Path | None = None
    redis: RedisUrl | None = None

    def __str__(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:{self.path}"
        return str(self.redis) if self.kind == "redis" else "memory"


def parse_limits_store(value) -> LimitsStore | None:
    if value is None or isinstance(value, LimitsStore):
        return value
    text = str(value).strip()
    if text == "memory":
        return LimitsStore("memory")
    if text.startswith("sqlite:"):
        path = text[len("sqlite:"):]
        if not path:
            raise InputError(f"{option('limits_store')} sqlite: names no file", fix="give sqlite:/path/to/limits.sqlite")
        return LimitsStore("sqlite", path=Path(path))
    if text.startswith(REDIS_SCHEMES):
        try:
            from redis.asyncio.connection import parse_url

            options = parse_url(text)
        except (ValueError, TypeError) as exc:
            raise InputError(f"bad {option('limits_store')} URL {redact_url(text)}", str(exc),
                             "use redis://[:password@]host:port/db or rediss://...") from None
        _check_redis_options(text, options)
        return LimitsStore("redis", redis=RedisUrl(text))
    raise InputError(f"bad {option('limits_store')} {redact_url(text)!r}",
                     fix="give memory, sqlite:PATH or redis://host:port/db (rediss:// for TLS)")


def _check_redis_options(text: str, options: dict) -> None:
    from urllib.parse import parse_qs

    shown = redact_url(text)
    # Only the query's names: redis-py would also take a password or db from it, which the URL's
    # masking (it masks the password before the host) would then show.
    for name in parse_qs(urlsplit(text).query, keep_blank_values=True):
        value = options.get(name, "")
        if name not in REDIS_TLS_FILES and name not in REDIS_TLS_OPTIONS:
            bare = redact_url(urlunsplit(urlsplit(text)._replace(query="")))     # its value may be a secret
            raise InputError(f"{option('limits_store')} {bare}: unknown parameter {name!r}",
                             fix=f"the URL takes {', '.join((*REDIS_TLS_FILES, *REDIS_TLS_OPTIONS))} (with rediss://)")
        if not text.startswith("rediss://"):
            raise InputError(f"{option('limits_store')} {shown}: {name} is a TLS option",
                             fix="use rediss:// for Redis over TLS")
        if name in REDIS_TLS_FILES and not (value and Path(value).exists()):
            raise InputError(f"{option('limits_store')} {shown}: {name} {value} does not exist",
                             fix="give the path of the PEM file (ssl_ca_certs: the CA that issued Redis's certificate)")
        allowed = REDIS_TLS_OPTIONS.get(name)
        if allowed and str(value).lower() not in allowed and value not in (True, False):
            raise InputError(f"{option('limits_store')} {shown}: {name}={value}", fix=f"give {' or '.join(allowed)}")


def redact_url(text: str) -> str:
    """A URL without its password, for messages (unparseable text comes back as it was)."""
    try:
        parts = urlsplit(text)
        if parts.password is None:
            return text
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}" if user else f":***@{netloc}"))
    except ValueError:
        return text
