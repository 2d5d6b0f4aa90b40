"""Reverse proxy (`--upstream`) and trusted proxies (`--trust-proxy`).

The header rules are checked directly; the proxy itself against a real upstream application
(tests/peers_upstream.py) with curl as the client.
"""

from __future__ import annotations

import pytest

from tlskit.errors import InputError
from tlskit.server.proxy import parse_upstream


# --- --upstream URL ------------------------------------------------------------------------------

def test_upstream_url_forms():
    upstream = parse_upstream("http://127.0.0.1:8000/app/")
    assert (upstream.scheme, upstream.host, upstream.port, upstream.base_path) == ("http", "127.0.0.1", 8000, "/app")
    assert parse_upstream("https://example.test").port == 443
    assert parse_upstream("http://[::1]:9000").host_header == "[::1]:9000"
    for bad in ("ftp://x", "127.0.0.1:8000", "http://x/?a=1", "http://u:p@x", "http://x:99999"):
        with pytest.raises(InputError, match="^bad upstream "):
            parse_upstream(bad)


# --- the real server in front of a real application, driven by curl ------------------------------

import hashlib
import json
import os
import sqlite3
import subprocess
import threading
import time

from conftest import free_port, require_binary
from peers_upstream import UpstreamApp, add_user, curl, start_serve, status_and_headers


@pytest.fixture
def upstream():
    with UpstreamApp.start() as app:
        yield app


@pytest.fixture
def proxied(tmp_path, upstream):
    """`tlskit serve --upstream` with alice (token and password) and a short upstream timeout."""
    require_binary("curl")
    state = tmp_path / "state"
    token = add_user(state, "alice", "--methods", "GET,POST,PUT")
    with start_serve(state, "--upstream", upstream.url, "--upstream-timeout", "2", "--allow-query-token") as served:
        yield served, token


def test_forwarded_headers_set_and_credentials_not_forwarded(proxied, upstream):
    served, token = proxied
    done = curl("--cacert", str(served.ca_file), "-H", f"Authorization: Bearer {token}",
                "-H", "X-Forwarded-For: 6.6.6.6", "-H", "X-Forwarded-User: root", "-H", "X-Real-IP: 6.6.6.6",
                "-H", "X-Custom: kept", f"https://localhost:{served.port}/echo/a%2Fb?x=1&y=two")
    seen = json.loads(done.stdout)
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert seen["path"] == "/echo/a%2Fb?x=1&y=two"   # path and query byte-exact
    assert headers["x-forwarded-for"] == "127.0.0.1"  # the client's own claim is dropped
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-host"] == f"localhost:{served.port}"
    assert headers["x-forwarded-user"] == "alice"
    assert headers["host"] == f"127.0.0.1:{upstream.port}"
    assert headers["x-custom"] == "kept"
    assert "authorization" not in headers and "x-real-ip" not in headers
    # Every credential form stays out of the application's sight.
    curl("-k", "-H", f"X-API-Key: {token}", f"{served.url}/echo/key")
    assert upstream.last().header("x-api-key") is None and upstream.last().header("x-forwarded-user") == "alice"
    curl("-k", f"{served.url}/echo/q?authtoken={token}&keep=1")
    assert upstream.last().path == "/echo/q?keep=1"
    curl("-k", "-u", f"alice:{token}", f"{served.url}/echo/basic")
    assert upstream.last().header("authorization") is None
    assert all(token not in json.dumps(r.headers) + r.path for r in upstream.received)


def test_unauthenticated_requests_never_reach_the_application(proxied, upstream):
    served, _ = proxied
    status, headers, _ = status_and_headers(curl("-k", "-i", f"{served.url}/echo"))
    assert status == 401 and "www-authenticate" in headers
    assert upstream.received == []


def test_response_streams_before_the_upstream_finishes(proxied, upstream):
    """/gate sends its first line, then waits for us: we must see that line through the proxy first."""
    served, token = proxied
    client = subprocess.Popen(["curl", "-sSkN", "-H", f"Authorization: Bearer {token}", f"{served.url}/gate"],
                              stdout=subprocess.PIPE, text=True)
    try:
        first = []
        reader = threading.Thread(target=lambda: first.append(client.stdout.readline()), daemon=True)
        reader.start()
        reader.join(20)
        assert first == ["first\n"], "the first chunk did not arrive while the upstream was still answering"
    finally:
        upstream.release_gate()
    rest, _ = client.communicate(timeout=20)
    assert rest == "second\n" and client.returncode == 0


