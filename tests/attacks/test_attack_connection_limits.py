"""Limits that hold before authentication, as nginx has them: header sizes, timeouts, half-open connections.

Each test attacks a running server over TLS with raw sockets: the bytes curl would never send, or a
client that stops talking. A valid credential rides along where it matters, so a server without the
limit would answer 200 and the test would see it.
"""

from __future__ import annotations

import resource
import socket
import ssl
import subprocess
import time

import pytest

from conftest import free_port, require_binary
from peers_attack import RawConnection, open_fds, tls_client_context
from peers_serve import poll_until, start_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("limits")
    server = start_serve(work, "--header-timeout", "2", "--handshake-timeout", "2", "--keepalive-timeout", "2",
                         "--max-pending-per-ip", "20")
    server.extra["token"] = server.add_token_user("limits-user")
    yield server
    server.stop()


def _head(token: str, extra: list[str]) -> bytes:
    lines = ["GET /api/products/1 HTTP/1.1", "Host: localhost", f"Authorization: Bearer {token}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_header_line_over_16_kib_is_431_and_closed(served):
    with RawConnection(served.port, served.ca) as conn:
        conn.send(_head(served.extra["token"], ["X-Big: " + "a" * 17000]))
        reply = conn.read_reply()
        assert reply.status == 431, (reply.status, reply.body)
        assert conn.closed_within(2)


def test_a_header_section_over_64_kib_is_431(served):
    fields = [f"X-Field-{i}: " + "b" * 900 for i in range(75)]     # 75 lines of ~0.9 KiB: ~68 KiB
    with RawConnection(served.port, served.ca) as conn:
        conn.send(_head(served.extra["token"], fields))
        reply = conn.read_reply()
        assert reply.status == 431, (reply.status, reply.body)
        assert conn.closed_within(2)


def test_more_than_100_header_fields_is_431(served):
    with RawConnection(served.port, served.ca) as conn:
        conn.send(_head(served.extra["token"], [f"X-F{i}: v" for i in range(101)]))
        assert conn.read_reply().status == 431
    with RawConnection(served.port, served.ca) as conn:      # 99 more fields plus Host is fine
        conn.send(_head(served.extra["token"], [f"X-F{i}: v" for i in range(98)]))
        assert conn.read_reply().status == 200


def test_a_header_line_that_never_ends_is_refused_without_buffering_it(served):
    """The server answers once the line passes the limit: it does not wait for (or keep) the rest."""
    with RawConnection(served.port, served.ca) as conn:
        conn.send(b"GET /api/products/1 HTTP/1.1\r\nHost: localhost\r\nX-Endless: ")
        for _ in range(40):                     # 40 KiB of one header line, no end in sight
            conn.send(b"c" * 1024)
        reply = conn.read_reply()
        assert reply.status == 431, (reply.status, reply.body)
        assert conn.closed_within(2)


def test_a_request_that_stops_mid_headers_gets_408_after_the_header_timeout(served):
    with RawConnection(served.port, served.ca) as conn:
        conn.send(b"GET /api/products/1 HTTP/1.1\r\nHost: localhost\r\n")
        started = time.monotonic()
        reply = conn.read_reply()
        waited = time.monotonic() - started
        assert reply.status == 408, (reply.status, reply.body)
        assert 1.5 <= waited <= 5, waited
        assert conn.closed_within(2)


def test_a_connection_that_never_sends_its_request_is_closed(served):
    with RawConnection(served.port, served.ca) as conn:       # TLS done, then silence
        assert conn.closed_within(5)


def test_a_tls_handshake_that_never_starts_is_closed_after_the_handshake_timeout(served):
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as raw:
        started = time.monotonic()
        raw.settimeout(6)
        try:
            assert raw.recv(1) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - started <= 5


def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(served):
    with RawConnection(served.port, served.ca) as conn:
        assert conn.request("GET", "/api/products/1", [("Authorization", f"Bearer {served.extra['token']}")]).status == 200
        started = time.monotonic()
        assert conn.closed_within(6)
        assert 1.5 <= time.monotonic() - started <= 5


def still_open(held: list[socket.socket]) -> int:
    """How many of ``held`` the server has not closed (a recv that times out: nothing, and no EOF)."""
    count = 0
    for sock in held:
        sock.settimeout(0.01)
        try:
            count += sock.recv(1) != b""
        except (socket.timeout, TimeoutError):
            count += 1
        except OSError:
            pass
    return count


def test_half_open_connections_from_one_address_do_not_lock_out_another(served):
    """200 silent TCP connections from 127.0.0.2: it keeps at most --max-pending-per-ip (20) of them;
    a client from 127.0.0.1 is served at once."""
    held = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5, source_address=("127.0.0.2", 0))
            held.append(sock)
        started = time.monotonic()
        reply = served.curl("/api/products/1", "-H", f"Authorization: Bearer {served.extra['token']}")
        assert reply.status == 200
        assert time.monotonic() - started < 2
        # The accept queue is first come, first served: curl's connection came after all 200, so they
        # have all been accepted; the server closes what it does not keep.
        poll_until(lambda: still_open(held), lambda open_from_attacker: open_from_attacker <= 20)
    finally:
        for sock in held:
            sock.close()


def test_a_thousand_half_open_connections_keep_the_server_inside_its_fd_limit(tmp_path):
    """The server runs with 256 file descriptors; 1,000 half-open connections from one address neither
    exhaust them nor keep another address out."""
    prlimit = require_binary("prlimit")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    server = start_serve(tmp_path)
    try:
        subprocess.run([prlimit, f"--pid={server.proc.pid}", "--nofile=256:256"], check=True)
        token = server.add_token_user("fd-user")
        held = []
        try:
            for _ in range(1000):
                try:
                    held.append(socket.create_connection(("127.0.0.1", server.port), timeout=5,
                                                         source_address=("127.0.0.2", 0)))
                except OSError:
                    pass        # the kernel's accept queue is full: also a refusal
            # Answered after the flood (the accept queue is first come, first served), so the server has
            # met every one of those connections by the time the answer is in.
            reply = server.curl("/api/products/1", "-H", f"Authorization: Bearer {token}")
            assert reply.status == 200, (reply.status, reply.stderr)
            assert open_fds(server.proc.pid) < 256
        finally:
            for sock in held:
                sock.close()
        assert server.proc.poll() is None
    finally:
        server.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
