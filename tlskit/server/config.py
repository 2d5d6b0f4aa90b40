"""Everything `tlskit serve` was asked to do, parsed and checked once: :func:`build_config`.

The CLI hands its options over as they were typed (strings, numbers, lists); :func:`build_config`
checks every one (a bad value is one :class:`~tlskit.errors.InputError` naming the flag) and returns a
:class:`ServeConfig` of parsed values: networks, the upstream as an :class:`~tlskit.server.proxy.Upstream`,
the HTTP limits, the login throttle. Nothing below the CLI parses an option again.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlskit.errors import InputError, option
from tlskit.server.engine import HttpLimits
from tlskit.server.stores import LimitsStore, PostgresUrl
from tlskit.server.throttle import ThrottleSettings
from tlskit.server.trusted_proxy import parse_networks

if TYPE_CHECKING:
    from tlskit.server.proxy import Upstream

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
DEFAULT_KEY_HEADERS = ("X-API-Key", "X-CData-Authtoken")   # always accepted; --key-header adds more
HSTS_MAX_AGE = 31536000


def default_hash_workers() -> int:
    """Threads for slow password hashes: one per core, at most four (each argon2 run takes 64 MiB)."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class AcmeSettings:
    """--acme: the names whose certificate the server obtains and keeps renewed, and the CA it asks."""

    names: tuple[str, ...]
    email: str | None = None
    agree_tos: bool = False
    directory: str | None = None           # None: Let's Encrypt
    directory_ca_file: Path | None = None  # trust for the directory's HTTPS (a private CA)
    renew_days: int | None = None          # None: a third of the lifetime before expiry, or the CA's ARI window
    check_interval: float | None = None    # longest sleep between renewal checks; None: until due
    eab_kid: str | None = None             # external account binding, for registering the account
    eab_hmac_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8443
    cert: Path | None = None
    key: Path | None = None
    passphrase_file: Path | None = None    # decrypts an encrypted --key (read again on each reload)
    redirect_port: int | None = None
    workers: int = 1
    state_dir: Path | None = None          # None: tlskit.server.default_state_dir()
    db: Path | PostgresUrl | None = None   # None: <state_dir>/users.sqlite
    dataset: Path | PostgresUrl | None = None   # None: the demo dataset copied under the state dir
    allow: tuple[Network, ...] = ()        # empty: loopback only
    key_headers: tuple[str, ...] = DEFAULT_KEY_HEADERS
    allow_query_token: bool = False
    realm: str = "tlskit"
    log_json: bool = False
    access_log: bool = True
    access_log_file: Path | None = None    # None: stdout; reopened on SIGUSR1 (logrotate)
    metrics_allow: tuple[Network, ...] = ()  # clients that may read /metrics without credentials
    acme_lineages: tuple[Path, ...] = ()   # --acme: the lineage directories whose expiry /metrics shows
    hsts_max_age: int = HSTS_MAX_AGE
    # Defaults for users whose own limit is unset (NULL); 0 means unlimited.
    max_requests: int = 0
    max_concurrent: int = 0
    upstream: Upstream | None = None       # replaces the dataset handler (all paths, or all but /api)
    upstream_timeout: float = 60.0         # seconds for the upstream's answer (and each piece of it): 504
    upstream_ca_file: Path | None = None   # trust for an https upstream (None: certifi)
    trust_proxy: tuple[Network, ...] = ()
    reload_interval: float = 1.0           # seconds between checks of the cert/key files; 0: no hot reload
    acme: AcmeSettings | None = None       # the certificate comes from an ACME CA (cert and key are its files)
    acme_webroot: Path | None = None       # --acme: http-01 answers the redirect listener serves
    client_ca: Path | None = None          # ask clients for certificates issued by this CA (mutual TLS)
    client_cert: str = "optional"          # or "required": the handshake needs a client certificate
    crl: Path | None = None                # revoked client certificates (reloaded when the file changes)
    http: HttpLimits = HttpLimits()
    throttle: ThrottleSettings = ThrottleSettings()
    hash_workers: int = field(default_factory=default_hash_workers)
    # Stores shared by several instances (tlskit.server.stores).
    dataset_schema: str = "public"         # the PostgreSQL schema whose tables a postgresql:// --dataset serves
    limits_store: LimitsStore | None = None   # None: memory for one worker, sqlite under the state dir for more
    limits_fail: str = "open"              # Redis unreachable: "open" admits without limits, "closed" answers 503
    limits_lease: float = 15.0             # seconds an in-flight slot in Redis outlives an instance that died
    auth_cache_ttl: float = 60.0           # seconds a verified credential works while the users store is down

    def networks(self) -> tuple[Network, ...]:
        return self.allow or LOOPBACK


