"""The HTTP/1.1 server under `tlskit serve`: httptools (llhttp) parsing, ASGI 3 to the application,
and nginx's client limits enforced before the application sees a request.

Why our own protocol instead of uvicorn's: uvicorn's httptools protocol appends trailer fields to the
request's headers, has no limit on header sizes or counts, no header or TLS handshake timeout and no
per-address connection cap, and none of that can be added from outside. The parser stays the
maintained llhttp (through httptools, as uvicorn uses it); this module is the connection state
machine around it: what a request's headers are (frozen when they end; trailers are dropped), how big
they may be, how long a client may take, when a connection is kept or closed.

One :class:`HttpConnection` per TCP connection (after TLS, see :mod:`.listener`). Requests on a
connection are answered in order; a pipelined request waits until the one before it has its answer.
Limits and their defaults are :class:`HttpLimits`; the listener's sweeper calls
:meth:`HttpConnection.check_deadline` about four times a second, so no timer is armed per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import unquote

import httptools

from tlskit.server.exchange import REASONS, Request
from tlskit.server.hosts import parse_host

log = logging.getLogger("tlskit.serve")

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}
# A request body beyond this much unread data stops the reading of the socket until the app catches up.
BODY_HIGH_WATER = 65536
@dataclass(frozen=True)
class HttpLimits:
    """What a client may send and how long it may take; every value a `tlskit serve` flag.

    Defaults next to nginx's: nginx reads a header line of up to 8 KiB and 32 KiB of headers
    (``large_client_header_buffers 4 8k``); these allow twice that. nginx has no field count; Apache's
    ``LimitRequestFields`` is 100. ``client_header_timeout`` and ``client_body_timeout`` are 60 s,
    ``send_timeout`` 60 s, ``keepalive_timeout`` 75 s, ``keepalive_requests`` 1000, and
    ``ssl_handshake_timeout`` 60 s; nginx caps connections per worker (``worker_connections`` 512)
    but not per address.
    """

    max_header_line: int = 16 * 1024       # bytes in the request line or in one header field line
    max_header_size: int = 64 * 1024       # bytes in the whole header section
    max_header_fields: int = 100
    header_timeout: float = 30.0           # seconds from the first byte of a request to its last header
    handshake_timeout: float = 10.0        # seconds for the TLS handshake
    body_timeout: float = 60.0             # seconds between two reads of a body the app waits for
    send_timeout: float = 60.0             # seconds a client may leave our answer unread
    keepalive_timeout: float = 75.0        # seconds an idle keep-alive connection stays open
    keepalive_requests: int = 1000         # requests on one connection before it is closed
    max_pending_per_ip: int = 128          # connections of one address without a complete request yet
    max_connections: int = 10000           # connections per worker process (the fd limit may lower it)


class _Refuse(Exception):
    """Raised inside a parser callback to stop parsing and answer with ``status``."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail


class ServerState:
    """What all connections of one listener share: the app, the limits, the clock-derived Date header."""

    def __init__(self, app, limits: HttpLimits, scheme: str, server_address: tuple[str, int]) -> None:
        self.app = app
        self.limits = limits
        self.scheme = scheme
        self.server_address = server_address
        self.connections: set[HttpConnection] = set()
        self.shutting_down = False
        self.date_header = b""
        self.on_settled = None            # called once per connection when its first request has headers
        self.refusal_headers = b""        # extra header lines (HSTS...) on the answers the engine makes itself
        # with --client-ca: the client's certificate (DER) -> ClientCertificate, after each handshake
        self.client_certificates = None
        self.refresh_date()

    def refresh_date(self) -> None:
        self.date_header = b"date: " + formatdate(usegmt=True).encode() + b"\r\n"


