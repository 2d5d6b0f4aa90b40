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
from collections.abc import Awaitable, Callable, Iterable
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
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # an unbalanced "[" or "]" around an IPv6 host
        raise InputError(f"bad --upstream {url!r}", str(exc), "for example --upstream http://[::1]:8000") from None
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
    max_idle: int = 256          # idle keep-alive connections kept open to the upstream
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
    """ASGI application that forwards every HTTP request to ``upstream`` and streams the answer back.

    The upstream side is a small HTTP/1.1 client on asyncio streams with the httptools parser uvicorn
    already uses, and a pool of idle keep-alive connections: a general-purpose client (httpx) cost more
    per request than the whole rest of the server.
    """

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
        self._host_line = b"host: " + self.upstream.host_header.encode("latin-1") + b"\r\n"
        self._idle: list[_Connection] = []
        self._ssl = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def _connect(self) -> _Connection:
        if self.upstream.scheme == "https" and self._ssl is None:
            import ssl

            import certifi

            verify = self.settings.verify
            self._ssl = ssl.create_default_context(cafile=verify if isinstance(verify, str) else certifi.where())
            if verify is False:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        async with asyncio.timeout(self.settings.connect_timeout):
            reader, writer = await asyncio.open_connection(
                self.upstream.host, self.upstream.port, ssl=self._ssl,
                server_hostname=self.upstream.host if self._ssl else None, limit=_READ_SIZE)
        return _Connection(reader, writer)

    def _idle_connection(self) -> _Connection | None:
        """The most recently used idle connection the upstream has not closed meanwhile, if any."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        return None

    def _release(self, connection: _Connection) -> None:
        if len(self._idle) < self.settings.max_idle and not connection.writer.is_closing():
            self._idle.append(connection)
        else:
            connection.close()

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
        method = scope["method"]
        head = self.request_head(scope)
        body_length = _header(scope, b"content-length")
        chunked = body_length is None and _header(scope, b"transfer-encoding") is not None
        has_body = chunked or (body_length is not None and body_length != b"0")
        if body_length is not None:
            head += b"content-length: " + body_length + b"\r\n"
        elif chunked:
            head += b"transfer-encoding: chunked\r\n"
        head += b"\r\n"
        response = None
        for attempt in (0, 1):
            connection = self._idle_connection()
            reused = connection is not None
            try:
                connection = connection or await self._connect()
            except (asyncio.TimeoutError, TimeoutError):
                return await self._fail(send, 504, "connect timed out", scope)
            except OSError as exc:
                return await self._fail(send, 502, _reason(exc), scope)
            try:
                connection.writer.write(head)
                if has_body:
                    await self._send_body(connection, receive, chunked)
                else:
                    await connection.drain(self.settings.write_timeout)
                response = await connection.read_head(method == "HEAD", self.settings.read_timeout)
                break
            except ClientGone:
                connection.close()
                return
            except _StaleConnection:
                connection.close()
                # An idle keep-alive connection the upstream had already closed: retry once on a new
                # one, but only when no body was consumed (it cannot be sent again).
                if reused and not has_body and attempt == 0:
                    continue
                return await self._fail(send, 502, "upstream closed the connection", scope)
            except (asyncio.TimeoutError, TimeoutError):
                connection.close()
                return await self._fail(send, 504, "no answer in time", scope)
            except (OSError, _BadResponse) as exc:
                connection.close()
                return await self._fail(send, 502, _reason(exc), scope)
        assert response is not None
        await send({"type": "http.response.start", "status": response.status,
                    "headers": _response_headers(response.headers)})
        if response.complete:
            await send({"type": "http.response.body", "body": b"".join(response.take()), "more_body": False})
            self._finish(connection, response)
            return
        await self._stream_body(connection, response, receive, send, scope)

    def _finish(self, connection: _Connection, response: _Response) -> None:
        if response.keep_alive:
            self._release(connection)
        else:
            connection.close()

    async def _send_body(self, connection: _Connection, receive: Receive, chunked: bool) -> None:
        """The client's body as it arrives, chunk by chunk (uvicorn applies flow control underneath)."""
        timeout = self.settings.write_timeout
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            if chunk:
                connection.writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                await connection.drain(timeout)
            if not message.get("more_body", False):
                if chunked:
                    connection.writer.write(b"0\r\n\r\n")
                await connection.drain(timeout)
                return

    async def _stream_body(self, connection: _Connection, response: _Response, receive: Receive,
                           send: Send, scope: Scope) -> None:
        """Copy the upstream's body to the client as it comes; stop early if the client disconnects.

        Once the status line is out, a failing upstream can only be reported by cutting the connection:
        ending the body cleanly would hand the client a truncated answer that looks complete.
        """
        async def copy() -> None:
            while True:
                for chunk in response.take():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if response.complete:
                    break
                await connection.read_more(response, self.settings.read_timeout)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        copier = asyncio.ensure_future(copy())
        watcher = asyncio.ensure_future(client_gone())
        try:
            done, _ = await asyncio.wait({copier, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (copier, watcher):
                if not task.done():
                    task.cancel()
            await asyncio.gather(copier, watcher, return_exceptions=True)
        if copier in done and copier.exception() is None:
            self._finish(connection, response)
            return
        connection.close()
        if copier in done:
            exc = copier.exception()
            if isinstance(exc, (OSError, asyncio.TimeoutError, TimeoutError, _BadResponse, _StaleConnection)):
                log.warning("upstream %s broke off its answer to %s %s (%s); closing the client connection",
                            self.upstream, scope["method"], scope.get("path", ""), _reason(exc))
                raise UpstreamBrokeOff(f"upstream {self.upstream} broke off its answer") from None
            raise exc

    async def _fail(self, send: Send, status: int, why: str, scope: Scope) -> None:
        log.warning("upstream %s failed (%s) for %s %s: answering %d", self.upstream, why, scope["method"],
                    scope.get("path", ""), status)
        body = b"upstream timed out\n" if status == 504 else b"upstream unavailable\n"
        await _plain(send, status, body)

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

    def request_head(self, scope: Scope) -> bytes:
        """Request line and headers (without the final blank line and without content-length)."""
        lines = [scope["method"].encode("latin-1"), b" ", self.upstream_target(scope).encode("latin-1"),
                 b" HTTP/1.1\r\n", self._host_line]
        for name, value in self.upstream_headers(scope):
            if name != b"host":
                lines += [name, b": ", value, b"\r\n"]
        return b"".join(lines)

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


# --- the upstream connection ---------------------------------------------------------------------

_READ_SIZE = 65536


class ClientGone(Exception):
    """The client disconnected while we were sending its body upstream."""


class _StaleConnection(Exception):
    """The upstream closed the connection before sending a single byte of the answer."""


class _BadResponse(Exception):
    """The upstream's answer is not HTTP/1.1 we can parse, or it stopped in the middle."""


class _Response:
    """httptools callbacks: the status line and headers, then body pieces as they are parsed."""

    def __init__(self, head_only: bool) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.head_only = head_only
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.delimited = False  # content-length or chunked: the end is known without closing
        self.received_any = False
        self._pieces: list[bytes] = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # an interim answer (102/103): skip it, the real one follows
            self.headers = []
            return
        self.headers_done = True
        names = {name.lower() for name, _ in self.headers}
        self.delimited = b"content-length" in names or b"transfer-encoding" in names
        if self.head_only or self.status in (204, 304):
            self.complete = True
            self.keep_alive = False  # the parser would wait for a body that never comes; start afresh

    def on_body(self, body: bytes) -> None:
        self._pieces.append(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()

    def feed(self, data: bytes) -> None:
        import httptools

        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if not self.complete:
                raise _BadResponse(f"unparsable answer: {exc}") from None

    def take(self) -> list[bytes]:
        pieces, self._pieces = self._pieces, []
        return pieces


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def drain(self, timeout: float) -> None:
        if self.writer.transport.get_write_buffer_size() == 0:
            return  # all handed to the kernel already: nothing to wait for
        async with asyncio.timeout(timeout):
            await self.writer.drain()

    async def read_head(self, head_only: bool, timeout: float) -> _Response:
        response = _Response(head_only)
        while not response.headers_done:
            await self.read_more(response, timeout)
        return response

    async def read_more(self, response: _Response, timeout: float) -> None:
        async with asyncio.timeout(timeout):  # cheaper than wait_for: no task per read
            data = await self.reader.read(_READ_SIZE)
        if data:
            response.feed(data)
            return
        if not response.received_any:
            raise _StaleConnection()
        if response.headers_done and not response.delimited:
            response.complete = True  # read-until-close body (HTTP/1.0 style)
            response.keep_alive = False
            return
        raise _BadResponse("connection closed in the middle of the answer")

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # already gone
            pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    return " ".join(str(exc).split()) or type(exc).__name__


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


class UpstreamBrokeOff(Exception):
    """Raised after the response has started: the server closes the client connection."""


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class DatasetAndUpstream:
    """``--dataset`` and ``--upstream`` together: the dataset answers ``/api...`` and ``/openapi.json``,
    the application everything else."""

    def __init__(self, dataset, proxy: UpstreamProxy) -> None:
        self.dataset = dataset
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if path == "/api" or path.startswith("/api/") or path == "/openapi.json":
            await self.dataset(scope, receive, send)
        else:
            await self.proxy(scope, receive, send)


def upstream_handler(url: str, key_headers: tuple[str, ...] = DEFAULT_KEY_HEADERS, timeout: float = 60.0,
                     dataset=None, ca_file: str | None = None):
    """The handler `tlskit serve --upstream URL [--dataset F]` runs (one per worker process).

    An https upstream is verified against ``ca_file`` (``--upstream-ca-file``) or certifi's roots."""
    settings = ProxySettings(read_timeout=timeout, write_timeout=timeout, connect_timeout=min(timeout, 5.0),
                             key_headers=tuple(key_headers), verify=str(ca_file) if ca_file else True)
    proxy = UpstreamProxy(parse_upstream(url), settings)
    return proxy if dataset is None else DatasetAndUpstream(dataset, proxy)
