"""The ASGI application: client IP -> gate (:mod:`.policy`) -> handler, HSTS on every answer, one log line.

The handler is any ASGI callable: :class:`~tlskit.server.dataset.Dataset` by default, or the upstream
proxy. It finds the authenticated user name in ``scope["user"]`` and the client IP in
``scope["tlskit.client_ip"]``; the client IP is ``scope["client"]``, which the trusted-proxy
middleware (:mod:`.trusted_proxy`) rewrites first when the server runs behind a load balancer.
"""

from __future__ import annotations

import json
import logging
import time

from tlskit.server import query
from tlskit.server.accesslog import AccessLog
from tlskit.server.answers import answer_json, answer_plain, lifespan
from tlskit.server.hosts import name_matches, parse_host
from tlskit.server.metrics import METRICS_PATH
from tlskit.server.policy import Denial, Gate

log = logging.getLogger("tlskit.serve")

# Every answer is JSON or the upstream's: browsers must not sniff it into something executable.
NOSNIFF = (b"x-content-type-options", b"nosniff")
ME_PATH = "/api/me"
AMBIGUOUS_QUERY = (b'{"error":"bad request","detail":"the query names authtoken in a way that cannot be read '
                   b'one way only; send it once, as authtoken=VALUE"}')


def hsts(max_age: int) -> tuple[bytes, bytes]:
    return (b"strict-transport-security", f"max-age={max_age}; includeSubDomains".encode())


def client_ip(scope: dict) -> str:
    """The client's address as the request path uses it (allow-list, log, limits, proxy headers)."""
    client = scope.get("client")
    return client[0] if client else ""


class _Sent:
    """The ASGI ``send`` the handler gets: adds the server's headers, notes status and size for the log."""

    __slots__ = ("send", "extra", "status", "size")

    def __init__(self, send, extra: list[tuple[bytes, bytes]]) -> None:
        self.send = send
        self.extra = extra
        self.status = 0
        self.size = 0

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = message.get("headers") or []
            for name, _ in headers:
                if name == b"x-content-type-options":
                    break
            else:
                headers = [*headers, NOSNIFF]
            message["headers"] = [*headers, *self.extra]
        elif message["type"] == "http.response.body":
            self.size += len(message.get("body", b""))
        await self.send(message)


class TlskitApp:
    def __init__(self, gate: Gate, handler, access_log: AccessLog | None = None, hsts_max_age: int = 31536000,
                 client_ip=client_ip, metrics=None, metrics_endpoint=None, upstream: bool = False) -> None:
        self.gate = gate
        self.handler = handler
        self.access_log = access_log
        self.client_ip = client_ip
        self.hsts = hsts(hsts_max_age)
        self.metrics = metrics                     # tlskit.server.metrics.Metrics: counts every answer
        self.metrics_endpoint = metrics_endpoint   # answers /metrics (MetricsEndpoint)
        self.upstream = upstream                   # the handler is the reverse proxy (its 502/504 are counted)

    async def aclose(self) -> None:
        closer = getattr(self.handler, "aclose", None)
        if closer is not None:
            await closer()
        self.gate.authenticator.close()

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await lifespan(receive, send)
            return  # websockets are not served
        started = time.perf_counter()
        ip = self.client_ip(scope)
        scope["tlskit.client_ip"] = ip
        sent = _Sent(send, [self.hsts])
        user_name = None
        denial_reason = None
        query_string = scope["query_string"]
        endpoint = self.metrics_endpoint
        if endpoint is not None and scope["path"] == METRICS_PATH and endpoint.allows_address(ip):
            await endpoint.answer(sent, scope["method"])
        elif query_string and query.mentions_token(query_string) and not _readable(query_string):
            await answer_json(sent, 400, AMBIGUOUS_QUERY, [], scope["method"])
        else:
            decision = await self.gate.admit(scope, ip, receive)
            if isinstance(decision, Denial):
                user_name = decision.user
                denial_reason = decision.reason
                await answer_json(sent, decision.status, decision.body, decision.headers, scope["method"])
            else:
                user_name = decision.user.name
                if decision.scope is not None:
                    scope = decision.scope
                receive = decision.receive or receive
                scope["user"] = user_name
                sent.extra.extend(decision.headers)
                try:
                    if scope["path"] == ME_PATH:
                        await self._me(scope, decision, sent)
                    elif endpoint is not None and scope["path"] == METRICS_PATH:
                        await endpoint.answer_user(sent, scope["method"], decision.user)
                    else:
                        await self.handler(scope, receive, sent)
                except Exception as exc:  # a bug in a handler: one log line and a 500, the server goes on
                    log.error("handler failed on %s %s: %s", scope["method"], scope["path"], type(exc).__name__)
                    if not sent.status:
                        await answer_json(sent, 500, b'{"error":"internal error"}', [], scope["method"])
                    else:
                        raise
                finally:
                    self.gate.release(decision)
        elapsed = time.perf_counter() - started
        if self.access_log is not None:
            self.access_log.log(scope, ip, user_name, sent.status, sent.size, elapsed)
        if self.metrics is not None:
            self.metrics.observe(sent.status, user_name, elapsed, denial_reason, self.upstream)


    async def _me(self, scope, passed, send) -> None:
        """``GET /api/me``: who the caller is, how they proved it, what they may do and what is left."""
        if scope["method"] not in ("GET", "HEAD"):
            await answer_json(send, 405, b'{"error":"method not allowed","detail":"/api/me answers GET"}',
                              [(b"allow", b"GET, HEAD")], scope["method"])
            return
        user = passed.user
        limits = self.gate.limits_for(user)
        decision = passed.decision
        limiter = self.gate.limiter
        document = {
            "user": user.name,
            "authenticated_by": passed.source,
            "methods": sorted(user.methods),
            "limits": {"max_requests": limits.max_requests, "max_concurrent": limits.max_concurrent},
            # This request is counted: what is left after it, and the requests in flight with it.
            "remaining_requests": decision.remaining if decision is not None and limits.max_requests else None,
            "in_flight": limiter.in_flight(user.name) if limiter is not None and hasattr(limiter, "in_flight") else None,
        }
        await answer_json(send, 200, json.dumps(document, separators=(",", ":")).encode(), [], scope["method"])


def _readable(query_string: bytes) -> bool:
    try:
        query.check(query_string)
    except query.AmbiguousQuery:
        return False
    return True


class RedirectApp:
    """The ``--redirect-port`` listener: 308 to the same path and query on HTTPS (method and body kept).

    ``Location`` is built only from a Host that parses as a host name or IP literal, and, when the
    server knows its names (the certificate's SANs), only for those names (as Caddy redirects only the
    sites it serves): an open redirect to any Host would let a link on the plain port send a browser
    anywhere.
    """

    def __init__(self, https_port: int, names: frozenset[str] = frozenset()) -> None:
        self.https_port = https_port
        self.names = names

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await lifespan(receive, send)
            return
        value = next((v for n, v in scope["headers"] if n == b"host"), None)
        if value is None:
            server = scope.get("server") or ("localhost", 0)
            value = server[0].encode()
        host = parse_host(value)
        if host is None:
            await answer_plain(send, 400, b"bad Host\n")
            return
        if self.names and not name_matches(host.name, self.names):
            await answer_plain(send, 400, b"this server does not answer for that host\n")
            return
        port = None if self.https_port == 443 else self.https_port
        target = b"https://" + host.authority(port).encode() + (scope.get("raw_path") or scope["path"].encode())
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        await answer_plain(send, 308, b"Moved to " + target + b"\n", [(b"location", target)], scope["method"])
