"""Reverse proxy to one upstream application: the `--upstream URL` handler of `tlskit serve`.

It sits behind the request gate (trusted IPs -> authentication -> privilege -> limits), so by the time a
request gets here it is allowed. What it adds is what nginx's ``proxy_pass`` does for an application:

- bodies stream both ways (nothing is buffered whole, so uploads and downloads of any size work);
- ``X-Forwarded-For/-Proto/-Host`` and ``X-Forwarded-User`` (the authenticated user) are set here, and
  whatever the client sent in those headers is dropped, so the application can trust them;
- the client's credentials never reach the application: ``Authorization``, the API-key headers
  (``X-API-Key`` and any ``--key-header``) and the ``authtoken`` query parameter are removed;
- hop-by-hop headers (RFC 9110 7.6.1) are not forwarded in either direction;
- 502 when the upstream cannot be reached or answers garbage, 504 when it is too slow.

Usage (an ASGI application; ``user_of`` tells it who the gate authenticated)::

    proxy = UpstreamProxy(parse_upstream("http://127.0.0.1:8000"), user_of=lambda scope: scope.get("user"))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tlskit.errors import InputError

__all__ = ["ProxySettings", "Upstream", "UpstreamProxy", "parse_upstream"]

log = logging.getLogger("tlskit.serve")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# RFC 9110 7.6.1 and RFC 9112: meaningful for one connection only. `Expect` is answered by our own
# server (uvicorn sends the 100 Continue), so the upstream must not wait for it a second time.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"proxy-connection", b"expect",
})
# Client-supplied forwarding headers: we set our own; a client must not be able to pose as a user or IP.
FORWARDING = frozenset({
    b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-user", b"x-forwarded-port",
    b"x-real-ip", b"forwarded",
})
# Like nginx's proxy_hide_header defaults: our server answers with its own Date and Server.
RESPONSE_HIDDEN = frozenset({b"date", b"server"})
DEFAULT_KEY_HEADERS = ("X-API-Key",)
QUERY_TOKEN = "authtoken"


@dataclass(frozen=True)
class Upstream:
    """Where requests go: ``http://host:port/base`` (a base path is prefixed to every request path)."""

    scheme: str
    host: str
    port: int
    base_path: str

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.origin + self.base_path


