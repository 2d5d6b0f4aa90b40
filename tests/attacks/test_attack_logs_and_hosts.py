"""The access log never holds a token, however the query spells it; Host is checked as RFC 9112 says,
and redirects go only to names the server answers for."""

from __future__ import annotations

import json

import pytest

from peers_attack import RawConnection
from peers_serve import poll_until, start_serve


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("logs")
    server = start_serve(work, "--allow-query-token", redirect=True)
    server.extra["token"] = server.add_token_user("logged-user")
    yield server
    server.stop()


def wait_for_log_lines(served, count: int) -> list[str]:
    return poll_until(lambda: [line for line in served.stdout_path.read_text().splitlines() if line.strip()],
                      lambda lines: len(lines) >= count)


@pytest.mark.parametrize("query", [
    "authtoken={token}",
    "x=authtoken&auth%74oken={token}",
    "AUTHTOKEN={token}",
    "a=1;authtoken={token}",
    "authtoken=wrong&authtoken={token}",
    "%61uthtoken={token}&b=2",
    "authtoken%3D{token}",
])
def test_no_spelling_of_authtoken_reaches_the_access_log(served, query):
    token = served.extra["token"]
    before = len(wait_for_log_lines(served, 0))
    with RawConnection(served.port, served.ca) as conn:
        reply = conn.request("GET", "/api/products/1?" + query.format(token=token),
                             [("Referer", f"https://app.example/page?authtoken={token}&q=1")])
    assert reply.status in (200, 400, 401), reply.status
    lines = wait_for_log_lines(served, before + 1)
    assert len(lines) > before
    log = "\n".join(lines)
    assert token not in log
    assert token[4:] not in log


def test_an_ambiguous_query_is_refused_not_logged_raw(served):
    token = served.extra["token"]
    before = len(wait_for_log_lines(served, 0))
    with RawConnection(served.port, served.ca) as conn:
        reply = conn.request("GET", f"/api/products/1?auth%zztoken={token}&authtoken={token}")
    assert reply.status == 400, reply.status
    lines = wait_for_log_lines(served, before + 1)
    assert token not in "\n".join(lines)


def test_http11_without_host_is_400(served):
    with RawConnection(served.port, served.ca) as conn:
        reply = conn.request("GET", "/api/products/1", [("Authorization", f"Bearer {served.extra['token']}")],
                             host=None)
    assert reply.status == 400


def test_two_host_fields_are_400(served):
    with RawConnection(served.port, served.ca) as conn:
        reply = conn.request("GET", "/api/products/1", [("Host", "other.example"),
                                                        ("Authorization", f"Bearer {served.extra['token']}")])
    assert reply.status == 400


def test_http10_without_host_is_served(served):
    with RawConnection(served.port, served.ca) as conn:
        conn.send(f"GET /api/products/1 HTTP/1.0\r\nAuthorization: Bearer {served.extra['token']}\r\n\r\n".encode())
        assert conn.read_reply().status == 200


@pytest.mark.parametrize("host", ["evil.example?", "a@b", "[::1", "x/y", "bad host", "h\u00e9.example",
                                  "localhost:99999", "localhost:x"])
def test_the_redirect_port_refuses_hosts_that_are_not_host_names(served, host):
    with RawConnection(served.redirect_port, None, tls=False) as conn:
        conn.send(b"GET /api HTTP/1.1\r\nHost: " + host.encode("utf-8") + b"\r\nConnection: close\r\n\r\n")
        reply = conn.read_reply()
    assert reply.status == 400, (host, reply.status, reply.headers)
    assert reply.header("location") is None


@pytest.mark.parametrize("host, location", [
    ("localhost", "https://localhost:{port}/api?x=1"),
    ("localhost:8080", "https://localhost:{port}/api?x=1"),
    ("127.0.0.1", "https://127.0.0.1:{port}/api?x=1"),
    ("[::1]:80", "https://[::1]:{port}/api?x=1"),
])
def test_the_redirect_port_redirects_the_names_of_the_certificate(served, host, location):
    with RawConnection(served.redirect_port, None, tls=False) as conn:
        conn.send(f"GET /api?x=1 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        reply = conn.read_reply()
    assert reply.status == 308
    assert reply.header("location") == location.format(port=served.port)


def test_the_redirect_port_does_not_redirect_names_it_does_not_serve(served):
    with RawConnection(served.redirect_port, None, tls=False) as conn:
        conn.send(b"GET /login HTTP/1.1\r\nHost: phishing.example\r\nConnection: close\r\n\r\n")
        reply = conn.read_reply()
    assert reply.status in (400, 421)
    assert reply.header("location") is None