def test_request_body_streams_to_the_upstream(proxied, upstream):
    """curl uploads from a pipe (chunked); the application sees the first part before we send the rest."""
    served, token = proxied
    client = subprocess.Popen(["curl", "-sSk", "-T", "-", "-X", "POST", "-H", f"Authorization: Bearer {token}",
                               f"{served.url}/upload"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    first = os.urandom(200_000)
    client.stdin.write(first)
    client.stdin.flush()
    try:
        assert upstream.upload_chunk_seen.wait(20), "the body was held back until the upload ended"
    finally:
        rest = os.urandom(3_000_000)
        client.stdin.write(rest)
        client.stdin.close()
    out = json.loads(client.stdout.read())
    client.wait(20)
    assert out["body_length"] == len(first) + len(rest)
    assert out["body_sha256"] == hashlib.sha256(first + rest).hexdigest()
    assert out["method"] == "POST"


def test_large_bodies_both_ways_with_content_length(proxied, upstream, tmp_path):
    served, token = proxied
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(5_000_000))
    done = curl("-k", "-X", "PUT", "--data-binary", f"@{payload}", "-H", f"Authorization: Bearer {token}",
                f"{served.url}/echo/put")
    out = json.loads(done.stdout)
    assert out["body_sha256"] == hashlib.sha256(payload.read_bytes()).hexdigest()
    assert dict((k.lower(), v) for k, v in out["headers"])["content-length"] == "5000000"
    big = curl("-k", "-o", str(tmp_path / "big"), "-w", "%{http_code} %{size_download}",
               "-H", f"Authorization: Bearer {token}", f"{served.url}/big?n=20000000")
    assert big.stdout == "200 20000000"


def test_504_when_the_upstream_is_too_slow(proxied, upstream):
    served, token = proxied
    status, _, body = status_and_headers(curl("-k", "-i", "-H", f"Authorization: Bearer {token}",
                                              f"{served.url}/slow?s=5"))
    assert status == 504 and "timed out" in body
    assert served.wait_for_log("answering 504")
    # The server is fine afterwards.
    assert curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Authorization: Bearer {token}",
                f"{served.url}/echo").stdout == "200"


def test_502_when_the_upstream_is_down(tmp_path):
    require_binary("curl")
    state = tmp_path / "state"
    token = add_user(state, "alice")
    down = f"http://127.0.0.1:{free_port()}"
    with start_serve(state, "--upstream", down) as served:
        status, headers, body = status_and_headers(curl("-k", "-i", "-H", f"Authorization: Bearer {token}",
                                                        f"{served.url}/anything"))
        assert status == 502 and "upstream unavailable" in body
        assert "strict-transport-security" in headers
        assert served.wait_for_log("connection refused")
        # When it comes up, requests go through without a restart.
        with UpstreamApp.start(int(down.rsplit(":", 1)[1])):
            assert curl("-k", "-H", f"Authorization: Bearer {token}", f"{served.url}/x").stdout == "hello\n"


def test_dataset_and_upstream_together(tmp_path, upstream):
    require_binary("curl")
    state = tmp_path / "state"
    token = add_user(state, "alice")
    dataset = tmp_path / "data.sqlite"
    with sqlite3.connect(dataset) as db:
        db.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        db.execute("INSERT INTO things (name) VALUES ('widget')")
    with start_serve(state, "--upstream", upstream.url, "--dataset", str(dataset)) as served:
        rows = json.loads(curl("-k", "-H", f"Authorization: Bearer {token}", f"{served.url}/api/things").stdout)
        assert "widget" in json.dumps(rows)
        assert curl("-k", "-H", f"Authorization: Bearer {token}", f"{served.url}/app").stdout == "hello\n"
        assert [r.path for r in upstream.received] == ["/app"]


def test_bad_upstream_flag_is_one_line_error(tmp_path):
    from conftest import assert_one_line_error, run_tlskit

    run = run_tlskit("serve", "--state-dir", str(tmp_path), "--port", str(free_port()), "--upstream", "ftp://x")
    assert_one_line_error(run, 2, "--upstream")
    run = run_tlskit("serve", "--state-dir", str(tmp_path), "--port", str(free_port()), "--trust-proxy", "nope")
    assert_one_line_error(run, 2, "--trust-proxy")


