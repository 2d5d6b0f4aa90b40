"""The reverse proxy against a sloppy upstream: answers never cross from one user to another.

An application that does not read a GET body treats that body as the next request on the connection;
one that answers twice leaves an unrequested response behind. A pooled connection with such bytes on it
must be closed, never handed to the next request.
"""

from __future__ import annotations

import time

import pytest

from peers_attack import RawConnection, SloppyUpstream
from peers_serve import start_serve


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    work = tmp_path_factory.mktemp("sloppy")
    upstream = SloppyUpstream.start()
    server = start_serve(work, "--upstream", upstream.origin, "--upstream-timeout", "5")
    server.extra["upstream"] = upstream
    server.extra["a"] = server.add_token_user("user-a", "GET,POST")
    server.extra["b"] = server.add_token_user("user-b", "GET,POST")
    yield server
    server.stop()
    upstream.stop()


def get(server, user: str, target: str) -> tuple[int, bytes]:
    reply = server.curl(target, "-H", f"Authorization: Bearer {server.extra[user]}")
    return reply.status, reply.body


@pytest.mark.parametrize("method, target", [("GET", "/ignore-body"), ("POST", "/ignore-body-post")])
def test_a_request_smuggled_in_a_body_never_answers_another_user(proxy, method, target):
    """A GET's body is never pooled after; a POST's was all sent before the answer, so its connection
    may be pooled, and the smuggled answer that then arrives on it while it is idle must close it."""
    smuggled = b"GET /secret-of-a HTTP/1.1\r\nHost: upstream\r\n\r\n"
    for _ in range(5):
        with RawConnection(proxy.port, proxy.ca) as conn:
            reply = conn.request(method, target, [("Authorization", f"Bearer {proxy.extra['a']}")], body=smuggled)
        assert reply.body == f"answer for {target}".encode()
        time.sleep(0.2)             # the upstream's answer to the smuggled request is on the wire now
        status, body = get(proxy, "b", "/mine-b")
        assert (status, body) == (200, b"answer for /mine-b"), body


def test_an_unrequested_second_response_is_never_delivered(proxy):
    for _ in range(5):
        status, body = get(proxy, "a", "/twice")
        assert (status, body) == (200, b"answer for /twice")
        time.sleep(0.1)
        assert get(proxy, "b", "/after-twice") == (200, b"answer for /after-twice")


def test_an_upstream_101_is_a_502(proxy):
    status, _ = get(proxy, "a", "/switch")
    assert status == 502
    assert get(proxy, "a", "/still-fine") == (200, b"answer for /still-fine")


def test_an_unexpected_1xx_is_a_502(proxy):
    status, _ = get(proxy, "a", "/info199")
    assert status == 502


def test_a_location_on_the_upstreams_own_origin_is_rewritten_to_the_clients(proxy):
    upstream = proxy.extra["upstream"]
    reply = proxy.curl("/redirect?to={origin}/next/page?x=1", "-H", f"Authorization: Bearer {proxy.extra['a']}")
    assert reply.status == 302
    assert reply.header("location") == f"https://localhost:{proxy.port}/next/page?x=1"
    other = proxy.curl("/redirect?to=https://elsewhere.example/x", "-H", f"Authorization: Bearer {proxy.extra['a']}")
    assert other.header("location") == "https://elsewhere.example/x"
    relative = proxy.curl("/redirect?to=/relative", "-H", f"Authorization: Bearer {proxy.extra['a']}")
    assert relative.header("location") == "/relative"
    assert upstream.requests


def test_a_location_under_the_upstream_base_path_loses_the_base(tmp_path):
    with SloppyUpstream.start() as upstream:
        server = start_serve(tmp_path, "--upstream", upstream.origin + "/base")
        try:
            token = server.add_token_user("based")
            reply = server.curl("/redirect?to={origin}/base/there", "-H", f"Authorization: Bearer {token}")
            assert upstream.requests[-1][0] == "GET /base/redirect?to={origin}/base/there"
            assert reply.header("location") == f"https://localhost:{server.port}/there"
        finally:
            server.stop()


def test_a_late_unrequested_response_on_an_idle_connection_is_never_delivered(proxy):
    for _ in range(3):
        assert get(proxy, "a", "/late-twice") == (200, b"answer for /late-twice")
        time.sleep(0.3)            # the second answer has arrived on the pooled connection by now
        assert get(proxy, "b", "/after-late") == (200, b"answer for /after-late")


def test_interim_answers_are_skipped(proxy):
    reply = proxy.curl("/interim", "-H", f"Authorization: Bearer {proxy.extra['a']}")
    assert (reply.status, reply.body) == (200, b"answer for /interim")
    assert reply.header("link") is None
    assert get(proxy, "b", "/after-interim") == (200, b"answer for /after-interim")
