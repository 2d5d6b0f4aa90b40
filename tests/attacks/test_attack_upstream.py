"""The reverse proxy against a sloppy upstream: answers never cross from one user to another.

An application that does not read a GET body treats that body as the next request on the connection;
one that answers twice leaves an unrequested response behind. A pooled connection with such bytes on it
must be closed, never handed to the next request.
"""

from __future__ import annotations

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


def _smuggle_then_ask_as_b(proxy, method: str, target: str) -> None:
    smuggled = b"GET /secret-of-a HTTP/1.1\r\nHost: upstream\r\n\r\n"
    upstream = proxy.extra["upstream"]
    upstream.sent.clear()
    for attempt in range(5):
        with RawConnection(proxy.port, proxy.ca) as conn:
            reply = conn.request(method, target, [("Authorization", f"Bearer {proxy.extra['a']}")], body=smuggled)
        assert reply.body == f"answer for {target}".encode()
        upstream.wait_sent("/secret-of-a", attempt + 1)   # its answer to the smuggled request is on the wire
        status, body = get(proxy, "b", "/mine-b")
        assert (status, body) == (200, b"answer for /mine-b"), body


def test_a_request_smuggled_in_a_get_body_never_answers_another_user(proxy):
    """A GET's body may be unread by the application, so its connection is never pooled after."""
    _smuggle_then_ask_as_b(proxy, "GET", "/ignore-body")


def test_a_request_smuggled_in_a_post_body_never_answers_another_user(tmp_path):
    """The application answers the POST before reading its body, then reads the body as its next request;
    that answer reaches the proxy only once the proxy writes again on the connection (Nagle holds the
    application's second small write until the first is acknowledged). So a connection that carried a
    body is never pooled. Its own server: a poisoned pool would answer the module's other tests."""
    with SloppyUpstream.start() as upstream:
        server = start_serve(tmp_path, "--upstream", upstream.origin, "--upstream-timeout", "5")
        try:
            server.extra.update(upstream=upstream, a=server.add_token_user("user-a", "GET,POST"),
                                b=server.add_token_user("user-b", "GET,POST"))
            _smuggle_then_ask_as_b(server, "POST", "/ignore-body-post")
        finally:
            server.stop()


def test_an_unrequested_second_response_is_never_delivered(proxy):
    proxy.extra["upstream"].sent.clear()
    for attempt in range(5):
        status, body = get(proxy, "a", "/twice")
        assert (status, body) == (200, b"answer for /twice")
        # Both answers went out in one write, so the unrequested one reached the pooled connection too.
        proxy.extra["upstream"].wait_sent("/twice", attempt + 1)
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
    upstream = proxy.extra["upstream"]
    upstream.sent.clear()
    for attempt in range(3):
        assert get(proxy, "a", "/late-twice") == (200, b"answer for /late-twice")
        upstream.wait_sent("late /late-twice", attempt + 1)   # the second answer is on the pooled connection
        assert get(proxy, "b", "/after-late") == (200, b"answer for /after-late")


def test_interim_answers_are_skipped(proxy):
    reply = proxy.curl("/interim", "-H", f"Authorization: Bearer {proxy.extra['a']}")
    assert (reply.status, reply.body) == (200, b"answer for /interim")
    assert reply.header("link") is None
    assert get(proxy, "b", "/after-interim") == (200, b"answer for /after-interim")