# --- --trust-proxy with the real server ----------------------------------------------------------

def _seen_forwarded_for(served, token: str, upstream, *curl_options: str) -> tuple[int, str | None]:
    done = curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Authorization: Bearer {token}",
                *curl_options, f"{served.url}/echo/xff")
    status = int(done.stdout)
    return status, (upstream.last().header("x-forwarded-for") if status == 200 else None)


def test_forwarded_for_honoured_only_from_listed_peers(tmp_path, upstream):
    """127.0.0.2 is our trusted load balancer; 127.0.0.1 is not (curl --interface picks the source)."""
    require_binary("curl")
    state = tmp_path / "state"
    token = add_user(state, "alice")
    with start_serve(state, "--upstream", upstream.url, "--trust-proxy", "127.0.0.2/32",
                     "--allow", "127.0.0.0/8", "--allow", "203.0.113.0/24") as served:
        # From the trusted peer: the client it names is believed (and extended with that peer).
        status, chain = _seen_forwarded_for(served, token, upstream, "--interface", "127.0.0.2",
                                            "-H", "X-Forwarded-For: 203.0.113.9")
        assert (status, chain) == (200, "203.0.113.9, 127.0.0.2")
        assert served.wait_for_access_log("203.0.113.9 - alice")
        # The allow-list sees the real client too: 198.51.100.1 is outside --allow.
        status, _ = _seen_forwarded_for(served, token, upstream, "--interface", "127.0.0.2",
                                        "-H", "X-Forwarded-For: 198.51.100.1")
        assert status == 403
        # From anyone else the header is ignored and replaced.
        status, chain = _seen_forwarded_for(served, token, upstream, "--interface", "127.0.0.1",
                                            "-H", "X-Forwarded-For: 198.51.100.1")
        assert (status, chain) == (200, "127.0.0.1")


def test_without_trust_proxy_forwarded_for_is_never_believed(proxied, upstream):
    served, token = proxied
    status, chain = _seen_forwarded_for(served, token, upstream, "-H", "X-Forwarded-For: 127.0.0.1, 10.9.9.9")
    assert (status, chain) == (200, "127.0.0.1")
    assert served.wait_for_access_log("127.0.0.1 - alice") and "10.9.9.9" not in served.stdout()


def test_https_upstream_verified_with_upstream_ca_file(tmp_path):
    """An https application with a private CA: trusted with --upstream-ca-file, refused (502) without."""
    require_binary("curl")
    from tlskit.certificates import to_pem
    from tlskit.issue import LocalCA
    from tlskit.keys import KeySpec, generate_key, private_key_pem
    from tlskit.names import parse_sans

    ca = LocalCA.create(tmp_path / "app-ca", {"CN": "App CA"}, KeySpec.parse("ec:p256"))
    key = generate_key(KeySpec.parse("ec:p256"))
    issued = ca.issue({"CN": "127.0.0.1"}, parse_sans(["IP:127.0.0.1"]), key, days=30)
    cert_path, key_path = tmp_path / "app.pem", tmp_path / "app.key"
    cert_path.write_bytes(to_pem(issued.certificate))
    key_path.write_bytes(private_key_pem(key))
    state = tmp_path / "state"
    token = add_user(state, "alice")
    with UpstreamApp.start(tls=(cert_path, key_path)) as app:
        assert app.url.startswith("https://")
        with start_serve(state, "--upstream", app.url, "--upstream-ca-file", str(tmp_path / "app-ca" / "ca.pem")) as served:
            seen = json.loads(curl("-k", "-H", f"Authorization: Bearer {token}", f"{served.url}/echo/tls").stdout)
            assert dict((k.lower(), v) for k, v in seen["headers"])["x-forwarded-user"] == "alice"
        with start_serve(state, "--upstream", app.url) as served:
            status, _, _ = status_and_headers(curl("-k", "-i", "-H", f"Authorization: Bearer {token}",
                                                   f"{served.url}/echo/tls"))
            assert status == 502
            assert served.wait_for_log("certificate verify failed")


