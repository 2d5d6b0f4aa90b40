"""A raw HTTPS/1.1 client for fuzzing and load tests: sends exactly the bytes it is given.

http.client and curl refuse or rewrite odd header values and targets; a fuzzer must be able to send
them, so this writes the request line and headers itself over a TLS socket that trusts the server's
CA, and reads the answer to the end (``Connection: close``).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

# What the server's HTTP engine answers itself when the parser rejects a request (the app never sees it).
PARSER_REJECTION = b'{"error":"malformed request"}'


@dataclass
class RawReply:
    status: int                       # 0 when the server closed without an answer
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def json(self):
        import json

        return json.loads(self.body)

    @property
    def from_parser(self) -> bool:
        return self.status == 400 and self.body == PARSER_REJECTION


def tls_context(ca: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    return context


def request(port: int, ca: Path | None, method: bytes | str = b"GET", target: bytes | str = b"/api",
            headers: list[tuple[bytes, bytes]] | None = None, body: bytes | None = None, timeout: float = 30,
            context: ssl.SSLContext | None = None, source: str | None = None) -> RawReply:
    method = method.encode() if isinstance(method, str) else method
    target = target.encode("latin-1") if isinstance(target, str) else target
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: localhost", b"Connection: close"]
    for name, value in headers or []:
        lines.append(name + b": " + value)
    if body is not None:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    payload = b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")
    context = context or tls_context(ca)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(payload)
            chunks = []
            while True:
                try:
                    chunk = tls.recv(65536)
                except (ssl.SSLEOFError, ConnectionResetError):
                    break
                if not chunk:
                    break
                chunks.append(chunk)
    return parse_reply(b"".join(chunks))


def parse_reply(data: bytes) -> RawReply:
    if not data:
        return RawReply(0, {}, b"")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.setdefault(name.strip().lower().decode("latin-1"), []).append(value.strip().decode("latin-1"))
    if "chunked" in (headers.get("transfer-encoding") or [""])[0].lower():
        body = _dechunk(body)
    return RawReply(status, headers, body)


def _dechunk(body: bytes) -> bytes:
    out = []
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out.append(rest[:size])
        body = rest[size + 2:]
    return b"".join(out)
