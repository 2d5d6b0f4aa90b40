"""The reverse proxy's side towards the application: aiohttp's connection pool, response parser and
connection protocol, driven one request at a time.

What aiohttp does here is what a hand-written client gets wrong: connecting (with TLS verification),
keeping idle connections and dropping the ones the application closed, reading each response strictly
by its framing with the llhttp parser (Content-Length, chunked, read-until-close, no body for HEAD,
204 and 304), flow control both ways, and the idle read timeout. What this module adds is the proxy's
own rules on top:

- a pooled connection is handed out only if nothing is waiting on it: bytes the application sent
  while the connection sat idle (an answer to a request smuggled in an unread body, or a second,
  unrequested answer) poison it, and it is closed instead of answering the next user;
- a connection that carried a request body is never pooled again. Whether the application read the
  body cannot be known: one that answers first may then read the body as its next request, and the
  answer to that can reach us after the next user's request went out on the connection (TCP holds a
  small second write back until its first is acknowledged, and our next request is that
  acknowledgement), so no check for waiting bytes can catch it. A new connection per upload costs
  a TCP handshake; a client-written request answering another user costs far more;
- interim answers 100, 102 and 103 are skipped; 101 or any other 1xx is refused (the proxy does not
  switch protocols and never asked for anything else);
- the request head is ours, byte for byte (the raw path is never re-quoted, no default headers).

Only the aiohttp pieces below are used, all with aiohttp 3.14 (pinned in pyproject.toml; the attack
tests in tests/attacks/test_attack_upstream.py fail if any of them changes meaning):

- ``TCPConnector.connect(request, traces, timeout)``, which reads only the addressing and TLS
  settings of ``request``: one ``ClientRequest`` for the upstream's origin serves every call;
- ``Connection.protocol``, ``Connection.release()`` (pools the connection unless the protocol says
  ``should_close``) and ``Connection.close()``;
- on the protocol (``ResponseHandler``): ``set_response_params()`` (a fresh response parser for each
  request), ``start_timeout()``, ``read()`` (the next parsed response head and its body stream),
  ``should_close`` (true when parsed or queued bytes are waiting, the body is unfinished, or the
  answer said ``Connection: close``) and ``transport``;
- ``StreamReader.readany()``, ``read_nowait()`` and ``is_eof()`` for the body, and ``StreamWriter``
  for the request body (chunked framing and write flow control).

Example::

    client = UpstreamClient("http", "127.0.0.1", 8000, UpstreamOptions())
    answer = await client.send(b"GET / HTTP/1.1\\r\\nhost: 127.0.0.1:8000\\r\\n\\r\\n", "GET")
    while piece := await answer.read():
        ...
    await client.aclose()
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_writer import StreamWriter
from yarl import URL

__all__ = ["ClientGone", "UpstreamClient", "UpstreamFailed", "UpstreamOptions", "UpstreamResponse",
           "UpstreamTimeout"]

# RFC 9110 9.2.2: a request that may be sent again when a pooled connection turns out to be closed.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# RFC 9110 15.2: interim answers a proxy may pass over (Continue, Processing, Early Hints). We never
# send Expect or Upgrade, so 101 and the unassigned codes mean an application out of step with us.
SKIPPED_INTERIM = frozenset({100, 102, 103})
# Errors that mean "the upstream failed", as opposed to a bug here.
_UPSTREAM_ERRORS = (aiohttp.ClientError, HttpProcessingError, OSError)


class UpstreamTimeout(Exception):
    """The upstream did not connect, answer or read our request in time (a 504)."""


class UpstreamFailed(Exception):
    """The upstream could not be reached or answered something that is not a usable HTTP answer (a 502)."""


class ClientGone(Exception):
    """The client disconnected while its request body was being sent upstream."""


@dataclass(frozen=True)
class UpstreamOptions:
    """Timeouts in seconds; ``read_timeout`` bounds the wait for the answer and between two of its pieces.

    ``keepalive_timeout`` stays below the idle timeouts of common application servers (uvicorn 5 s,
    Node 5 s) so that we, not they, close an idle connection: one they close just as we reuse it
    costs a retry, or a 502 for a request whose body cannot be sent again.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    write_timeout: float = 60.0
    max_connections: int = 1024      # open at once to the upstream; more requests wait for one
    keepalive_timeout: float = 4.0
    max_header_line: int = 16 * 1024  # an answer's status line or one header field
    max_header_fields: int = 128
    ssl_context: ssl.SSLContext | None = None   # https upstreams