def test_upstream_closing_idle_connections_costs_no_request(proxied, upstream):
    """The application drops keep-alive connections unannounced; the next requests (with or without a
    body) must not fail on the dead pooled connection."""
    served, token = proxied
    auth = ["-H", f"Authorization: Bearer {token}"]
    for _ in range(5):
        assert curl("-k", *auth, f"{served.url}/rude").stdout == "rude\n"
        assert curl("-k", *auth, f"{served.url}/echo/get", "-o", "/dev/null", "-w", "%{http_code}").stdout == "200"
        assert curl("-k", *auth, f"{served.url}/rude").stdout == "rude\n"
        done = curl("-k", *auth, "-X", "POST", "--data-binary", "payload", f"{served.url}/echo/post")
        assert json.loads(done.stdout)["body_length"] == 7


# --- what the upstream client must not do on its own -----------------------------------------------

def test_redirects_reach_the_client_unfollowed(proxied, upstream):
    served, token = proxied
    status, headers, _ = status_and_headers(curl("-k", "-i", "-H", f"Authorization: Bearer {token}",
                                                 f"{served.url}/moved"))
    assert (status, headers["location"]) == (302, "/echo/moved-here")   # relative: left as it is
    assert [r.path for r in upstream.received] == ["/moved"]


def test_compressed_answers_pass_through_byte_for_byte(proxied, upstream, tmp_path):
    from peers_upstream import GZIPPED

    served, token = proxied
    out = tmp_path / "body"
    done = curl("-k", "-D", "-", "-o", str(out), "-H", f"Authorization: Bearer {token}", f"{served.url}/gzip")
    assert "content-encoding: gzip" in done.stdout.lower()
    assert out.read_bytes() == GZIPPED                       # not decompressed on the way
    assert upstream.last().header("accept-encoding") is None  # and nothing asked for that the client did not
    curl("-k", "-o", "/dev/null", "-H", "Accept-Encoding: br;q=1, gzip;q=0.5", "-H", f"Authorization: Bearer {token}",
         f"{served.url}/gzip")
    assert upstream.last().header("accept-encoding") == "br;q=1, gzip;q=0.5"


def test_only_the_clients_end_to_end_headers_reach_the_application(tmp_path, upstream):
    """Hop-by-hop headers (and any the client's Connection names), every credential form (a --key-header
    too, authtoken however spelled) and our own defaults (User-Agent, Accept...) stay out."""
    require_binary("curl")
    state = tmp_path / "state"
    token = add_user(state, "alice")
    with start_serve(state, "--upstream", upstream.url, "--key-header", "X-Custom-Key", "--allow-query-token",
                     "--max-auth-failures", "0") as served:
        hop = ["-H", "Connection: keep-alive, X-Drop-Me", "-H", "X-Drop-Me: 1", "-H", "Keep-Alive: timeout=300",
               "-H", "TE: trailers", "-H", "Proxy-Authorization: Basic YTpi", "-H", "Upgrade: h2c",
               "-H", "Proxy-Connection: keep-alive", "-H", "X-Forwarded-Port: 1", "-H", "Forwarded: for=6.6.6.6",
               "-H", "User-Agent:", "-H", "Accept:", "-H", "X-Kept: yes"]
        curl("-k", *hop, "-H", f"X-Custom-Key: {token}", f"{served.url}/echo/custom")
        seen = upstream.last()
        names = {name.lower() for name, _ in seen.headers}
        assert names == {"host", "x-kept", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                         "x-forwarded-user"}, names
        assert seen.header("x-forwarded-user") == "alice"
        for query in (f"authtoken={token}&keep=1", f"keep=1;authtoken={token}", f"auth%74oken={token}&keep=1",
                      f"AuthToken={token}&keep=1", f"keep=1&%40authtoken={token}"):
            done = curl("-k", "-o", "/dev/null", "-w", "%{http_code}", f"{served.url}/echo/q?{query}")
            assert done.stdout == "200", query
            assert upstream.last().path == "/echo/q?keep=1", query
        assert all(token not in json.dumps(r.headers) + r.path for r in upstream.received)
        # The other way: the application's hop-by-hop headers stop here too.
        status, headers, body = status_and_headers(curl("-k", "-i", "-H", f"X-Custom-Key: {token}",
                                                        f"{served.url}/hop"))
        assert (status, body) == (200, "hop\n")
        assert headers["x-kept"] == "yes"
        assert not {"x-hop-secret", "keep-alive", "proxy-authenticate", "trailer"} & set(headers), headers


