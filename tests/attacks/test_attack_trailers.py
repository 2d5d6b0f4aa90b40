"""Trailer fields of a chunked request are not headers: not for the gate, the proxy code or the upstream.

httptools reports trailer fields through the same callback as header fields; a server that keeps
appending them to the request's headers lets a client authenticate, or pose as another address,
with fields that arrive after the body. Each request here is sent in one write, so the whole message
(headers, body, trailers) reaches the server in one read.
"""

from __future__ import annotations

import json

import pytest

from peers_attack import RawConnection, SloppyUpstream
from peers_serve import start_serve


def chunked(method: str, target: str, headers: list[str], body: bytes, trailers: list[str]) -> bytes:
    head = [f"{method} {target} HTTP/1.1", "Host: localhost", "Transfer-Encoding: chunked", *headers]
    chunk = b"%x\r\n%s\r\n" % (len(body), body)
    return ("\r\n".join(head) + "\r\n\r\n").encode() + chunk + b"0\r\n" + "".join(
        f"{t}\r\n" for t in trailers).encode() + b"\r\n"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("trailers")
    server = start_serve(work)
    yield server
    server.stop()


def test_an_authorization_trailer_does_not_authenticate(served):
    token = served.add_token_user("trailer-poster", "GET,POST")
    body = json.dumps({"name": "smuggled by trailer", "price": 1, "stock": 1}).encode()
    with RawConnection(served.port, served.ca) as conn:
        conn.send(chunked("POST", "/api/products", ["Content-Type: application/json"], body,
                          [f"Authorization: Bearer {token}"]))
        reply = conn.read_reply()
    assert reply.status == 401, (reply.status, reply.body)
    listed = served.curl("/api/products?name=smuggled%20by%20trailer", "-H", f"Authorization: Bearer {token}")
    assert listed.status == 200 and listed.json["rows"] == []


def test_the_same_request_with_the_header_is_admitted(served):
    # The control: the request above is refused only because its credential came as a trailer.
    token = served.add_token_user("header-poster", "GET,POST")
    body = json.dumps({"name": "sent with a header", "price": 1, "stock": 1}).encode()
    with RawConnection(served.port, served.ca) as conn:
        conn.send(chunked("POST", "/api/products", ["Content-Type: application/json",
                                                    f"Authorization: Bearer {token}"], body, ["X-Checksum: 1"]))
        reply = conn.read_reply()
    assert reply.status == 201, (reply.status, reply.body)


def test_a_forwarded_for_trailer_does_not_pass_allow_behind_trust_proxy(tmp_path):
    # The peer (127.0.0.1) is a trusted proxy but not an allowed client; only 203.0.113.0/24 is.
    server = start_serve(tmp_path, "--trust-proxy", "127.0.0.1", "--allow", "203.0.113.0/24")
    try:
        token = server.add_token_user("behind-proxy")
        with RawConnection(server.port, server.ca) as conn:
            conn.send(chunked("GET", "/api/products/1", [f"Authorization: Bearer {token}"], b"x",
                              ["X-Forwarded-For: 203.0.113.9"]))
            reply = conn.read_reply()
        assert reply.status == 403, (reply.status, reply.body)
        with RawConnection(server.port, server.ca) as conn:
            conn.send(chunked("GET", "/api/products/1", [f"Authorization: Bearer {token}",
                                                         "X-Forwarded-For: 203.0.113.9"], b"x", []))
            assert conn.read_reply().status == 200
    finally:
        server.stop()


def test_trailers_never_reach_the_upstream(tmp_path):
    with SloppyUpstream.start() as upstream:
        server = start_serve(tmp_path, "--upstream", upstream.origin)
        try:
            token = server.add_token_user("uploader", "GET,POST")
            with RawConnection(server.port, server.ca) as conn:
                conn.send(chunked("POST", "/upload", [f"Authorization: Bearer {token}"], b"payload",
                                  ["X-Trailer-Field: planted", "X-Forwarded-User: admin"]))
                reply = conn.read_reply()
            assert reply.status == 200, (reply.status, reply.body)
            line, headers = upstream.requests[-1]
            names = {name.lower() for name, _ in headers}
            assert line == "POST /upload"
            assert "x-trailer-field" not in names
            assert [v for n, v in headers if n.lower() == "x-forwarded-user"] == ["uploader"]
        finally:
            server.stop()
