"""Reverse proxy to one upstream application: the `--upstream URL` handler of `tlskit serve`.

It sits behind the request gate (trusted IPs -> authentication -> privilege -> limits), so by the time a
request gets here it is allowed. This module decides what the application sees and what the client gets
back, as nginx's ``proxy_pass`` does; talking to the application is :mod:`.upstream_client`'s job.

- bodies stream both ways (nothing is buffered whole, so uploads and downloads of any size work);
- ``X-Forwarded-For/-Proto/-Host`` and ``X-Forwarded-User`` (the authenticated user) are set here, and
  whatever the client sent in those headers is dropped, so the application can trust them;
  ``X-Forwarded-Host`` is the client's Host as :func:`~tlskit.server.hosts.parse_host` reads it;
- the client's credentials never reach the application: ``Authorization``, the API-key headers
  (``X-API-Key`` and any ``--key-header``) and the ``authtoken`` query parameter however it is spelled
  (:func:`tlskit.server.query.without_token`) are removed;
- header names with an underscore are dropped (nginx's ``underscores_in_headers off``): a CGI/WSGI
  application would read ``X_Forwarded_User`` as its own ``HTTP_X_FORWARDED_USER``;
- hop-by-hop headers (RFC 9110 7.6.1) are not forwarded in either direction;
- a ``Location`` on the application's own origin (under its base path) is rewritten to the client's
  origin, as nginx's ``proxy_redirect default``;
- 502 when the upstream cannot be reached or answers garbage, 504 when it is too slow.

Usage (an ASGI application; ``user_of`` tells it who the gate authenticated)::

    proxy = UpstreamProxy(parse_upstream("http://127.0.0.1:8000"), user_of=lambda scope: scope.get("user"))
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tlskit.errors import InputError, option
from tlskit.server import query
from tlskit.server.answers import answer_plain, lifespan
from tlskit.server.config import DEFAULT_KEY_HEADERS
from tlskit.server.hosts import parse_host
from tlskit.server.upstream_client import ClientGone, UpstreamClient, UpstreamFailed, UpstreamOptions, UpstreamTimeout

__all__ = ["ProxySettings", "Upstream", "UpstreamProxy", "parse_upstream", "upstream_handler"]

log = logging.getLogger("tlskit.serve")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# RFC 9110 7.6.1 and RFC 9112: meaningful for one connection only. `Expect` is answered by our own
# server (the engine sends the 100 Continue), so the upstream must not wait for it a second time.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"proxy-connection", b"expect",
})
# Client-supplied forwarding headers: we set our own; a client must not be able to pose as a user or IP.
FORWARDING = frozenset({
    b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-user", b"x-forwarded-port",
    b"x-real-ip", b"forwarded", b"x-forwarded-client-cert",
})
# Like nginx's proxy_hide_header defaults: our server answers with its own Date and Server.
RESPONSE_HIDDEN = frozenset({b"date", b"server"})
_RESPONSE_DROPPED = HOP_BY_HOP | RESPONSE_HIDDEN


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
        raise InputError(f"bad {option('upstream')} {url!r}", str(exc), "for example http://[::1]:8000") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"bad {option('upstream')} {url!r}", "expected http://HOST[:PORT][/PATH] or https://...",
                         "for example http://127.0.0.1:8000")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InputError(f"bad {option('upstream')} {url!r}", "a query, fragment or user:password is not allowed there",
                         "give only scheme, host, port and base path")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InputError(f"bad {option('upstream')} {url!r}", str(exc), "give a port between 1 and 65535") from None
    return Upstream(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


@dataclass(frozen=True)
class ProxySettings:
    """Timeouts in seconds. ``read_timeout`` bounds the wait for the upstream's answer and for each
    piece of it (a stalled upstream becomes a 504, or a cut connection once the answer has begun)."""

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    write_timeout: float = 60.0
    max_connections: int = 1024  # open at once to the upstream
    key_headers: tuple[str, ...] = DEFAULT_KEY_HEADERS
    ca_file: str | None = None   # https upstreams: this CA file, or certifi's roots


def upstream_tls(ca_file: str | None) -> ssl.SSLContext:
    """TLS 1.2+ with the host name checked, trusting ``ca_file`` or certifi's roots."""
    import certifi

    return ssl.create_default_context(cafile=ca_file or certifi.where())