class UpstreamClient:
    """Sends requests to one upstream origin over a pool of keep-alive connections.

    Built lazily in the event loop that uses it (aiohttp binds its connector to the running loop);
    one per worker process.
    """

    def __init__(self, scheme: str, host: str, port: int, options: UpstreamOptions) -> None:
        self.options = options
        self._origin = URL.build(scheme=scheme, host=host, port=port)
        self._connector: aiohttp.TCPConnector | None = None
        self._target: aiohttp.ClientRequest | None = None
        self._timeout = aiohttp.ClientTimeout(total=None, connect=options.connect_timeout)
        self._used: weakref.WeakSet[ResponseHandler] = weakref.WeakSet()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._connector = aiohttp.TCPConnector(limit=self.options.max_connections, limit_per_host=0,
                                               keepalive_timeout=self.options.keepalive_timeout)
        # Only the origin and the TLS settings of this request are ever read (by connect()).
        self._target = aiohttp.ClientRequest("GET", self._origin, loop=loop,
                                             ssl=self.options.ssl_context or True)

    async def aclose(self) -> None:
        """Close every connection, idle or in use."""
        if self._connector is not None:
            await self._connector.close()

    async def send(self, head: bytes, method: str, body: AsyncIterator[bytes] | None = None,
                   chunked: bool = False) -> UpstreamResponse:
        """Send a request (``head`` is its request line and header section, the blank line included)
        and return once the final answer's head has arrived.

        ``body`` yields the request body as the client sends it; ``chunked`` frames it with chunked
        transfer coding (the head then says so). Raises UpstreamTimeout, UpstreamFailed or ClientGone.
        """
        if self._connector is None:
            self._start()
        retry = body is None and method in IDEMPOTENT
        while True:
            connection, reused = await self._acquire()
            try:
                return await self._exchange(connection, head, method, body, chunked)
            except _Stale:
                connection.close()
                if not (retry and reused):
                    raise UpstreamFailed("the upstream closed the connection without answering") from None
                retry = False     # once, on a connection of its own

    async def _acquire(self) -> tuple[aiohttp.connector.Connection, bool]:
        """A connection with nothing pending on it; ``reused`` when it served a request before."""
        assert self._connector is not None and self._target is not None
        while True:
            try:
                connection = await self._connector.connect(self._target, [], self._timeout)
            except asyncio.TimeoutError:
                raise UpstreamTimeout("connect timed out") from None
            except _UPSTREAM_ERRORS as exc:
                raise UpstreamFailed(_reason(exc)) from None
            protocol = connection.protocol
            if protocol is None or protocol.should_close or protocol.transport is None:
                connection.close()    # bytes arrived while it was idle: never hand them to this request
                continue
            reused = protocol in self._used
            self._used.add(protocol)
            return connection, reused

    async def _exchange(self, connection, head: bytes, method: str, body: AsyncIterator[bytes] | None,
                        chunked: bool) -> UpstreamResponse:
        options = self.options
        protocol: ResponseHandler = connection.protocol
        protocol.set_response_params(skip_payload=method == "HEAD", read_until_eof=True, auto_decompress=False,
                                     read_timeout=options.read_timeout, max_line_size=options.max_header_line,
                                     max_field_size=options.max_header_line,
                                     max_headers=options.max_header_fields)
        transport = protocol.transport
        if transport is None or transport.is_closing():
            raise _Stale()
        transport.write(head)
        writer = None
        if body is None:
            protocol.start_timeout()
        else:
            writer = asyncio.ensure_future(self._send_body(connection, protocol, body, chunked))
        try:
            status, headers, payload = await self._final_head(protocol)
        except BaseException as exc:
            connection.close()
            if writer is None:
                raise
            if not writer.done():
                writer.cancel()
            failed = await _outcome(writer)
            if isinstance(failed, (ClientGone, UpstreamTimeout)):
                raise failed from None   # the real cause: the connection was closed because of it
            if isinstance(exc, _Stale):  # a body was consumed: it cannot be sent again
                raise UpstreamFailed("the upstream closed the connection without answering") from None
            raise
        # Only a connection that carried no body goes back to the pool (see the module's docstring).
        reusable = writer is None
        return UpstreamResponse(status, headers, connection, payload, writer, reusable)

    async def _final_head(self, protocol: ResponseHandler):
        while True:
            try:
                message, payload = await protocol.read()
            except asyncio.TimeoutError:
                raise UpstreamTimeout("no answer in time") from None
            except aiohttp.ServerDisconnectedError:
                raise _Stale() from None
            except aiohttp.ClientOSError as exc:
                if exc.errno in _RESET_ERRNOS:
                    raise _Stale() from None
                raise UpstreamFailed(_reason(exc)) from None
            except _UPSTREAM_ERRORS as exc:
                raise UpstreamFailed(_reason(exc)) from None
            code = message.code
            if code >= 200:
                return code, message.raw_headers, payload
            if code not in SKIPPED_INTERIM:
                raise UpstreamFailed(f"unexpected interim answer {code}")

    async def _send_body(self, connection, protocol: ResponseHandler, body: AsyncIterator[bytes],
                         chunked: bool) -> None:
        """The client's body to the upstream as it arrives; on any failure the connection is closed,
        which wakes the reader of the answer."""
        writer = StreamWriter(protocol, asyncio.get_running_loop())
        if chunked:
            writer.enable_chunking()
        try:
            async for chunk in body:
                async with asyncio.timeout(self.options.write_timeout):
                    await writer.write(chunk)
            async with asyncio.timeout(self.options.write_timeout):
                await writer.write_eof()
        except TimeoutError:
            connection.close()
            raise UpstreamTimeout("the upstream did not read the request body in time") from None
        except BaseException:
            connection.close()
            raise
        protocol.start_timeout()