# The options that set the HTTP limits (HttpLimits' fields of the same names).
HTTP_LIMITS = ("max_header_line", "max_header_size", "max_header_fields", "header_timeout", "handshake_timeout",
               "body_timeout", "send_timeout", "keepalive_timeout", "keepalive_requests", "max_pending_per_ip",
               "max_connections")


def build_config(options: Mapping[str, Any]) -> ServeConfig:
    """Check every option and parse it; raises InputError naming the first bad one.

    ``options`` uses ServeConfig's field names, the HTTP limit names of :data:`HTTP_LIMITS`,
    ``max_auth_failures``, ``auth_ban_seconds``, the ``acme`` names with the options of
    :class:`AcmeSettings` (``email``, ``agree_tos``, ``directory``, ``directory_ca_file``,
    ``acme_renew_days``, ``acme_check_interval``, ``eab_kid``, ``eab_hmac_key``) and the raw forms of lists (``allow``, ``trust_proxy``,
    ``key_header``); missing keys keep their defaults. Messages name an option with
    :func:`~tlskit.errors.option`, so each is spelled as the front end that gave it.
    """
    values = dict(options)
    for name in ("port", "redirect_port"):
        port = values.get(name)
        if port is not None and not 0 < port < 65536:
            raise InputError(f"{option(name)} {port} is not a TCP port", fix="give a number from 1 to 65535")
    realm = values.get("realm", "tlskit")
    if not realm or len(realm) > 100 or not all(32 <= ord(c) < 127 and c not in '"\\' for c in realm):
        raise InputError(f"bad {option('realm')} {realm!r}", "it goes into WWW-Authenticate between quotes",
                         "use printable ASCII without quotes or backslashes")
    if values.get("workers", 1) < 1:
        raise InputError(f"{option('workers')} {values['workers']} is not a positive number", fix="give 1 or more")
    for name in ("max_requests", "max_concurrent"):
        if values.get(name, 0) < 0:
            raise InputError(f"{option(name)} {values[name]} is negative", fix="give 0 (unlimited) or more")
    upstream = values.get("upstream")
    if upstream is not None and not hasattr(upstream, "origin"):
        from tlskit.server.proxy import parse_upstream

        values["upstream"] = parse_upstream(upstream)
        if values.get("upstream_timeout", 60.0) <= 0:
            raise InputError(f"{option('upstream_timeout')} {values['upstream_timeout']} is not positive", fix="give seconds, e.g. 30")
        ca_file = values.get("upstream_ca_file")
        if ca_file is not None and not Path(ca_file).is_file():
            raise InputError(f"{option('upstream_ca_file')} {ca_file} does not exist", fix="give a PEM CA file")
    values["allow"] = parse_networks(values.get("allow") or (), "allow", "expected an IP address or CIDR",
                                     "for example 10.0.0.0/8 or 127.0.0.1")
    values["trust_proxy"] = parse_networks(values.get("trust_proxy") or ())
    values["metrics_allow"] = parse_networks(values.get("metrics_allow") or (), "metrics_allow",
                                             "expected an IP address or CIDR", "for example 10.0.0.5")
    values["acme"] = _acme(values)
    _files(values)
    values["key_headers"] = parse_key_headers(values.pop("key_header", None) or ())
    values["reload_interval"] = max(0.0, values.get("reload_interval", 1.0))
    _client_certificates(values)
    values["http"] = _http_limits(values)
    values["throttle"] = _throttle(values)
    workers = values.get("hash_workers")
    if workers is not None and workers < 1:
        raise InputError(f"{option('hash_workers')} {workers} is not a positive number", fix="give 1 or more threads")
    if workers is None:
        values.pop("hash_workers", None)
    _stores(values)
    known = {f.name for f in fields(ServeConfig)}
    return ServeConfig(**{name: value for name, value in values.items() if name in known})


