"""Reading a request body before the handler does (for a credential inside it), and handing it on.

Two credentials live in the body's neighbourhood: an S3 Version 4 signature covers the body's hash
when the client did not declare it, and CData's form posts carry ``authtoken`` as a form field. The
gate reads such a body whole (at most :data:`MAX_BODY`, as the dataset allows), and the handler then
receives it from :class:`Replay` as if it came from the client.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from tlskit.server import query

# The one request-body limit (nginx's client_max_body_size default): the dataset's JSON bodies and
# the bodies the gate reads for a credential. The reverse proxy streams other bodies unbounded.
MAX_BODY = 1024 * 1024
FORM = b"application/x-www-form-urlencoded"


class TooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


def header(scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def has_body(scope) -> bool:
    length = header(scope, b"content-length")
    return (length is not None and length.strip() not in (b"", b"0")) or header(scope, b"transfer-encoding") is not None


def is_form(scope) -> bool:
    value = header(scope, b"content-type")
    return value is not None and value.split(b";", 1)[0].strip().lower() == FORM


async def read_body(receive) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise TooLarge()
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class Replay:
    """An ASGI ``receive`` that first hands over a body already read, then the client's own messages."""

    __slots__ = ("body", "receive", "given")

    def __init__(self, body: bytes, receive) -> None:
        self.body = body
        self.receive = receive
        self.given = False

    async def __call__(self):
        if not self.given:
            self.given = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        return await self.receive()


def form_token(body: bytes) -> tuple[str | None, list[tuple[str, str]]]:
    """The ``authtoken`` (or ``@authtoken``) of a form body, and the other fields. Raises AmbiguousQuery
    (the form follows the query's rule: two tokens, or an odd spelling, are refused)."""
    token = query.find_token(body)
    fields = [(name, value) for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True)
              if not name.lower().lstrip("@").startswith(query.TOKEN_NAME)]
    return token, fields


def without_body_credential(scope, fields: list[tuple[str, str]]) -> tuple[dict, bytes]:
    """The scope and body the handler sees once the token left the form: same fields, new length."""
    body = urlencode(fields).encode("latin-1")
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"transfer-encoding")]
    headers.append((b"content-length", str(len(body)).encode()))
    return {**scope, "headers": headers, "tlskit.form": fields}, body
