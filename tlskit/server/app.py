"""The ASGI application: client IP -> gate (:mod:`.policy`) -> handler, HSTS on every answer, one log line.

Seams for issue 7:

- the handler is any ASGI callable: :class:`~tlskit.server.dataset.Dataset` by default, or an upstream
  proxy (``run.make_handler``). It finds the authenticated user name in ``scope["user"]`` and the
  resolved client IP in ``scope["tlskit.client_ip"]``;
- the client IP comes from one function, :func:`client_ip` (``scope["client"]``); trusted-proxy
  support wraps this app in a middleware that rewrites ``scope["client"]`` first, or passes its own
  ``client_ip`` function to :class:`TlskitApp`.
- the limiter plugs into the gate (see :mod:`.policy`).
"""

from __future__ import annotations

import logging
import time

from tlskit.server.accesslog import AccessLog
from tlskit.server.policy import Denial, Gate

log = logging.getLogger("tlskit.serve")


def client_ip(scope: dict) -> str:
    """The client's address as the request path uses it (allow-list, log, limits, proxy headers)."""
    client = scope.get("client")
    return client[0] if client else ""


# Every answer is JSON or the upstream's: browsers must not sniff it into something executable.
NOSNIFF = (b"x-content-type-options", b"nosniff")


def hsts(max_age: int) -> tuple[bytes, bytes]:
    return (b"strict-transport-security", f"max-age={max_age}; includeSubDomains".encode())


class TlskitApp:
    def __init__(self, gate: Gate, handler, access_log: AccessLog | None = None, hsts_max_age: int = 31536000,
                 client_ip=client_ip) -> None:
        self.gate = gate
        self.handler = handler
        self.access_log = access_log
        self.client_ip = client_ip
        self.hsts = hsts(hsts_max_age)
    NOSNIFF = NOSNIFF

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            return  # websockets are not served
        started = time.perf_counter()
        ip = self.client_ip(scope)
        scope["tlskit.client_ip"] = ip
        state = [0, 0]      # status, body bytes
        extra = [self.hsts]

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                state[0] = message["status"]
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                    headers.append(self.NOSNIFF)
                message["headers"] = headers + extra
            elif message["type"] == "http.response.body":
                state[1] += len(message.get("body", b""))
            await send(message)

        user_name = None
        decision = await self.gate.admit(scope, ip)
        if isinstance(decision, Denial):
            user_name = decision.user
            await _answer(send_with_headers, decision.status, decision.body, decision.headers, scope["method"])
        else:
            user_name = decision.user.name
            scope["user"] = user_name
            extra.extend(decision.headers)
            try:
                await self.handler(scope, receive, send_with_headers)
            except Exception as exc:  # a bug in a handler: one log line and a 500, the server goes on
                log.error("handler failed on %s %s: %s", scope["method"], scope["path"], type(exc).__name__)
                if not state[0]:
                    await _answer(send_with_headers, 500, b'{"error":"internal error"}', [], scope["method"])
            finally:
                self.gate.release(decision)
        if self.access_log is not None:
            self.access_log.log(scope, ip, user_name, state[0], state[1], time.perf_counter() - started)


async def _answer(send, status: int, body: bytes, headers: list, method: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())] + headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class RedirectApp:
    """The ``--redirect-port`` listener: 308 to the same path and query on HTTPS (method and body kept)."""

    def __init__(self, https_port: int, hsts: bool = False) -> None:
        self.https_port = https_port

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                break
        if not host or any(c in host for c in "/\\@ \r\n"):
            server = scope.get("server") or ("localhost", 0)
            host = server[0]
        if host.startswith("["):
            hostname = host[: host.find("]") + 1]
        else:
            hostname = host.rsplit(":", 1)[0] if ":" in host else host
        port = "" if self.https_port == 443 else f":{self.https_port}"
        path = scope.get("raw_path") or scope["path"].encode()
        target = f"https://{hostname}{port}".encode() + path
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        body = b"Moved to " + target + b"\n"
        await send({"type": "http.response.start", "status": 308,
                    "headers": [(b"location", target), (b"content-type", b"text/plain"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