def _files(values: dict) -> None:
    if (values.get("cert") is None) != (values.get("key") is None):
        raise InputError(f"{option('cert')} and {option('key')} go together", fix="give both, or neither for a local CA certificate")
    log_file = values.get("access_log_file")
    if log_file is not None:
        if not values.get("access_log", True):
            raise InputError(f"{option('access_log_file')} and {option('access_log')} exclude each other", fix="choose one")
        values["access_log_file"] = None if str(log_file) == "-" else Path(log_file)
    passphrase_file = values.get("passphrase_file")
    if passphrase_file is not None:
        if values.get("key") is None and values.get("cert") is None:
            raise InputError(f"{option('passphrase_file')} decrypts {option('key')}, and no {option('key')} was given",
                             fix=f"pass {option('cert')} and {option('key')}, or drop {option('passphrase_file')}")
        values["passphrase_file"] = Path(passphrase_file)
    values["acme_lineages"] = tuple(Path(p) for p in values.get("acme_lineages") or ())


def _acme(values: dict) -> AcmeSettings | None:
    names = values.pop("acme", None)
    given = {"email": values.pop("email", None), "agree_tos": bool(values.pop("agree_tos", False)),
             "directory": values.pop("directory", None), "directory_ca_file": values.pop("directory_ca_file", None),
             "renew_days": values.pop("acme_renew_days", None), "check_interval": values.pop("acme_check_interval", None),
             "eab_kid": values.pop("eab_kid", None), "eab_hmac_key": values.pop("eab_hmac_key", None)}
    if not names:
        return None
    if values.get("cert") is not None or values.get("key") is not None:
        raise InputError(f"{option('acme')} and {option('cert')}/{option('key')} exclude each other",
                         fix=f"let {option('acme')} obtain the certificate, or serve your own with "
                             f"{option('cert')}/{option('key')}")
    if given["renew_days"] is not None and given["renew_days"] < 1:
        raise InputError(f"{option('acme_renew_days')} {given['renew_days']} is too short", fix="give 1 day or more")
    if given["check_interval"] is not None and given["check_interval"] <= 0:
        raise InputError(f"{option('acme_check_interval')} {given['check_interval']} is not positive",
                         fix="give seconds, e.g. 3600")
    if given["directory_ca_file"] is not None:
        given["directory_ca_file"] = Path(given["directory_ca_file"])
    return AcmeSettings(tuple(names), **given)


def check_access_log(config: ServeConfig) -> None:
    """Before serving: the --access-log file can be written (a config may be printed for another machine)."""
    path = config.access_log_file
    if path is None or not config.access_log:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"{option('access_log_file')} {path} is a directory", fix="name a file, e.g. /var/log/tlskit/access.log")
    if not parent.is_dir():
        raise InputError(f"{option('access_log_file')} {path}: directory {parent} does not exist", fix=f"create it (mkdir -p {parent})")
    if not os.access(path if path.exists() else parent, os.W_OK):
        raise InputError(f"cannot write {option('access_log_file')} {path}", "permission denied", "choose a file you may write")


