"""The plain-text exchanges that turn a mail, FTP or database connection into a TLS one.

Each speaks just enough of its protocol to reach the handshake (RFC 3207 SMTP, RFC 3501 IMAP,
RFC 2595 POP3, RFC 4217 FTP, PostgreSQL's SSLRequest), bounded by the probe's deadline, and fails
with a NetworkError quoting what the server said when it refuses.
"""

from __future__ import annotations

import socket
import struct
import time

from tlskit.errors import InputError, NetworkError, option
from tlskit.probe.target import Target

# Where each protocol listens when no port is given (the plain-text port that upgrades).
STARTTLS_PORTS = {"smtp": 25, "imap": 143, "pop3": 110, "ftp": 21, "postgres": 5432}


def starttls_protocol(name: str | None) -> str | None:
    """The protocol of a STARTTLS name in any case ("SMTP" -> "smtp"); None for none."""
    if name is None:
        return None
    protocol = name.lower()
    if protocol not in STARTTLS_PORTS:
        raise InputError(f"unknown {option('starttls')} {protocol!r}", fix=f"use one of {', '.join(STARTTLS_PORTS)}")
    return protocol


def upgrade(sock: socket.socket, protocol: str, deadline: float, target: Target) -> None:
    """Run ``protocol``'s STARTTLS exchange on ``sock``; on return the next bytes are the TLS handshake."""
    _STARTTLS[protocol](_Plain(sock, deadline, target))


class _Plain:
    """Line-oriented plain-text talk before the upgrade, bounded by the probe's deadline."""

    def __init__(self, sock: socket.socket, deadline: float, target: Target) -> None:
        self.sock, self.deadline, self.target = sock, deadline, target
        self.buffer = b""

    def _timeout(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise NetworkError(f"STARTTLS with {self.target} timed out", "the server stopped answering",
                               f"check {option('starttls')} matches the service, or raise {option('timeout')}")
        return remaining

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self._timeout())
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise NetworkError(f"STARTTLS with {self.target} failed", exc.strerror or str(exc)) from None

    def recv_exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def line(self) -> str:
        while b"\n" not in self.buffer:
            if len(self.buffer) > 65536:
                raise NetworkError(f"STARTTLS with {self.target} failed", "an over-long line from the server")
            self._fill()
        raw, self.buffer = self.buffer.split(b"\n", 1)
        return raw.rstrip(b"\r").decode("utf-8", "replace")

    def _fill(self) -> None:
        self.sock.settimeout(self._timeout())
        try:
            chunk = self.sock.recv(4096)
        except (TimeoutError, socket.timeout):
            raise NetworkError(f"STARTTLS with {self.target} timed out", "the server stopped answering",
                               f"check {option('starttls')} matches the service, or raise {option('timeout')}") from None
        except OSError as exc:
            raise NetworkError(f"STARTTLS with {self.target} failed", exc.strerror or str(exc)) from None
        if not chunk:
            raise NetworkError(f"STARTTLS with {self.target} failed", "the server closed the connection")
        self.buffer += chunk

    def refuse(self, said: str, expected: str) -> NetworkError:
        return NetworkError(f"STARTTLS with {self.target} failed",
                            f"expected {expected}, the server said {said.strip()[:120]!r}",
                            f"check {option('starttls')} matches the service on that port")


def _smtp_reply(plain: _Plain) -> tuple[int, list[str]]:
    """An SMTP reply: "250-first", ..., "250 last" (RFC 5321 4.2.1)."""
    lines = []
    while True:
        line = plain.line()
        lines.append(line)
        if len(line) < 3 or not line[:3].isdigit():
            raise plain.refuse(line, "an SMTP reply")
        if line[3:4] != "-":
            return int(line[:3]), lines


def _expect_reply(plain: _Plain, code: int, expected: str) -> list[str]:
    """The next SMTP-form reply (SMTP, FTP), refused unless it carries ``code``; its lines otherwise."""
    got, lines = _smtp_reply(plain)
    if got != code:
        raise plain.refuse(lines[-1], expected)
    return lines


def _starttls_smtp(plain: _Plain) -> None:
    _expect_reply(plain, 220, "a 220 greeting")
    plain.send(b"EHLO tlskit.invalid\r\n")
    lines = _expect_reply(plain, 250, "250 to EHLO")
    if not any(line[4:].strip().upper().startswith("STARTTLS") for line in lines):
        raise NetworkError(f"{plain.target} does not offer STARTTLS", "it is missing from the EHLO reply",
                           "the server has TLS turned off on this port")
    plain.send(b"STARTTLS\r\n")
    _expect_reply(plain, 220, "220 to STARTTLS")


def _starttls_imap(plain: _Plain) -> None:
    greeting = plain.line()
    if not greeting.upper().startswith("* OK"):
        raise plain.refuse(greeting, "an IMAP '* OK' greeting")
    plain.send(b"t1 STARTTLS\r\n")
    while True:
        line = plain.line()
        if line.startswith("t1 "):
            if not line[3:].upper().startswith("OK"):
                raise plain.refuse(line, "'t1 OK' to STARTTLS")
            return


def _starttls_pop3(plain: _Plain) -> None:
    greeting = plain.line()
    if not greeting.startswith("+OK"):
        raise plain.refuse(greeting, "a POP3 '+OK' greeting")
    plain.send(b"STLS\r\n")
    answer = plain.line()
    if not answer.startswith("+OK"):
        raise plain.refuse(answer, "'+OK' to STLS")


def _starttls_ftp(plain: _Plain) -> None:
    _expect_reply(plain, 220, "a 220 greeting")  # FTP replies share SMTP's multi-line form
    plain.send(b"AUTH TLS\r\n")
    _expect_reply(plain, 234, "234 to AUTH TLS")


def _starttls_postgres(plain: _Plain) -> None:
    # SSLRequest: length 8, then the magic code 1234 << 16 | 5679; the server answers one byte.
    plain.send(struct.pack("!ii", 8, 80877103))
    answer = plain.recv_exact(1)
    if answer != b"S":
        raise plain.refuse(answer.decode("latin-1"), "'S' (SSL accepted)")


_STARTTLS = {"smtp": _starttls_smtp, "imap": _starttls_imap, "pop3": _starttls_pop3, "ftp": _starttls_ftp,
             "postgres": _starttls_postgres}