def test_head_answers_keep_the_pooled_connection_in_step(proxied, upstream):
    """A HEAD answer announces a length but has no body: reading one must not swallow the next answer."""
    served, token = proxied
    auth = ["-H", f"Authorization: Bearer {token}"]
    for index in range(3):
        status, headers, body = status_and_headers(curl("-k", "-I", *auth, f"{served.url}/big?n=1234"))
        assert (status, headers["content-length"], body) == (200, "1234", "")
        seen = json.loads(curl("-k", *auth, f"{served.url}/echo/after-head-{index}").stdout)
        assert seen["path"] == f"/echo/after-head-{index}"


def test_504_when_the_upstream_never_accepts_the_connection(tmp_path):
    """A listener whose accept queue is full drops new SYNs: the connect times out (504, not a hang)."""
    import socket

    require_binary("curl")
    state = tmp_path / "state"
    token = add_user(state, "alice")
    with socket.socket() as blackhole, socket.socket() as filler:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(0)
        filler.connect(blackhole.getsockname())     # fills the queue; nobody ever accepts
        with start_serve(state, "--upstream", f"http://127.0.0.1:{blackhole.getsockname()[1]}",
                         "--upstream-timeout", "1") as served:
            started = time.monotonic()
            status, _, body = status_and_headers(curl("-k", "-i", "-H", f"Authorization: Bearer {token}",
                                                      f"{served.url}/x"))
            assert status == 504 and "timed out" in body
            assert time.monotonic() - started < 10
            assert served.wait_for_log("connect timed out")


def test_upstream_connections_are_closed_at_shutdown(proxied, upstream):
    served, token = proxied
    assert curl("-k", "-H", f"Authorization: Bearer {token}", f"{served.url}/x").stdout == "hello\n"
    served.stop()
    assert served.process.returncode == 0
    assert "Unclosed" not in served.stderr() and "Traceback" not in served.stderr(), served.stderr()


def test_exactly_the_end_to_end_headers_of_a_chunked_upload_reach_the_application(tmp_path, upstream):
    """Every hop-by-hop header of RFC 9110 7.6.1 at once, on a chunked upload that also names a Trailer,
    with both an Authorization and a --key-header credential: the application receives exactly the
    client's end-to-end headers, our forwarding headers and our own framing, and the body intact."""
    require_binary("curl")
    state = tmp_path / "state"
    token = add_user(state, "alice", "--methods", "GET,POST")
    with start_serve(state, "--upstream", upstream.url, "--key-header", "X-Custom-Key") as served:
        sent = ["-H", "Connection: keep-alive, X-Listed-One, x-listed-two", "-H", "X-Listed-One: 1",
                "-H", "X-Listed-Two: 2", "-H", "Keep-Alive: timeout=300", "-H", "Proxy-Authorization: Basic YTpi",
                "-H", "TE: trailers", "-H", "Trailer: X-Checksum", "-H", "Transfer-Encoding: chunked",
                "-H", "Upgrade: websocket", "-H", f"Authorization: Bearer {token}", "-H", f"X-Custom-Key: {token}",
                "-H", "User-Agent:", "-H", "Accept:", "-H", "Content-Type: text/plain", "-H", "X-Kept: yes"]
        done = curl("-k", "-X", "POST", *sent, "--data-binary", "chunked body", f"{served.url}/echo/hop-by-hop")
        assert done.returncode == 0, done.stderr
        seen = upstream.last()
    assert seen.path == "/echo/hop-by-hop"
    assert sorted((name.lower(), value) for name, value in seen.headers) == sorted([
        ("host", f"127.0.0.1:{upstream.port}"),
        ("content-type", "text/plain"),
        ("x-kept", "yes"),
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", f"127.0.0.1:{served.port}"),
        ("x-forwarded-user", "alice"),
        ("transfer-encoding", "chunked"),    # our own framing of the streamed body, not the client's header
    ])
    assert (seen.body_length, seen.body_sha256) == (12, hashlib.sha256(b"chunked body").hexdigest())