def _stores(values: dict) -> None:
    from tlskit.server.stores import parse_database, parse_limits_store

    values["db"] = parse_database(values.get("db"), option("db"))
    values["dataset"] = parse_database(values.get("dataset"), option("dataset"))
    schema = values.get("dataset_schema")
    if schema is None:
        values.pop("dataset_schema", None)
    elif not schema or schema.lower() in ("tlskit", "pg_catalog", "information_schema", "pg_toast") \
            or schema.lower().startswith("pg_"):
        raise InputError(f"{option('dataset_schema')} {schema!r} cannot be served",
                         "the system catalogs and tlskit's own schema (its users) are never exposed",
                         "give the schema of your tables, e.g. public")
    limits = parse_limits_store(values.get("limits_store"))
    if limits is not None and limits.kind == "memory" and values.get("workers", 1) > 1:
        raise InputError(f"{option('limits_store')} memory counts for one process, not {option('workers')} "
                         f"{values['workers']}", fix="give sqlite:PATH or redis://host:port/0, or leave it out")
    values["limits_store"] = limits
    if values.get("limits_fail") is None:
        values.pop("limits_fail", None)
    elif values["limits_fail"] not in ("open", "closed"):
        raise InputError(f"bad {option('limits_fail')} {values['limits_fail']!r}",
                         fix="give open (serve without limits while Redis is down) or closed (answer 503)")
    for name in ("limits_lease", "auth_cache_ttl"):
        value = values.get(name)
        if value is None:
            values.pop(name, None)
        elif value < 0 or (name == "limits_lease" and value < 1):
            raise InputError(f"{option(name)} {value:g} is too small", fix="give seconds: at least 1 for a lease, 0 or more for the cache")


def _client_certificates(values: dict) -> None:
    if values.get("client_cert") is None:
        values.pop("client_cert", None)
    elif values["client_cert"] not in ("optional", "required"):
        raise InputError(f"bad {option('client_cert')} {values['client_cert']!r}", fix="give optional or required")
    ca, crl = values.get("client_ca"), values.get("crl")
    if ca is None and (crl is not None or values.get("client_cert") == "required"):
        raise InputError(f"{option('crl')} and {option('client_cert')} required need {option('client_ca')}",
                         fix=f"pass {option('client_ca')} with the CA that issues your client certificates")
    for path, name in ((ca, "client_ca"), (crl, "crl")):
        if path is not None and not Path(path).is_file():
            raise InputError(f"{option(name)} {path} does not exist", fix="give a PEM file")


def _http_limits(values: dict) -> HttpLimits:
    limits = {}
    for name in HTTP_LIMITS:
        value = values.pop(name, None)
        if value is None:
            continue
        if value <= 0:
            raise InputError(f"{option(name)} {value} is not positive", fix=f"give a positive number (default {getattr(HttpLimits, name)})")
        limits[name] = value
    if limits.get("max_header_line", 1024) < 1024 or limits.get("max_header_size", 4096) < 4096:
        raise InputError(f"{option('max_header_line')} below 1024 or {option('max_header_size')} below 4096 "
                         "refuses ordinary requests",
                         fix="give at least 1024 and 4096 bytes")
    return HttpLimits(**limits)


def _throttle(values: dict) -> ThrottleSettings:
    failures = values.pop("max_auth_failures", None)
    ban = values.pop("auth_ban_seconds", None)
    settings = {}
    if failures is not None:
        if failures < 0:
            raise InputError(f"{option('max_auth_failures')} {failures} is negative", fix="give 0 (no budget) or more")
        settings["max_failures"] = failures
    if ban is not None:
        if ban <= 0:
            raise InputError(f"{option('auth_ban_seconds')} {ban} is not positive", fix="give seconds, e.g. 60")
        settings["ban"] = float(ban)
    return ThrottleSettings(**settings)


def parse_key_headers(values) -> tuple[str, ...]:
    """X-API-Key is always accepted; ``--key-header`` adds names (case-insensitive, as HTTP)."""
    names = list(DEFAULT_KEY_HEADERS)
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not all(c.isalnum() or c in "-_" for c in part) or part.lower() in ("authorization", "host", "cookie"):
                raise InputError(f"bad {option('key_header')} {part!r}", fix="give a header name such as X-Auth-Key")
            if part.lower() not in (n.lower() for n in names):
                names.append(part)
    return tuple(names)


def parse_allow(values) -> tuple[Network, ...]:
    """``--allow 10.0.0.0/8 --allow 192.168.1.5`` -> networks (a bare address is one host)."""
    return build_config({"allow": values}).allow
