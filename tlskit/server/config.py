"""Everything `tlskit serve` was asked to do, as one value the CLI builds and :mod:`.run` consumes.

Issue 7 (limits, reverse proxy, trusted proxies, ACME) adds its flags here as new fields with defaults;
nothing in the request path reads the CLI directly.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from tlskit.errors import InputError
from tlskit.server.engine import HttpLimits
from tlskit.server.trusted_proxy import parse_networks

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = ("127.0.0.0/8", "::1/128")
DEFAULT_KEY_HEADERS = ("X-API-Key",)
HSTS_MAX_AGE = 31536000


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8443
    cert: Path | None = None
    key: Path | None = None
    redirect_port: int | None = None
    workers: int = 1
    state_dir: Path | None = None          # None: tlskit.server.default_state_dir()
    db: Path | None = None                 # None: <state_dir>/users.sqlite
    dataset: Path | None = None            # None: the demo dataset copied under the state dir
    allow: tuple[Network, ...] = ()        # empty: loopback only
    key_headers: tuple[str, ...] = DEFAULT_KEY_HEADERS
    allow_query_token: bool = False
    realm: str = "tlskit"
    log_json: bool = False
    access_log: bool = True
    hsts_max_age: int = HSTS_MAX_AGE
    # Defaults for users whose own limit is unset (NULL); 0 means unlimited. Enforced by the limiter (issue 7).
    max_requests: int = 0
    max_concurrent: int = 0
    # Issue 7 seams: an upstream URL replaces the dataset handler; trusted proxies rewrite the client IP.
    upstream: str | None = None
    upstream_timeout: float = 60.0         # seconds for the upstream's answer (and each piece of it): 504
    upstream_ca_file: Path | None = None   # trust for an https upstream (None: certifi)
    trust_proxy: tuple[str, ...] = ()
    reload_interval: float = 1.0           # seconds between checks of the cert/key files; 0: no hot reload
    acme_webroot: Path | None = None       # --acme: http-01 answers the redirect listener serves
    extra: dict = field(default_factory=dict)
    http: HttpLimits = HttpLimits()

    def networks(self) -> tuple[Network, ...]:
        return self.allow or tuple(ipaddress.ip_network(n) for n in LOOPBACK)


def parse_allow(values: list[str] | None) -> tuple[Network, ...]:
    """``--allow 10.0.0.0/8 --allow 192.168.1.5`` -> networks (a bare address is one host)."""
    return parse_networks(values or [], "--allow", "expected an IP address or CIDR",
                          "for example --allow 10.0.0.0/8 --allow 127.0.0.1")


def parse_key_headers(values: list[str] | None) -> tuple[str, ...]:
    """X-API-Key is always accepted; ``--key-header`` adds names (case-insensitive, as HTTP)."""
    names = list(DEFAULT_KEY_HEADERS)
    for value in values or []:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not all(c.isalnum() or c in "-_" for c in part) or part.lower() in ("authorization", "host", "cookie"):
                raise InputError(f"bad --key-header {part!r}", fix="give a header name such as X-Auth-Key")
            if part.lower() not in (n.lower() for n in names):
                names.append(part)
    return tuple(names)
