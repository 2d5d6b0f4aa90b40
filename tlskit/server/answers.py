"""Answers the server builds itself, and the ASGI lifespan loop: one home for the message shapes.

Handlers answer with :func:`answer_json` (the body already encoded) or :func:`answer_plain`; both send
``content-length`` and no body for HEAD. :func:`lifespan` is the startup/shutdown handshake an ASGI
server may run before the first request.
"""

from __future__ import annotations

JSON = b"application/json"


async def answer(send, status: int, body: bytes, content_type: bytes, headers=(), method: str = "GET") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def answer_json(send, status: int, body: bytes, headers=(), method: str = "GET") -> None:
    await answer(send, status, body, JSON, headers, method)


async def answer_plain(send, status: int, body: bytes, headers=(), method: str = "GET") -> None:
    await answer(send, status, body, b"text/plain; charset=utf-8", headers, method)


async def lifespan(receive, send, on_shutdown=None) -> None:
    """Acknowledge startup and shutdown (running ``on_shutdown`` first, when given)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if on_shutdown is not None:
                await on_shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return
