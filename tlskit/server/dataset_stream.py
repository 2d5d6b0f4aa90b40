"""A dataset list sent while it is read, so a large answer is never held whole in memory."""

from __future__ import annotations

import json

JSON_HEADERS = [(b"content-type", b"application/json")]
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class RowsBrokeOff(Exception):
    """Raised by a RowStream's rows when the rest cannot be read (the database stopped answering or went
    away mid-list). The stream then ends without its last chunk: the server closes the connection, so the
    client sees a cut-off answer, never a short list that passes for the whole one."""


class RowStream:
    """A list answer sent while it is read: ``{"table": ..., "rows": [`` then each row, then the rest.

    ``rows`` is an async iterator of row dicts whose first row has been read already (so a bad query is
    an error answer, not a broken 200); ``first`` is that row, or None for no rows.
    """

    CHUNK = 32 * 1024

    def __init__(self, table: str, limit: int, offset: int, first: dict | None, rows, on_close=None) -> None:
        self.head = _encode_json({"table": table, "rows": []})[:-2].encode()
        self.tail = f'],"limit":{limit},"offset":{offset}}}'.encode()
        self.first = first
        self.rows = rows
        self.on_close = on_close

    async def send(self, send, head_only: bool) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
            if head_only:
                await send({"type": "http.response.body", "body": b""})
                return
            buffer = bytearray(self.head)
            if self.first is not None:
                buffer += _encode_json(self.first).encode()
                try:
                    async for row in self.rows:
                        buffer += b","
                        buffer += _encode_json(row).encode()
                        if len(buffer) >= self.CHUNK:
                            await send({"type": "http.response.body", "body": bytes(buffer), "more_body": True})
                            buffer.clear()
                except RowsBrokeOff:
                    return
            buffer += self.tail
            await send({"type": "http.response.body", "body": bytes(buffer)})
        finally:
            if self.on_close is not None:
                await self.on_close()
