"""Tools for the attack tests (tests/attacks/): what a hostile client or a sloppy upstream does.

- :class:`RawConnection`: one TLS connection from a chosen source address that sends exactly the bytes
  it is given, in as many writes as asked, and reads answers strictly by their framing (several on one
  keep-alive connection), or tells when the server closed it.
- :func:`cpu_seconds` and :func:`peak_rss` read a server process's CPU time and memory high-water mark
  from /proc, so a test can bound what an attack costs the server.
- :class:`SloppyUpstream`: a raw HTTP/1.1 application that can misbehave on purpose (ignore a GET body,
  answer twice, answer 101, redirect to its own origin) to attack the reverse proxy's upstream side.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from peers_rawhttp import RawReply, parse_reply


def tls_client_context(ca: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    if ca is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class RawConnection:
    """A kept-open HTTPS/1.1 connection that writes raw bytes (``source``: the local address to bind)."""

    def __init__(self, port: int, ca: Path | None, *, source: str = "127.0.0.1", timeout: float = 15,
                 tls: bool = True, server_hostname: str = "localhost") -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.sock = tls_client_context(ca).wrap_socket(raw, server_hostname=server_hostname) if tls else raw
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, target: str, headers: list[tuple[str, str]] = (), body: bytes | None = None,
                host: str | None = "localhost") -> RawReply:
        """Send one request (keep-alive) and read its answer."""
        lines = [f"{method} {target} HTTP/1.1"]
        if host is not None:
            lines.append(f"Host: {host}")
        lines += [f"{name}: {value}" for name, value in headers]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        return self.read_reply()

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError, ssl.SSLZeroReturnError):
            chunk = b""
        if chunk:
            self.buffer += chunk
        return bool(chunk)

    def read_reply(self, head_only: bool = False) -> RawReply:
        """One answer, read by its framing (Content-Length or chunked); status 0 when the server closed."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                reply, self.buffer = parse_reply(self.buffer), b""
                return reply
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        reply = parse_reply(head + b"\r\n\r\n")
        if head_only or reply.status in (204, 304) or 100 <= reply.status < 200:
            self.buffer = rest
            return reply
        length = reply.header("content-length")
        if length is not None:
            while len(rest) < int(length):
                if not self._fill():
                    break
                rest = self.buffer.partition(b"\r\n\r\n")[2]
            body, self.buffer = rest[:int(length)], rest[int(length):]
            return RawReply(reply.status, reply.headers, body)
        if "chunked" in (reply.header("transfer-encoding") or ""):
            while not rest.endswith(b"0\r\n\r\n") and b"\r\n0\r\n\r\n" not in rest:
                if not self._fill():
                    break
                rest = self.buffer.partition(b"\r\n\r\n")[2]
            end = rest.find(b"0\r\n\r\n") + 5 if rest.startswith(b"0\r\n") else rest.find(b"\r\n0\r\n\r\n") + 7
            full = parse_reply(head + b"\r\n\r\n" + rest[:end])
            self.buffer = rest[end:]
            return full
        while self._fill():
            pass
        body, self.buffer = self.buffer.partition(b"\r\n\r\n")[2], b""
        return RawReply(reply.status, reply.headers, body)

    def closed_within(self, seconds: float) -> bool:
        """True when the server closes the connection (after anything it still sends) within ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return False
            except (ssl.SSLError, ConnectionResetError, OSError):
                return True
            if not chunk:
                return True
            self.buffer += chunk
        return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def peak_rss(pid: int) -> int:
    """The process's resident-memory high-water mark (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


# --- a sloppy upstream ------------------------------------------------------------------------------