def _default_user_of(scope: Scope) -> str | None:
    """The user the gate authenticated (TlskitApp puts the name in the scope)."""
    return scope.get("user")


class UpstreamBrokeOff(Exception):
    """Raised after the response has started: the server closes the client connection."""


class UpstreamProxy:
    """ASGI application that forwards every HTTP request to ``upstream`` and streams the answer back."""

    def __init__(self, upstream: Upstream, settings: ProxySettings | None = None,
                 user_of: Callable[[Scope], str | None] = _default_user_of,
                 trusted_forwarder: Callable[[Scope], bool] | None = None) -> None:
        self.upstream = upstream
        self.settings = settings = settings or ProxySettings()
        self.user_of = user_of
        # When the direct peer is a trusted proxy (--trust-proxy), its X-Forwarded-For chain is kept and
        # extended; from anyone else it is replaced, so the application never sees a forged chain.
        self.trusted_forwarder = trusted_forwarder or (lambda scope: bool(scope.get("tlskit.forwarded_by")))
        names = {h.lower().encode("latin-1") for h in settings.key_headers}
        self._dropped = (HOP_BY_HOP | FORWARDING | names
                         | {b"authorization", b"host", b"content-length", b"transfer-encoding"})
        self._host_line = b"host: " + upstream.host_header.encode("latin-1") + b"\r\n"
        self._base_path = upstream.base_path.encode("latin-1")
        self.client = UpstreamClient(upstream.scheme, upstream.host, upstream.port, UpstreamOptions(
            connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
            write_timeout=settings.write_timeout, max_connections=settings.max_connections,
            ssl_context=upstream_tls(settings.ca_file) if upstream.scheme == "https" else None))

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, self.aclose)
        elif scope["type"] == "http":  # websockets are not proxied (yet)
            await self.handle(scope, receive, send)

    # --- the request path -------------------------------------------------------------------------

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        head, length, chunked = self.request_head(scope)
        has_body = chunked or (length is not None and int(length) > 0)
        try:
            answer = await self.client.send(head, scope["method"], _client_body(receive) if has_body else None,
                                            chunked)
        except ClientGone:
            return
        except UpstreamTimeout as exc:
            return await self._fail(send, 504, str(exc), scope)
        except UpstreamFailed as exc:
            return await self._fail(send, 502, str(exc), scope)
        start = {"type": "http.response.start", "status": answer.status,
                 "headers": self.response_headers(answer.headers, scope)}
        whole = answer.read_whole()
        if whole is not None:
            await send(start)
            await send({"type": "http.response.body", "body": whole, "more_body": False})
            return
        # The engine writes the head with the first piece of the body: until that piece is here, a
        # failing upstream can still get a clean 502 instead of a cut connection.
        try:
            first = await answer.read()
        except UpstreamTimeout as exc:
            return await self._fail(send, 504, str(exc), scope)
        except UpstreamFailed as exc:
            return await self._fail(send, 502, str(exc), scope)
        await send(start)
        if not first:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        await send({"type": "http.response.body", "body": first, "more_body": True})
        await self._stream_body(answer, receive, send, scope)

    async def _stream_body(self, answer, receive: Receive, send: Send, scope: Scope) -> None:
        """Copy the rest of the upstream's body to the client as it comes; stop if the client leaves.

        Once the status line is out, a failing upstream can only be reported by cutting the connection:
        ending the body cleanly would hand the client a truncated answer that looks complete.
        """
        async def copy() -> None:
            while piece := await answer.read():
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def client_gone() -> None:
            await answer.upload_finished()    # until then the upload reads the client's messages
            while (await receive())["type"] != "http.disconnect":
                pass

        copier = asyncio.ensure_future(copy())
        watcher = asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait({copier, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (copier, watcher):
                if not task.done():
                    task.cancel()
            await asyncio.gather(copier, watcher, return_exceptions=True)
        if copier.cancelled():     # the client left first
            answer.close()
            return
        failure = copier.exception()
        if failure is not None and answer.client_left:
            return
        if isinstance(failure, (UpstreamTimeout, UpstreamFailed)):
            log.warning("upstream %s broke off its answer to %s %s (%s); closing the client connection",
                        self.upstream, scope["method"], scope.get("path", ""), failure)
            raise UpstreamBrokeOff(f"upstream {self.upstream} broke off its answer") from None
        if failure is not None:
            answer.close()
            raise failure

    async def _fail(self, send: Send, status: int, why: str, scope: Scope) -> None:
        log.warning("upstream %s failed (%s) for %s %s: answering %d", self.upstream, why, scope["method"],
                    scope.get("path", ""), status)
        await answer_plain(send, status, b"upstream timed out\n" if status == 504 else b"upstream unavailable\n",
                           method=scope["method"])

    # --- what the application sees -----------------------------------------------------------------

    def upstream_target(self, scope: Scope) -> bytes:
        """Base path + the request's raw path (byte for byte) + the query without ``authtoken``."""
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        target = self._base_path + raw_path
        forwarded_query = query.without_token(scope.get("query_string", b""))
        return target + b"?" + forwarded_query if forwarded_query else target

    def request_head(self, scope: Scope) -> tuple[bytes, bytes | None, bool]:
        """The request line and header section for the upstream, with the Content-Length the client
        sent (None without one) and whether its body is chunked.

        ASGI header names are lower-case, so they are compared as they come.
        """
        dropped = self._dropped
        kept: list[tuple[bytes, bytes]] = []
        listed: set[bytes] = set()
        previous_chain: list[bytes] = []
        length = host = None
        chunked = False
        for name, value in scope.get("headers", ()):
            if name not in dropped:
                if b"_" not in name:
                    kept.append((name, value))
            elif name == b"connection":
                listed.update(token.strip().lower() for token in value.split(b","))
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"host":
                host = value
            elif name == b"x-forwarded-for":
                previous_chain.append(value)
        listed -= dropped     # "keep-alive" or "close", the usual values, remove nothing more
        if listed:
            kept = [(name, value) for name, value in kept if name not in listed]
        if length is not None:
            chunked = False
        lines = [scope["method"].encode("latin-1"), b" ", self.upstream_target(scope), b" HTTP/1.1\r\n",
                 self._host_line]
        for name, value in kept:
            lines += [name, b": ", value, b"\r\n"]
        client_ip = (scope.get("client") or ("", 0))[0]
        chain = client_ip.encode("latin-1")
        if self.trusted_forwarder(scope):
            # The trusted proxy's own chain, then that proxy itself (as nginx's $proxy_add_x_forwarded_for).
            peer = (scope.get("tlskit.forwarded_by") or client_ip).encode("latin-1")
            chain = b", ".join([*previous_chain, peer])
        lines += [b"x-forwarded-for: ", chain, b"\r\nx-forwarded-proto: ", scope.get("scheme", "https").encode(),
                  b"\r\n"]
        forwarded_host = self.client_authority(scope, host)
        if forwarded_host is not None:
            lines += [b"x-forwarded-host: ", forwarded_host.encode("latin-1"), b"\r\n"]
        user = self.user_of(scope)
        if user:
            lines += [b"x-forwarded-user: ", user.encode("utf-8"), b"\r\n"]
        certificate = scope.get("tlskit.client_cert")
        if certificate is not None:
            # Envoy's X-Forwarded-Client-Cert form: what the application may want of the certificate,
            # never the key (and never what the client wrote into this header itself: that is dropped).
            subject = certificate.subject.replace("\\", "\\\\").replace('"', '\\"')
            lines += [b"x-forwarded-client-cert: Hash=", certificate.fingerprint.encode(), b';Subject="',
                      subject.encode("utf-8"), b'"\r\n']
        if length is not None:
            lines += [b"content-length: ", length, b"\r\n"]
        elif chunked:
            lines.append(b"transfer-encoding: chunked\r\n")
        lines.append(b"\r\n")
        return b"".join(lines), length, chunked

    @staticmethod
    def client_authority(scope: Scope, host: bytes | None = None) -> str | None:
        """The host (and port) the client addressed: its Host header when that is a valid host, else the
        address it connected to. None when the Host is malformed (the engine refuses those anyway)."""
        if host is None:
            host = next((value for name, value in scope.get("headers", ()) if name == b"host"), None)
        if host is None:
            server = scope.get("server")
            if not server:
                return None
            address, port = server
            return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        parsed = parse_host(host)
        return None if parsed is None else parsed.authority(parsed.port)

    # --- what the client gets back -----------------------------------------------------------------

    def response_headers(self, raw, scope: Scope) -> list[tuple[bytes, bytes]]:
        """The upstream's headers without hop-by-hop ones, Date and Server; Location on the client's origin."""
        headers = [(name.lower(), value) for name, value in raw]
        listed = set()
        for name, value in headers:
            if name == b"connection":
                listed.update(token.strip().lower() for token in value.split(b","))
        listed -= _RESPONSE_DROPPED
        dropped = _RESPONSE_DROPPED | listed if listed else _RESPONSE_DROPPED
        kept = []
        for name, value in headers:
            if name in dropped:
                continue
            if name == b"location":
                value = self.client_location(value, scope)
            kept.append((name, value))
        return kept

    def client_location(self, location: bytes, scope: Scope) -> bytes:
        """``location`` with the upstream's origin and base path replaced by the client's origin, as
        nginx's ``proxy_redirect default``; any other location (relative, or elsewhere) as it was."""
        text = location.decode("latin-1")
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            return location
        upstream = self.upstream
        if (parts.scheme.lower() != upstream.scheme or parts.hostname != upstream.host
                or (port or (443 if upstream.scheme == "https" else 80)) != upstream.port):
            return location
        authority_end = len(parts.scheme) + 3 + len(parts.netloc)
        if text[len(parts.scheme):authority_end].lower() != "://" + parts.netloc.lower():
            return location     # a spelling urlsplit reads more loosely than a browser might
        rest = text[authority_end:]
        base = upstream.base_path
        if base:
            if not rest.startswith(base) or rest[len(base):len(base) + 1] not in ("", "/", "?", "#"):
                return location     # outside what this proxy serves: nginx leaves it too
            rest = rest[len(base):]
        if not rest.startswith("/"):
            rest = "/" + rest
        authority = self.client_authority(scope)
        if authority is None:
            return rest.encode("latin-1")
        return f"{scope.get('scheme', 'https')}://{authority}{rest}".encode("latin-1")


async def _client_body(receive: Receive) -> AsyncIterator[bytes]:
    """The client's request body as the engine delivers it (it applies flow control underneath)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


class DatasetAndUpstream:
    """``--dataset`` and ``--upstream`` together: the dataset answers ``/api...`` and ``/openapi.json``,
    the application everything else."""

    def __init__(self, dataset, proxy: UpstreamProxy) -> None:
        self.dataset = dataset
        self.proxy = proxy

    async def aclose(self) -> None:
        await self.proxy.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if path == "/api" or path.startswith("/api/") or path == "/openapi.json":
            await self.dataset(scope, receive, send)
        else:
            await self.proxy(scope, receive, send)


def upstream_handler(upstream: Upstream, key_headers: tuple[str, ...] = DEFAULT_KEY_HEADERS,
                     timeout: float = 60.0, dataset=None, ca_file: str | None = None):
    """The handler `tlskit serve --upstream URL [--dataset F]` runs (one per worker process).

    An https upstream is verified against ``ca_file`` (``--upstream-ca-file``) or certifi's roots."""
    settings = ProxySettings(read_timeout=timeout, write_timeout=timeout, connect_timeout=min(timeout, 5.0),
                             key_headers=tuple(key_headers), ca_file=str(ca_file) if ca_file else None)
    proxy = UpstreamProxy(upstream, settings)
    return proxy if dataset is None else DatasetAndUpstream(dataset, proxy)