class UpstreamResponse:
    """The final answer's status and raw headers; its body is read with :meth:`read` or
    :meth:`read_whole`. The connection goes back to the pool (or is closed) when the body ends."""

    __slots__ = ("status", "headers", "_connection", "_payload", "_writer", "_reusable")

    def __init__(self, status: int, headers: tuple[tuple[bytes, bytes], ...], connection, payload,
                 writer: asyncio.Future | None, reusable: bool) -> None:
        self.status = status
        self.headers = headers
        self._connection = connection
        self._payload = payload
        self._writer = writer
        self._reusable = reusable

    def read_whole(self) -> bytes | None:
        """The whole body when it has already arrived (a small answer), else None."""
        payload = self._payload
        if not payload.is_eof() or payload.exception() is not None:
            return None
        data = payload.read_nowait()
        self._finish()
        return data

    async def read(self) -> bytes:
        """The next piece of the body, b"" at its end. Raises UpstreamTimeout or UpstreamFailed when the
        upstream stalls or breaks off."""
        try:
            data = await self._payload.readany()
        except asyncio.TimeoutError:
            self.close()
            raise UpstreamTimeout("the answer stalled") from None
        except _UPSTREAM_ERRORS as exc:
            self.close()
            raise UpstreamFailed(_reason(exc)) from None
        if not data:
            self._finish()
        return data

    async def upload_finished(self) -> None:
        """Wait until the request body has been sent (or failed): until then it reads the client's
        messages, and nothing else may."""
        if self._writer is not None:
            await _outcome(self._writer)

    @property
    def client_left(self) -> bool:
        """The client disconnected in the middle of its upload."""
        writer = self._writer
        return (writer is not None and writer.done() and not writer.cancelled()
                and isinstance(writer.exception(), ClientGone))

    def _finish(self) -> None:
        writer = self._writer
        if writer is not None and not writer.done():
            writer.cancel()       # the answer is complete: the rest of the upload is not wanted
            self._reusable = False
        if self._reusable:
            self._connection.release()
        else:
            self._connection.close()

    def close(self) -> None:
        """Give up on the answer: the connection is closed, never pooled."""
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
        self._connection.close()


class _Stale(Exception):
    """The connection was closed under us before any answer: a request without a body may be retried."""


_RESET_ERRNOS = frozenset({104, 32})   # ECONNRESET, EPIPE


async def _outcome(task: asyncio.Future) -> BaseException | None:
    """Wait for ``task`` and return what it raised (None when it succeeded or was cancelled)."""
    try:
        await task
    except asyncio.CancelledError:
        return None
    except BaseException as exc:
        return exc
    return None


def _reason(exc: BaseException) -> str:
    """One line for the log: what went wrong with the upstream."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"certificate verify failed ({exc.certificate_error})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        return " ".join(str(cause).split()) or type(cause).__name__
    if isinstance(exc, HttpProcessingError):
        return f"unparsable answer ({exc.message})"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer broke off"
    return " ".join(str(exc).split()) or type(exc).__name__