class HttpConnection(asyncio.Protocol):
    """One client connection: parse, enforce limits, run the app for each request, frame its answers."""

    def __init__(self, state: ServerState, client: tuple[str, int], tls: bool) -> None:
        self.state = state
        self.tls = tls
        self.limits = state.limits
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.settled = False                  # the first request's headers arrived (no longer "pending")
        self.closed = False
        self.requests_seen = 0
        # the request being parsed
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.hosts = 0
        self.headers_done = True              # True between messages: no header phase open
        self.parsing: Request | None = None
        # requests with parsed headers, oldest first; the head of the queue is the one being answered
        self.queue: deque[Request] = deque()
        self.reading_paused = False
        self.write_paused = False
        self.drain_waiters: list[asyncio.Future] = []
        # deadlines (loop time), checked by the listener's sweeper
        self.read_deadline: float | None = None
        self.read_phase = ""                  # "first", "idle", "header", "body"
        self.write_deadline: float | None = None

    # --- transport callbacks ----------------------------------------------------------------------

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.state.connections.add(self)
        self._read_deadline("first", self.limits.header_timeout)
        if self.state.client_certificates is not None and self.tls:
            self.client_cert = _peer_certificate(transport, self.state.client_certificates)

    client_cert = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.state.connections.discard(self)
        self.settle()
        for request in self.queue:
            request.disconnected()
        if self.parsing is not None and self.parsing not in self.queue:
            self.parsing.disconnected()
        self._wake_writers()

    def pause_writing(self) -> None:
        self.write_paused = True
        self.write_deadline = time.monotonic() + self.limits.send_timeout

    def resume_writing(self) -> None:
        self.write_paused = False
        self.write_deadline = None
        self._wake_writers()

    def _wake_writers(self) -> None:
        waiters, self.drain_waiters = self.drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def eof_received(self) -> bool | None:
        # A half-closed plain-HTTP client may still wait for its answer: keep writing, then close.
        # (TLS transports close on EOF whatever this returns.)
        return True if self.queue and not self.tls else None

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        in_headers = not self.headers_done
        self._finished_in_read = False
        if self.read_phase in ("first", "idle") and self.headers_done:
            self._read_deadline("header", self.limits.header_timeout)
        elif self.read_phase == "body":
            self._read_deadline("body", self.limits.body_timeout)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refusal = exc.__context__
            if isinstance(refusal, _Refuse):
                self._refuse(refusal.status, refusal.detail)
            else:
                log.error("HTTP parser callback failed: %s", type(refusal).__name__)
                self._refuse(400, "bad request")
            return
        except httptools.HttpParserUpgrade:
            # Upgrades (WebSocket, h2c) are not served: the request is answered as plain HTTP and the
            # connection closes after it, so the upgraded bytes are never parsed as HTTP.
            if self.queue:
                self.queue[-1].keep_alive = False
            return
        except httptools.HttpParserError:
            self._refuse(400, "malformed request")
            return
        if not self.headers_done:
            self._bound_partial_header(data, in_headers)

    def _bound_partial_header(self, data: bytes, in_headers: bool) -> None:
        """Headers are still incomplete after this read: bound what the parser holds of them.

        Complete fields are counted exactly in :meth:`on_header`; the line still open is counted from
        this read. When another request ended inside this read, the bytes before the new one are not
        known here, so that read is not counted (it is at most one socket read anyway).
        """
        end = data.rfind(b"\n")
        if self._finished_in_read:
            self._open_line = 0
        elif end >= 0:
            self._open_line = len(data) - end - 1
        elif in_headers:
            self._open_line += len(data)
        if self._open_line > self.limits.max_header_line:
            self._refuse(431, "header field too large")
        elif self.header_bytes + len(self.url) + self._open_line > self.limits.max_header_size:
            self._refuse(431, "header section too large")

    _open_line = 0
    _finished_in_read = False

    # --- parser callbacks ---------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.hosts = 0
        self._open_line = 0
        self.headers_done = False
        if self.read_phase != "header":
            self._read_deadline("header", self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_header_line:
            raise _Refuse(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.headers_done:
            return  # a trailer field of a chunked body: never a header
        size = len(name) + len(value)
        self.header_bytes += size + 4
        if size + 2 > self.limits.max_header_line:
            raise _Refuse(431, "header field too large")
        if self.header_bytes > self.limits.max_header_size:
            raise _Refuse(431, "header section too large")
        if len(self.headers) >= self.limits.max_header_fields:
            raise _Refuse(431, "too many header fields")
        name = name.lower()
        if name == b"host":
            self.hosts += 1
            if self.hosts > 1:
                raise _Refuse(400, "more than one Host field")
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        self._open_line = 0
        parser = self.parser
        version = parser.get_http_version()
        if version == "1.1" and not self.hosts:
            raise _Refuse(400, "HTTP/1.1 request without Host")
        if self.hosts:
            host = next(value for name, value in self.headers if name == b"host")
            if parse_host(host) is None:
                raise _Refuse(400, "malformed Host")
        method = parser.get_method().decode("ascii")
        if method == "CONNECT":
            raise _Refuse(405, "CONNECT is not served")
        try:
            parsed = httptools.parse_url(self.url)
        except httptools.HttpParserInvalidURLError:
            raise _Refuse(400, "malformed request target") from None
        raw_path = parsed.path or b"/"
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path, encoding="latin-1")
        scope = {
            "type": "http", "asgi": ASGI_VERSION, "http_version": version, "server": self.state.server_address,
            "client": self.client, "scheme": self.state.scheme, "method": method, "root_path": "",
            "path": path, "raw_path": raw_path, "query_string": parsed.query or b"", "headers": self.headers,
            "tlskit.client_cert": self.client_cert,
        }
        self.requests_seen += 1
        keep_alive = (parser.should_keep_alive() and not self.state.shutting_down
                      and self.requests_seen < self.limits.keepalive_requests)
        request = Request(self, scope, keep_alive, method == "HEAD")
        if (b"expect", b"100-continue") in self.headers:
            request.expect_continue = True
        self.parsing = request
        self.settle()
        self.queue.append(request)
        if len(self.queue) == 1:
            request.start()
        elif not self.reading_paused:
            # A pipelined request waits its turn; read no further until it has one.
            self.transport.pause_reading()
            self.reading_paused = True
        self.read_deadline = None
        self.read_phase = "body"

    def on_body(self, body: bytes) -> None:
        request = self.parsing
        if request is None:
            return
        request.body.append(body)
        request.body_size += len(body)
        request.wake()
        if request.body_size > BODY_HIGH_WATER and not self.reading_paused:
            self.transport.pause_reading()
            self.reading_paused = True

    def on_message_complete(self) -> None:
        self._finished_in_read = True
        request = self.parsing
        self.parsing = None
        if request is not None:
            request.body_complete = True
            request.wake()
        self.read_deadline = None
        self.read_phase = "idle"

    # --- answering ----------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.write_paused and not self.closed:
            waiter = asyncio.get_running_loop().create_future()
            self.drain_waiters.append(waiter)
            await waiter

    def request_done(self, request: Request) -> None:
        """The head request has its whole answer: keep the connection for the next one, or close it."""
        if self.queue and self.queue[0] is request:
            self.queue.popleft()
        if self.closed:
            return
        if not request.keep_alive or not request.body_complete:
            # An unread body would be parsed as the next request: close instead of guessing.
            self.close()
            return
        if self.queue:
            self.queue[0].start()
        else:
            self._read_deadline("idle", self.limits.keepalive_timeout)
        if self.reading_paused and len(self.queue) <= 1:
            self.reading_paused = False
            self.transport.resume_reading()

    def resume_body(self) -> None:
        """The app read what was buffered: read more of a body that was paused at the high-water mark."""
        if self.reading_paused and len(self.queue) <= 1 and not self.closed:
            self.reading_paused = False
            self.transport.resume_reading()
            self._read_deadline("body", self.limits.body_timeout)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    def _refuse(self, status: int, detail: str) -> None:
        """Answer a request we will not parse further (or that timed out), then close."""
        if self.closed:
            return
        if self.queue and self.queue[0].started_response:
            self.abort()      # an answer is on the wire: a second one would corrupt it
            return
        body = b'{"error":"%s"}' % detail.encode()
        self.write(b"HTTP/1.1 %d %s\r\n%s%scontent-type: application/json\r\ncontent-length: %d\r\n"
                   b"connection: close\r\n\r\n%s" % (status, REASONS.get(status, "Error").encode(),
                                                     self.state.date_header, self.state.refusal_headers,
                                                     len(body), body))
        self.close()

    # --- timeouts and accounting ---------------------------------------------------------------------

    def _read_deadline(self, phase: str, seconds: float) -> None:
        self.read_phase = phase
        self.read_deadline = time.monotonic() + seconds

    def check_deadline(self, now: float) -> None:
        """Called by the listener's sweeper: act on a read or write that took too long."""
        if self.write_deadline is not None and now >= self.write_deadline:
            self.abort()
            return
        if self.read_deadline is None or now < self.read_deadline:
            return
        phase = self.read_phase
        if phase == "header" and not self.headers_done and not self.queue:
            self._refuse(408, "request headers took too long")
        elif phase == "body" and self.queue and not self.queue[0].started_response:
            self._refuse(408, "request body took too long")
        else:
            self.close()

    def settle(self) -> None:
        if not self.settled:
            self.settled = True
            if self.state.on_settled is not None:
                self.state.on_settled(self)

    @property
    def idle(self) -> bool:
        return not self.queue and self.headers_done and self.read_phase == "idle"


def _peer_certificate(transport, verifier):
    """The client's certificate, as the TLS layer verified it (None when it sent none)."""
    ssl_object = transport.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return verifier(der) if der else None
