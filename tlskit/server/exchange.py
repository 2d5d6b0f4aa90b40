"""One request/response exchange of the HTTP engine (:mod:`.engine`): the app's ASGI ``receive`` and
``send`` for a request, and the framing of its answer.

The answer's head waits for the first body piece, so a small answer leaves in one TLS record and one
write. A declared ``Content-Length`` is held to: more bytes are cut and the connection closed, fewer
cut the connection, so a client never takes a wrong answer for a whole one. Without a length an
HTTP/1.1 answer is chunked and an HTTP/1.0 one ends with the connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tlskit.server.engine import HttpConnection

log = logging.getLogger("tlskit.serve")

NO_BODY_STATUS = frozenset({204, 304})
REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content",
    301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    409: "Conflict", 411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
    415: "Unsupported Media Type", 421: "Misdirected Request", 422: "Unprocessable Content",
    429: "Too Many Requests", 431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


class Request:
    """One request/response cycle: the ASGI ``receive`` and ``send`` of the app call for it."""

    __slots__ = ("connection", "scope", "keep_alive", "head", "expect_continue", "body", "body_size",
                 "body_complete", "final_body_sent", "gone", "waiter", "started_response", "chunked",
                 "pending_head", "complete", "no_body", "remaining")

    def __init__(self, connection: HttpConnection, scope: dict, keep_alive: bool, head: bool) -> None:
        self.connection = connection
        self.scope = scope
        self.keep_alive = keep_alive
        self.head = head
        self.expect_continue = False
        self.body: list[bytes] = []
        self.body_size = 0
        self.body_complete = False
        self.final_body_sent = False
        self.gone = False
        self.waiter: asyncio.Future | None = None
        self.started_response = False
        self.chunked = False
        self.pending_head: bytes | None = None
        self.complete = False
        self.no_body = False
        self.remaining: int | None = None     # body bytes still owed under the declared Content-Length

    def start(self) -> None:
        asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        try:
            await self.connection.state.app(self.scope, self.receive, self.send)
        except Exception as exc:  # a bug in the app: one log line, a 500 if nothing was sent yet
            log.error("application failed on %s %s: %s", self.scope["method"], self.scope["path"],
                      type(exc).__name__)
            if not self.started_response:
                self.keep_alive = False
                await self.send({"type": "http.response.start", "status": 500,
                                 "headers": [(b"content-type", b"application/json")]})
                await self.send({"type": "http.response.body", "body": b'{"error":"internal error"}'})
            else:
                self.connection.abort()
        if not self.complete:
            if self.started_response:
                self.connection.abort()       # the app stopped mid-answer: never pass it off as whole
            else:
                self.keep_alive = False
                await self.send({"type": "http.response.start", "status": 500, "headers": []})
                await self.send({"type": "http.response.body", "body": b""})

    # --- receive ----------------------------------------------------------------------------------

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def disconnected(self) -> None:
        self.gone = True
        self.wake()

    async def receive(self) -> dict[str, Any]:
        while True:
            if self.body:
                data = b"".join(self.body) if len(self.body) > 1 else self.body[0]
                self.body.clear()
                self.body_size = 0
                self.connection.resume_body()
                more = not self.body_complete
                if not more:
                    self.final_body_sent = True
                return {"type": "http.request", "body": data, "more_body": more}
            if self.body_complete and not self.final_body_sent:
                self.final_body_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.gone or self.complete:
                return {"type": "http.disconnect"}
            if self.expect_continue and not self.started_response:
                self.expect_continue = False
                self.connection.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if not self.body_complete:
                self.connection.resume_body()
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    # --- send -------------------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        connection = self.connection
        kind = message["type"]
        if not self.started_response:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind}")
            self.started_response = True
            self.expect_continue = False
            self.pending_head = self._head(message["status"], message.get("headers", ()))
            return
        if kind != "http.response.body":
            raise RuntimeError(f"expected http.response.body, got {kind}")
        if self.complete:
            raise RuntimeError("the response is already complete")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self.no_body:
            body = b""
        elif self.remaining is not None:
            if len(body) > self.remaining:
                # More than the app declared: what is beyond would be read as the next answer.
                body = body[:self.remaining]
                self.keep_alive = False
            self.remaining -= len(body)
            if not more and self.remaining:
                head, self.pending_head = self.pending_head, None
                connection.write((head or b"") + body)
                self.complete = True
                connection.abort()          # shorter than declared: the client must not take it as whole
                connection.request_done(self)
                return
        elif self.chunked and body:
            body = b"%x\r\n%s\r\n" % (len(body), body)
        if not more and self.chunked:
            body += b"0\r\n\r\n"
        head, self.pending_head = self.pending_head, None
        data = head + body if head is not None else body
        if data:
            connection.write(data)
        if not more:
            self.complete = True
            self.wake()
            connection.request_done(self)
        elif connection.write_paused:
            await connection.drain()

    def _head(self, status: int, headers) -> bytes:
        connection = self.connection
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Unknown").encode()), connection.state.date_header]
        length = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-length":
                if value.isdigit():
                    length = value
                continue
            if lowered == b"connection":
                if value.lower() == b"close":
                    self.keep_alive = False
                continue
            if lowered == b"transfer-encoding":
                continue  # framing is ours
            lines.append(b"%s: %s\r\n" % (name, value))
        if self.head or status in NO_BODY_STATUS or status < 200:
            self.no_body = True
            if length is not None and status not in NO_BODY_STATUS:
                lines.append(b"content-length: %s\r\n" % length)
        elif length is not None:
            self.remaining = int(length)
            lines.append(b"content-length: %s\r\n" % length)
        elif self.scope["http_version"] == "1.1":
            self.chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
        else:
            self.keep_alive = False   # an HTTP/1.0 body without a length ends with the connection
        if not self.keep_alive:
            lines.append(b"connection: close\r\n")
        elif self.scope["http_version"] == "1.0":
            lines.append(b"connection: keep-alive\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)