@dataclass
class SloppyUpstream:
    """A raw HTTP/1.1 upstream on 127.0.0.1 whose misbehaviour each path selects.

    Every answer's body names the path it answers (``answer for /x``), so a test sees exactly which
    request a response belongs to. Paths:

    - ``/ignore-body...``  answers without reading a body, then reads the body bytes as the next request
      (what an application that does not expect a GET body does);
    - ``/twice...``        answers, then immediately answers again (an unrequested second response);
    - ``/late-twice...``   answers, then answers again a moment later (while the connection sits idle);
    - ``/switch``          answers ``101 Switching Protocols``; ``/info199`` answers ``199`` first;
    - ``/interim``         answers ``103 Early Hints``, ``100 Continue`` and ``102 Processing`` first;
    - ``/redirect?to=X``   answers 302 with ``Location: X`` (``{origin}`` in X is the upstream's own origin);
    - anything else        answers normally, reading a Content-Length body.

    Under a base path (``/base/redirect...``, an ``--upstream .../base``) the same paths behave the same.
    """

    sock: socket.socket
    threads: list[threading.Thread] = field(default_factory=list)
    requests: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    connections: int = 0
    stopping: bool = False
    # The targets answered, once each answer is written or the write failed ("late /x" for /late-twice's
    # second answer): on loopback a finished write is in the proxy's receive buffer, or the proxy had
    # closed the connection already; either is what a test waits for.
    sent: list[str] = field(default_factory=list)

    @classmethod
    def start(cls) -> SloppyUpstream:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        upstream = cls(sock)
        thread = threading.Thread(target=upstream._accept, daemon=True)
        thread.start()
        upstream.threads.append(thread)
        return upstream

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = (lines[0].split(" ") + ["", ""])[:3]
                headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines[1:])]
                self.requests.append((f"{method} {target}", headers))
                length = int(next((v for n, v in headers if n.lower() == "content-length"), "0") or 0)
                chunked = any(n.lower() == "transfer-encoding" and "chunked" in v.lower() for n, v in headers)
                if chunked:
                    # The whole chunked body up to its last chunk and the blank line after any trailers.
                    while not (buffer.startswith(b"0\r\n\r\n") or b"\r\n0\r\n\r\n" in buffer):
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                    end = 5 if buffer.startswith(b"0\r\n\r\n") else buffer.find(b"\r\n0\r\n\r\n") + 7
                    buffer = buffer[end:]
                elif not target.startswith("/ignore-body"):
                    while len(buffer) < length:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                    buffer = buffer[length:]
                try:
                    try:
                        conn.sendall(self._answer(target))
                    finally:
                        self.sent.append(target)
                    if target.startswith("/late-twice"):
                        time.sleep(0.1)     # late: the proxy has pooled the connection as idle by then
                        try:
                            conn.sendall(_response(200, b"answer for an unrequested late response"))
                        finally:
                            self.sent.append(f"late {target}")
                except OSError:
                    return

    def _answer(self, target: str) -> bytes:
        named = target[len("/base"):] if target.startswith("/base/") else target
        answer = self._misbehave(named)
        return answer if answer is not None else _response(200, f"answer for {target}".encode())

    def _misbehave(self, target: str) -> bytes | None:
        if target == "/switch":
            return b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        if target == "/interim":
            return (b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
                    + _response(200, f"answer for {target}".encode()))
        if target == "/info199":
            return b"HTTP/1.1 199 Odd\r\n\r\n" + _response(200, f"answer for {target}".encode())
        if target.startswith("/redirect"):
            location = target.partition("to=")[2].replace("{origin}", self.origin)
            return _response(302, b"moved", [("Location", location)])
        if target.startswith("/twice"):
            return (_response(200, f"answer for {target}".encode())
                    + _response(200, b"answer for an unrequested second response"))
        return None

    def wait_sent(self, target: str, count: int, timeout: float = 10.0) -> None:
        """Return once the answer to ``target`` has been written (or failed to be) ``count`` times."""
        from peers_serve import poll_until

        poll_until(lambda: self.sent.count(target), lambda written: written >= count, timeout, interval=0.01)

    def stop(self) -> None:
        self.stopping = True
        self.sock.close()

    def __enter__(self) -> SloppyUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _response(status: int, body: bytes, headers: list[tuple[str, str]] = ()) -> bytes:
    reason = {200: "OK", 302: "Found"}.get(status, "X")
    head = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/plain", f"Content-Length: {len(body)}",
            *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
