"""A small real HTTP application on 127.0.0.1 for the `tlskit serve --upstream` tests and bench.

It runs in a thread of the test process (Python's ThreadingHTTPServer, HTTP/1.1 keep-alive) and
records what it received, so a test can assert on the exact headers the proxy forwarded.

Paths:
- ``/echo...``      JSON of method, path, query and headers it received (any method; a body is hashed)
- ``/slow?s=N``     waits N seconds, then answers 200 (limits under concurrency, upstream timeouts)
- ``/gate``         sends ``first\\n``, then holds the rest until ``release_gate()`` (response streaming)
- ``/upload``       reads a chunked or sized body, noting each chunk as it arrives (request streaming)
- ``/big?n=N``      N bytes, for throughput
- ``/rude``         answers, then closes the keep-alive connection without ``Connection: close``
- ``/gzip``         a gzip-compressed body with ``Content-Encoding: gzip`` (``GZIPPED``), as stored
- ``/hop``          an answer with hop-by-hop headers (``Connection: X-Hop-Secret``, ``Keep-Alive``...)
- ``/moved``        302 to ``/echo/moved-here`` (on its own origin)
- anything else    ``200 hello``

Example::

    with UpstreamApp.start() as app:
        print(app.url)   # http://127.0.0.1:PORT
"""

from __future__ import annotations

import hashlib
import json
import ssl
import subprocess
import threading
import time
from pathlib import Path
from dataclasses import dataclass, field
import gzip
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


# Compressed once with a fixed mtime, so a test can compare the bytes that reach the client.
GZIPPED = gzip.compress(b"compressed by the application\n" * 50, mtime=0)


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body_sha256: str = ""
    body_length: int = 0

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


@dataclass
class UpstreamApp:
    server: ThreadingHTTPServer
    thread: threading.Thread
    received: list[Received] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    upload_chunks: list[int] = field(default_factory=list)
    upload_chunk_seen: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, port: int = 0, tls: tuple[Path, Path] | None = None) -> UpstreamApp:
        """``tls=(cert, key)`` makes it an https application."""
        app: UpstreamApp

        class Handler(_Handler):
            owner = None

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        app = cls(server, thread)
        Handler.owner = app
        thread.start()
        return app

    def release_gate(self) -> None:
        self.gate.set()

    def last(self) -> Received:
        return self.received[-1]

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> UpstreamApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: UpstreamApp | None = None

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain",
                headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self, note_chunks: bool = False) -> bytes:
        app = self.owner
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunk = self.rfile.read(size)
                self.rfile.readline()
                parts.append(chunk)
                if note_chunks:
                    app.upload_chunks.append(len(chunk))
                    app.upload_chunk_seen.set()
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        if not note_chunks:
            return self.rfile.read(length) if length else b""
        data = bytearray()
        while len(data) < length:
            chunk = self.rfile.read1(min(65536, length - len(data)))
            if not chunk:
                break
            data += chunk
            app.upload_chunks.append(len(chunk))
            app.upload_chunk_seen.set()
        return bytes(data)

    def _handle(self) -> None:
        app = self.owner
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        body = self._read_body(note_chunks=url.path == "/upload")
        record = Received(self.command, self.path, list(self.headers.items()),
                          hashlib.sha256(body).hexdigest(), len(body))
        app.received.append(record)
        with app.lock:
            app.in_flight += 1
            app.max_in_flight = max(app.max_in_flight, app.in_flight)
        try:
            if url.path.startswith("/echo") or url.path == "/upload":
                doc = {"method": self.command, "path": self.path, "headers": record.headers,
                       "body_sha256": record.body_sha256, "body_length": record.body_length}
                self._answer(200, json.dumps(doc).encode(), "application/json")
            elif url.path == "/slow":
                time.sleep(float(query.get("s", ["1"])[0]))
                self._answer(200, b"slow done\n")
            elif url.path == "/gate":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._chunk(b"first\n")
                app.gate.wait(30)
                self._chunk(b"second\n")
                self.wfile.write(b"0\r\n\r\n")
            elif url.path == "/rude":
                # Closes the keep-alive connection right after answering, without saying so.
                self._answer(200, b"rude\n")
                self.close_connection = True
            elif url.path == "/gzip":
                self._answer(200, GZIPPED, headers=(("Content-Encoding", "gzip"),))
            elif url.path == "/hop":
                self._answer(200, b"hop\n", headers=(
                    ("Connection", "X-Hop-Secret, keep-alive"), ("X-Hop-Secret", "1"), ("Keep-Alive", "timeout=5"),
                    ("Proxy-Authenticate", "Basic realm=app"), ("Trailer", "X-Sum"), ("X-Kept", "yes")))
            elif url.path == "/moved":
                self._answer(302, b"moved\n", headers=(("Location", "/echo/moved-here"),))
            elif url.path == "/big":
                self._answer(200, b"x" * int(query.get("n", ["1048576"])[0]), "application/octet-stream")
            else:
                self._answer(200, b"hello\n")
        finally:
            with app.lock:
                app.in_flight -= 1

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


# --- the real `tlskit serve` process ------------------------------------------------------------


@dataclass
class Served:
    """`python -m tlskit serve ...` on a free loopback port; stderr (banner, log lines) goes to a file."""

    process: subprocess.Popen
    port: int
    state_dir: Path
    stderr_path: Path
    stdout_path: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.state_dir / "ca" / "ca.pem"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stderr():
                return True
            time.sleep(0.05)
        return False

    def wait_for_access_log(self, text: str, timeout: float = 15.0) -> bool:
        """The access log (stdout) is buffered and flushed about once a second: poll for a line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stdout():
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        from conftest import stop_process

        stop_process(self.process, timeout=10)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def add_user(state_dir: Path, name: str, *options: str) -> str:
    """`tlskit users add NAME --token ...`; returns the token."""
    from conftest import run_tlskit

    done = run_tlskit("users", "add", name, "--token", "--state-dir", str(state_dir), "--json", *options)
    assert done.returncode == 0, done.stderr
    return done.json["token"]


def start_serve(state_dir: Path, *options: str, port: int | None = None, timeout: float = 30.0) -> Served:
    """Start the server and return once a TLS handshake succeeds on its port."""
    from conftest import free_port
    from peers_serve import launch_serve

    port = port or free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    stderr_path, stdout_path = state_dir / f"serve-{port}.err", state_dir / f"serve-{port}.out"
    process = launch_serve(state_dir, *options, port=port, stdout_path=stdout_path, stderr_path=stderr_path,
                           env={"COLUMNS": "200"}, timeout=timeout)
    return Served(process, port, state_dir, stderr_path, stdout_path)


def curl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    from conftest import require_binary

    return subprocess.run([require_binary("curl"), "-sS", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def status_and_headers(done: subprocess.CompletedProcess) -> tuple[int, dict[str, str], str]:
    """Split `curl -i` output: status, lower-cased headers (last wins), body."""
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body