def parse_upstream(url: str) -> Upstream:
    """Check an ``--upstream`` URL: http or https, a host, an optional port and base path, nothing else."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"bad --upstream {url!r}", "expected http://HOST[:PORT][/PATH] or https://...",
                         "for example --upstream http://127.0.0.1:8000")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InputError(f"bad --upstream {url!r}", "a query, fragment or user:password is not allowed there",
                         "give only scheme, host, port and base path")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InputError(f"bad --upstream {url!r}", str(exc), "give a port between 1 and 65535") from None
    return Upstream(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


@dataclass(frozen=True)
class ProxySettings:
    """Timeouts in seconds. ``read_timeout`` bounds the wait for the upstream's answer and for each
    chunk of it (a stalled upstream becomes a 504, or a cut connection once the answer has begun)."""

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    write_timeout: float = 60.0
    max_connections: int = 512
    key_headers: tuple[str, ...] = DEFAULT_KEY_HEADERS
    verify: bool | str = True  # https upstreams: certifi, or a CA file path
    extra_credential_headers: tuple[str, ...] = field(default_factory=tuple)


def _default_user_of(scope: Scope) -> str | None:
    """The gate stores the authenticated user in the scope; accept a name or an object with ``.name``."""
    for candidate in (scope.get("tlskit.user"), scope.get("user"), (scope.get("state") or {}).get("user")):
        if candidate is None:
            continue
        if isinstance(candidate, str):
            return candidate
        name = getattr(candidate, "name", None) or getattr(candidate, "username", None)
        if isinstance(name, str):
            return name
    return None


class UpstreamProxy:
    """ASGI application that forwards every HTTP request to ``upstream`` and streams the answer back."""

    def __init__(self, upstream: Upstream, settings: ProxySettings | None = None,
                 user_of: Callable[[Scope], str | None] = _default_user_of,
                 trusted_forwarder: Callable[[Scope], bool] | None = None) -> None:
        self.upstream = upstream
        self.settings = settings or ProxySettings()
        self.user_of = user_of
        # When the direct peer is a trusted proxy (--trust-proxy), its X-Forwarded-For chain is kept and
        # extended; from anyone else it is replaced, so the application never sees a forged chain.
        self.trusted_forwarder = trusted_forwarder or (lambda scope: bool(scope.get("tlskit.forwarded_by")))
        names = {h.lower().encode("latin-1") for h in (*self.settings.key_headers,
                                                      *self.settings.extra_credential_headers)}
        self._dropped = HOP_BY_HOP | FORWARDING | {b"authorization", b"host", b"content-length"} | names
        self._client = None  # made lazily inside the running event loop (one per worker process)

    # --- lifecycle -------------------------------------------------------------------------------

    def _http_client(self):
        if self._client is None:
            import httpx

            settings = self.settings
            self._client = httpx.AsyncClient(
                base_url=self.upstream.origin,
                timeout=httpx.Timeout(connect=settings.connect_timeout, read=settings.read_timeout,
                                      write=settings.write_timeout, pool=settings.connect_timeout),
                limits=httpx.Limits(max_connections=settings.max_connections,
                                    max_keepalive_connections=min(settings.max_connections, 128)),
                verify=settings.verify, follow_redirects=False, trust_env=False,
                headers={},  # no default User-Agent or Accept: forward exactly what the client sent
            )
            # httpx adds these defaults when absent; the client's own values (or none) must win.
            for name in ("user-agent", "accept", "accept-encoding", "connection"):
                self._client.headers.pop(name, None)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- request path ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets are not proxied (yet)
            return
        await self.handle(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        import httpx

        client = self._http_client()
        headers = self.upstream_headers(scope)
        body_length = _header(scope, b"content-length")
        body_follows = body_length is not None or _header(scope, b"transfer-encoding") is not None
        if body_length is not None:
            headers.append((b"content-length", body_length))
        request = client.build_request(
            scope["method"], self.upstream_target(scope), headers=headers,
            content=_request_body(receive) if body_follows else None,
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            log.warning("upstream %s timed out (%s) for %s %s", self.upstream, type(exc).__name__,
                        scope["method"], scope.get("path", ""))
            await _plain(send, 504, b"upstream timed out\n")
            return
        except (httpx.HTTPError, OSError) as exc:
            log.warning("upstream %s failed (%s: %s) for %s %s", self.upstream, type(exc).__name__,
                        " ".join(str(exc).split()) or "no detail", scope["method"], scope.get("path", ""))
            await _plain(send, 502, b"upstream unavailable\n")
            return
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": _response_headers(response.headers.raw)})
            if scope["method"] == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await _pump_response(response, receive, send, str(self.upstream), scope)
        finally:
            await response.aclose()

    def upstream_target(self, scope: Scope) -> str:
        """Base path + the request's raw path (kept byte-exact) + the query without ``authtoken``."""
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        target = self.upstream.base_path + raw_path.decode("latin-1")
        query = scope.get("query_string", b"")
        if query:
            query = _without_query_token(query)
            if query:
                target += "?" + query.decode("latin-1")
        return target

    def upstream_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """The client's headers minus credentials, hop-by-hop and forwarding headers, plus our own."""
        raw = scope.get("headers", [])
        connection_listed = set()
        for name, value in raw:
            if name.lower() == b"connection":
                connection_listed.update(t.strip().lower() for t in value.split(b",") if t.strip())
        dropped = self._dropped | connection_listed
        headers = [(name, value) for name, value in raw if name.lower() not in dropped]

        client_ip = (scope.get("client") or ("", 0))[0]
        chain = client_ip
        if self.trusted_forwarder(scope):
            # The trusted proxy's own chain, then that proxy itself (as nginx's $proxy_add_x_forwarded_for).
            previous = b", ".join(v for n, v in raw if n.lower() == b"x-forwarded-for").decode("latin-1")
            peer = scope.get("tlskit.forwarded_by") or client_ip
            chain = f"{previous}, {peer}" if previous else peer
        headers.append((b"host", self.upstream.host_header.encode("latin-1")))
        headers.append((b"x-forwarded-for", chain.encode("latin-1")))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "https").encode("latin-1")))
        original_host = _header(scope, b"host")
        if original_host is None and scope.get("server"):
            host, port = scope["server"]
            original_host = f"{host}:{port}".encode("latin-1")
        if original_host is not None:
            headers.append((b"x-forwarded-host", original_host))
        user = self.user_of(scope)
        if user:
            headers.append((b"x-forwarded-user", user.encode("utf-8")))
        return headers


# --- helpers ------------------------------------------------------------------------------------

def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


def _without_query_token(query: bytes) -> bytes:
    if QUERY_TOKEN.encode() not in query.lower():
        return query  # the common case keeps the client's exact encoding
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return urlencode([(k, v) for k, v in pairs if k.lower() != QUERY_TOKEN], safe="/:@!$'()*,;").encode("latin-1")


def _response_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    raw = list(raw)
    listed = set()
    for name, value in raw:
        if name.lower() == b"connection":
            listed.update(t.strip().lower() for t in value.split(b",") if t.strip())
    dropped = HOP_BY_HOP | RESPONSE_HIDDEN | listed
    return [(name.lower(), value) for name, value in raw if name.lower() not in dropped]


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    """The client's body as it arrives, chunk by chunk (uvicorn applies flow control underneath)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("client went away while sending the body")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _pump_response(response, receive: Receive, send: Send, upstream: str, scope: Scope) -> None:
    """Copy the upstream's body to the client; stop early if the client disconnects.

    Once the status line is out, a failing upstream can only be reported by cutting the connection:
    ending the body cleanly would hand the client a truncated answer that looks complete.
    """
    import httpx

    async def copy() -> None:
        async for chunk in response.aiter_raw():
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def client_gone() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    copier = asyncio.ensure_future(copy())
    watcher = asyncio.ensure_future(client_gone())
    try:
        done, _ = await asyncio.wait({copier, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (copier, watcher):
            if not task.done():
                task.cancel()
        await asyncio.gather(copier, watcher, return_exceptions=True)
    if copier in done and copier.exception() is not None:
        exc = copier.exception()
        if isinstance(exc, (httpx.HTTPError, OSError)):
            log.warning("upstream %s broke off its answer to %s %s (%s); closing the client connection",
                        upstream, scope["method"], scope.get("path", ""), type(exc).__name__)
            raise UpstreamBrokeOff(f"upstream {upstream} broke off its answer") from None
        raise exc


class UpstreamBrokeOff(Exception):
    """Raised after the response has started: the server closes the client connection."""


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})
