"""Fuzzing the peers of running servers: `tlskit probe` of a hostile TLS server, the reverse proxy in front
of a broken upstream, and the HTTPS API driven over raw TLS so odd bytes reach `tlskit serve` unchanged:
never a 5xx for a client's mistake, a bad credential is always a 401.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from peers_rawhttp import request as raw_request
from peers_rawhttp import tls_context

pytestmark = pytest.mark.slow

# --- probe: what a hostile server sends back ---------------------------------------------------------


class HostileServer:
    """A loopback TCP server that answers every connection with ``payload`` and closes: a TLS server
    gone wrong, a non-TLS service, or a STARTTLS banner full of junk."""

    def __init__(self) -> None:
        import socket
        import threading

        self.payload = b""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import socket

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(0.5)
                try:
                    conn.sendall(self.payload)
                    conn.shutdown(socket.SHUT_WR)  # then EOF: the client never waits for its timeout
                    conn.recv(65536)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def hostile():
    server = HostileServer()
    yield server
    server.close()


def tls_record_like() -> st.SearchStrategy[bytes]:
    """Bytes that start like a TLS record (handshake, alert) so the client's parser goes deeper."""
    return st.tuples(st.sampled_from([b"\x16\x03\x03", b"\x16\x03\x01", b"\x15\x03\x03", b"\x17\x03\x03", b"\x16\x03\x04"]),
                     st.binary(max_size=200)).map(lambda t: t[0] + len(t[1]).to_bytes(2, "big") + t[1])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(st.binary(max_size=300), tls_record_like(),
                         st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass"))),
       starttls=st.sampled_from([None, None, "smtp", "imap", "pop3", "ftp", "postgres"]))
@example(payload=b"220 ok\r\n250 STARTTLS\r\n220 go\r\n", starttls="smtp")
@example(payload=b"S", starttls="postgres")
@example(payload=b"HTTP/1.1 400 Bad Request\r\n\r\n", starttls=None)
def test_probe_of_a_hostile_server_is_a_network_or_verify_error(hostile, payload, starttls):
    from tlskit.errors import NetworkError, VerifyError
    from tlskit.probe.session import ProbeOptions, probe

    hostile.payload = payload
    try:
        probe(ProbeOptions("127.0.0.1", hostile.port, servername="localhost", timeout=3, starttls=starttls))
    except (NetworkError, VerifyError) as exc:
        assert "\n" not in exc.message and exc.message
        return
    raise AssertionError(f"probe of a server sending {payload[:40]!r} succeeded")


# --- the reverse proxy in front of a broken upstream ---------------------------------------------------


@pytest.fixture(scope="module")
def proxy_to_hostile(tmp_path_factory, hostile):
    from peers_serve import start_serve

    work = tmp_path_factory.mktemp("proxy")
    served = start_serve(work, "--upstream", f"http://127.0.0.1:{hostile.port}", "--upstream-timeout", "3")
    try:
        served.extra["token"] = served.add_token_user("proxied", methods="all")
        served.extra["context"] = tls_context(served.ca)
        yield served
    finally:
        served.stop()
        assert "Traceback" not in served.stderr(), served.stderr()[-3000:]


def http_response_like() -> st.SearchStrategy[bytes]:
    status = st.one_of(st.integers(100, 599).map(str), st.text(max_size=5)).map(str.encode)
    header = st.tuples(st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"Connection", b"X-A", b"", b"Content-Length "]),
                       st.one_of(st.sampled_from([b"chunked", b"-1", b"99999999999999999999", b"5", b"0", b"close"]),
                                 st.binary(max_size=20))).map(lambda h: h[0] + b": " + h[1])
    return st.tuples(st.sampled_from([b"HTTP/1.1 ", b"HTTP/1.0 ", b"HTTP/2 ", b"ICY ", b""]), status,
                     st.lists(header, max_size=4), st.binary(max_size=100)).map(
        lambda r: r[0] + r[1] + b" X\r\n" + b"".join(h + b"\r\n" for h in r[2]) + b"\r\n" + r[3])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(http_response_like(), st.binary(max_size=200)), method=st.sampled_from(["GET", "POST"]))
@example(payload=b"", method="GET")
@example(payload=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", method="GET")
@example(payload=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", method="GET")
def test_proxy_answers_a_broken_upstream_with_502_not_500(proxy_to_hostile, hostile, payload, method):
    hostile.payload = payload
    auth = [(b"Authorization", b"Bearer " + proxy_to_hostile.extra["token"].encode())]
    reply = _call(proxy_to_hostile, method, "/anything?x=1", auth, b"{}" if method == "POST" else None)
    upstream_status = None
    first_line = payload.split(b"\r\n", 1)[0].split(b" ")
    if len(first_line) > 1 and first_line[0].startswith(b"HTTP/1.") and first_line[1].isdigit():
        upstream_status = int(first_line[1])
    # A broken answer is 502 (or 504 when it never completes); a well-formed one is passed on as it was.
    assert reply.status in {502, 504} or reply.status == upstream_status, (reply.status, payload[:80], reply.body[:200])
    if reply.status >= 500 and reply.status != upstream_status:
        assert reply.header("strict-transport-security"), reply.headers


@pytest.mark.parametrize("payload", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhello",
], ids=["content-length", "chunked-no-end", "chunk-cut"])
def test_proxy_never_presents_a_cut_upstream_body_as_complete(proxy_to_hostile, hostile, payload):
    """An upstream that dies mid-body must not become a complete-looking 200: the client has to be able
    to tell (a short Content-Length body, or chunked without its final 0-chunk), or get a 502."""
    import socket
    import ssl

    hostile.payload = payload
    context = proxy_to_hostile.extra["context"]
    request_bytes = (b"GET /cut HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer "
                     + proxy_to_hostile.extra["token"].encode() + b"\r\n\r\n")
    data = b""
    with socket.create_connection(("127.0.0.1", proxy_to_hostile.port), timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(request_bytes)
            while True:
                try:
                    chunk = tls.recv(65536)
                except (ssl.SSLError, ConnectionResetError):
                    break
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    if status == 502:
        return
    headers = {line.split(b":")[0].strip().lower(): line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")[1:]}
    if b"content-length" in headers:
        assert len(body) < int(headers[b"content-length"]), data
    else:
        assert headers.get(b"transfer-encoding") == b"chunked", data
        assert not body.endswith(b"0\r\n\r\n"), data


# --- the HTTPS API: credentials, query strings and JSON bodies --------------------------------------
#
# One real `tlskit serve` (subprocess, loopback, zero-config certificate) answers every example over a
# raw TLS socket, so odd bytes reach the server unchanged. The contract: never a 5xx, only the
# documented codes; every answer carries HSTS and nosniff; a credential that is not a valid one is
# the one 401 with the Basic challenge, never a 400 or 500 (README, "Calling it"); the server
# survives and logs no exception.

SERVER = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PASSWORD = "correct horse battery staple"
HSTS = "max-age=31536000; includeSubDomains"
CHALLENGE = 'Basic realm="tlskit", charset="UTF-8"'
UNAUTHORIZED = {"error": "unauthorized", "detail": "missing, wrong or malformed credentials"}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from peers_serve import start_serve

    work = tmp_path_factory.mktemp("api")
    served = start_serve(work, "--max-auth-failures", "0")     # every fuzzed credential is a failure
    try:
        (work / "pw").write_text(PASSWORD + "\n")
        added = served.users("add", "alice", "--password-file", str(work / "pw"), "--methods", "all")
        assert added.returncode == 0, added.stderr
        served.extra["token"] = served.add_token_user("writer", methods="all")
        served.extra["context"] = tls_context(served.ca)
        # The server is up and the token works, so every fuzz answer below is the server's judgement.
        ok = _call(served, "GET", "/api", [(b"Authorization", b"Bearer " + served.extra["token"].encode())])
        assert ok.status == 200, ok
        yield served
    finally:
        served.stop()
        stderr = served.stderr()
        assert "Traceback" not in stderr and "Exception in ASGI application" not in stderr, stderr[-3000:]


def _call(served, method, target, headers=(), body=None):
    return raw_request(served.port, served.ca, method, target, list(headers), body,
                       context=served.extra.get("context"))


def _auth(served) -> tuple[bytes, bytes]:
    return (b"Authorization", b"Bearer " + served.extra["token"].encode())


def _assert_app_answer(reply, allowed: set[int], head: bool = False) -> None:
    assert reply.status in allowed | {400}, (reply.status, reply.body[:300])
    assert reply.status < 500 and reply.status != 0
    if reply.status == 400 and reply.from_parser:
        return  # uvicorn's HTTP parser refused the bytes before the app saw them: fine, and not a 500
    assert reply.status in allowed, (reply.status, reply.body[:300])
    assert reply.header("strict-transport-security") == HSTS, reply.headers
    assert reply.header("x-content-type-options") == "nosniff", reply.headers
    if reply.status == 401:
        # Missing, wrong and malformed alike: the answer must not tell a prober which it was.
        assert reply.header("www-authenticate") == CHALLENGE, reply.headers
        if not head:
            assert reply.json == UNAUTHORIZED, reply.body[:300]
    if reply.body and reply.header("content-type") == "application/json":
        _strict_json(reply.body)


def _strict_json(body: bytes):
    """RFC 8259 JSON only: Python's json reads NaN and Infinity, which other clients reject."""
    import json as _json

    def reject(constant):
        raise AssertionError(f"the server sent {constant}, which is not JSON: {body[:200]!r}")

    return _json.loads(body, parse_constant=reject)


# Header values as they come off the wire: any byte but CR, LF and NUL (those end or break the line).
HEADER_BYTES = st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b""))


def authorization_values() -> st.SearchStrategy[bytes]:
    text = st.text(max_size=60)
    return st.one_of(
        HEADER_BYTES,
        st.tuples(st.sampled_from([b"Basic", b"basic", b"BASIC", b"Bearer", b"Token", b"Digest", b"", b"Basic  "]),
                  HEADER_BYTES).map(lambda t: t[0] + b" " + t[1]),
        # well-formed Basic with wrong or odd user:password pairs (alice exists: her password is checked)
        st.tuples(st.sampled_from(["alice", "ALICE", "bob", "", "alice\x00"]), text).map(
            lambda t: b"Basic " + base64.b64encode(f"{t[0]}:{t[1]}".encode("utf-8", "surrogatepass"))),
        st.binary(max_size=60).map(lambda b: b"Basic " + base64.b64encode(b)),
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80).map(
            lambda s: b"Bearer " + s.encode()),
        st.integers(1000, 9000).map(lambda n: b"Bearer " + b"A" * n),
    )


@SERVER
@given(value=authorization_values(), path=st.sampled_from(["/api", "/api/products", "/api/products/1", "/", "/nope"]),
       method=st.sampled_from(["GET", "POST", "DELETE", "HEAD"]))
@example(value=b"Basic " + base64.b64encode(b"alice:" + PASSWORD.encode() + b"x"), path="/api", method="GET")
@example(value=b"Basic \xff\xfe", path="/api", method="GET")
@example(value=b"Basic " + base64.b64encode(b"\xff:\xfe"), path="/api", method="GET")
@example(value=None, path="/api", method="GET")
@example(value=None, path="/api/products/1", method="GET")
@example(value=b"Basic " + base64.b64encode(b"mallory:" + PASSWORD.encode()), path="/api/products/1", method="GET")
@example(value=b"Bearer tlk_not-a-real-token", path="/api/products/1", method="GET")
@example(value=b"Basic !!!notbase64***", path="/api/products/1", method="GET")
@example(value=b"Basic " + base64.b64encode(b"alice"), path="/api/products/1", method="GET")
@example(value=b"Basic " + base64.b64encode(b"alice:\xff\xfe"), path="/api/products/1", method="GET")
@example(value=b"Digest username=alice", path="/api/products/1", method="GET")
@example(value=b"Bearer", path="/api/products/1", method="GET")
@example(value=b"Basic ", path="/api/products/1", method="GET")
def test_fuzzed_authorization_is_always_401(api, value, path, method):
    """Any Authorization value, or none (None), gets the one 401: no value drawn comes near the server's
    header line limit, so a 431 would be a wrong answer too."""
    headers = [] if value is None else [(b"Authorization", value)]
    reply = _call(api, method, path, headers, b"{}" if method == "POST" else None)
    _assert_app_answer(reply, {401}, head=method == "HEAD")


@SERVER
@given(value=HEADER_BYTES, name=st.sampled_from([b"X-API-Key", b"x-api-key", b"X-Api-Key"]))
@example(value=b"tlk_nope", name=b"X-API-Key")
def test_fuzzed_api_key_header_is_always_401(api, value, name):
    reply = _call(api, "GET", "/api/products", [(name, value)])
    if value.strip(b" \t") == api.extra["token"].encode():
        return
    _assert_app_answer(reply, {401})


QUERY_CHARS = st.sampled_from(list("=&;%+?#/abcdefghijklmnopqrstuvwxyzID0123456789_-.~ ")) | st.characters(
    min_codepoint=0x21, max_codepoint=0x7e)


@SERVER
@given(query=st.one_of(
    st.text(QUERY_CHARS, max_size=120),
    st.lists(st.tuples(st.sampled_from(["limit", "offset", "id", "name", "price", "stock", "rowid", "authtoken",
                                        "x", "", "limit[]", "name%00"]),
                       st.one_of(st.integers(-10**20, 10**20).map(str), st.text(QUERY_CHARS, max_size=20))),
             max_size=6).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)),
), table=st.sampled_from(["products", "customers", "orders", "nope", "sqlite_schema", "products%20"]))
@example(query="limit=99999999999999999999999", table="products")
@example(query="offset=-1", table="products")
@example(query="name=%00", table="products")
@example(query="%ff%fe=1", table="products")
def test_fuzzed_query_strings_never_500(api, query, table):
    reply = _call(api, "GET", f"/api/{table}?{query}", [_auth(api)])
    _assert_app_answer(reply, {200, 400, 404})


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=8)
COLUMNS = ["id", "name", "price", "stock", "email", "country", "customer_id", "product_id", "quantity", "created",
           "rowid", "", "nope", "name; DROP TABLE products"]


@SERVER
@given(document=st.one_of(
    st.dictionaries(st.sampled_from(COLUMNS), json_values, max_size=5),
    json_values,
), method=st.sampled_from(["POST", "PUT", "PATCH"]), table=st.sampled_from(["products", "customers", "orders"]),
    key=st.sampled_from(["1", "2", "999999", "abc", "%00", "-1"]))
def test_fuzzed_json_bodies_never_500(api, document, method, table, key):
    import json as _json

    target = f"/api/{table}" if method == "POST" else f"/api/{table}/{key}"
    body = _json.dumps(document).encode()
    reply = _call(api, method, target, [_auth(api), (b"Content-Type", b"application/json")], body)
    _assert_app_answer(reply, {200, 201, 400, 404, 409, 413})


HOSTILE_BODIES = {
    "lone surrogate": b'{"name": "\\ud800", "price": 1}',
    "NaN": b'{"name": "nan", "price": NaN}',
    "Infinity": b'{"name": "inf", "price": Infinity}',
    "1e999": b'{"name": "overflow", "price": 1e999}',
    "nested arrays": b"[" * 5000,
    "nested objects": b'{"a":' * 3000,
    "byte order mark": b'\xef\xbb\xbf{"name": "bom", "price": 1}',
    "duplicate keys": b'{"name": "dup", "name": "dup2", "price": 2}',
    "huge integer": b'{"id": 99999999999999999999, "name": "big", "price": 1}',
    "not UTF-8": b'{"name": "\xff\xfe", "price": 1}',
    "not JSON": b"{not json",
}


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_hostile_json_bodies_are_client_errors(api, name, method):
    """Bodies that break naive JSON handling: each must be refused (4xx) or stored and served as real JSON;
    one that is no JSON at all is a 400 that says so."""
    target = "/api/products" if method == "POST" else "/api/products/2"
    reply = _call(api, method, target, [_auth(api), (b"Content-Type", b"application/json")], HOSTILE_BODIES[name])
    _assert_app_answer(reply, {200, 201, 400, 404, 409, 413})
    if name == "not JSON":
        assert reply.status == 400 and reply.json["error"] == "bad json", (reply.status, reply.body[:300])
    if reply.status in (200, 201):
        row = _strict_json(reply.body)
        again = _call(api, "GET", f"/api/products/{row['id']}", [_auth(api)])
        assert again.status == 200
        _strict_json(again.body)


@SERVER
@given(body=st.binary(max_size=400), method=st.sampled_from(["POST", "PUT", "PATCH"]))
def test_fuzzed_raw_bodies_never_500(api, body, method):
    target = "/api/products" if method == "POST" else "/api/products/2"
    reply = _call(api, method, target, [_auth(api), (b"Content-Type", b"application/json")], body)
    _assert_app_answer(reply, {200, 201, 400, 404, 409, 413})


# Tables, rows and routes that are not there, some shaped like an injection or a peek at the schema.
NOT_FOUND = ["/api/nosuchtable", "/api/products/99999", "/nothing/here", "/api/a/b/c/d", "/api/sqlite_schema",
             '/api/products"%3B%20DROP%20TABLE%20products', "/api/x"]


@SERVER
@given(path=st.text(st.sampled_from(list("/api.%2e%2fproducts0123456789?#;\\")) | st.characters(
    min_codepoint=0x21, max_codepoint=0x7e), max_size=60),
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "FOO"]))
@example(path="/api/products/../customers", method="GET")
@example(path="/api/%2e%2e/x", method="GET")
@example(path="*", method="OPTIONS")
@example(path="/api/nosuchtable", method="GET")
@example(path="/api/products/99999", method="GET")
@example(path="/nothing/here", method="GET")
@example(path="/api/a/b/c/d", method="GET")
@example(path="/api/sqlite_schema", method="GET")
@example(path='/api/products"%3B%20DROP%20TABLE%20products', method="GET")
@example(path="/api/x", method="GET")
def test_fuzzed_paths_and_methods_never_500(api, path, method):
    target = path if path.startswith(("/", "*")) else "/" + path
    reply = _call(api, method, target, [_auth(api)], b"{}" if method in ("POST", "PUT", "PATCH") else None)
    _assert_app_answer(reply, {200, 201, 204, 400, 403, 404, 405, 409}, head=method == "HEAD")
    if path in NOT_FOUND and method == "GET":
        assert reply.status == 404 and reply.json["error"] == "not found", (path, reply.status, reply.body[:300])


@pytest.mark.parametrize("line", [b"bob:{SHA}\xc3\xa9abc", b"carl:$apr1$s\xc3\xa9lt$abc", b"dora:$2y$05$\xc3\xa9",
                                  b"erin:$apr1$", b"fred:$argon2id$v=19$m=8,t=1,p=1$\xc3\xa9"])
def test_odd_imported_htpasswd_hash_is_a_401_at_login(api, tmp_path, line):
    """An htpasswd line imported as is (non-ASCII, truncated hashes) must fail the login, not the server."""
    name = line.split(b":")[0].decode()
    (tmp_path / "htpasswd").write_bytes(line + b"\n")
    imported = api.users("import-htpasswd", str(tmp_path / "htpasswd"), "--json")
    assert imported.returncode in (0, 2), imported.stderr
    basic = b"Basic " + base64.b64encode(f"{name}:whatever".encode())
    reply = _call(api, "GET", "/api", [(b"Authorization", basic)])
    _assert_app_answer(reply, {401})


@pytest.fixture(scope="module")
def api_query_token(tmp_path_factory):
    """A second server with --allow-query-token: ?authtoken= becomes a credential to fuzz."""
    from peers_serve import start_serve

    work = tmp_path_factory.mktemp("apiq")
    served = start_serve(work, "--allow-query-token", "--max-auth-failures", "0")
    try:
        served.extra["token"] = served.add_token_user("reader")
        served.extra["context"] = tls_context(served.ca)
        ok = _call(served, "GET", f"/api?authtoken={served.extra['token']}")
        assert ok.status == 200, ok
        yield served
    finally:
        served.stop()
        assert "Traceback" not in served.stderr(), served.stderr()[-3000:]


@SERVER
@given(query=st.one_of(
    st.text(QUERY_CHARS, max_size=100).map(lambda s: "authtoken=" + s),
    st.lists(st.sampled_from(["authtoken=", "authtoken", "authtoken=%00", "authtoken=tlk_", "AUTHTOKEN=x",
                              "authtoken=%ff%fe", "limit=1", "authtoken=a&authtoken=b"]), max_size=4).map("&".join),
))
@example(query="authtoken=% 0")
@example(query="authtoken=%zz")
def test_fuzzed_query_tokens_are_401(api_query_token, query):
    """A wrong token is 401; a query that names the token twice or undecodably is refused with 400
    (the rule of tlskit.server.query, which the access log and the proxy follow too)."""
    from tlskit.server import query as query_rule

    reply = _call(api_query_token, "GET", f"/api/products?{query}")
    try:
        query_rule.check(query.encode("latin-1"))
    except query_rule.AmbiguousQuery:
        # A space or control byte makes the request line itself malformed: the parser's 400 comes first.
        assert reply.from_parser or (reply.status == 400 and b"authtoken" in reply.body), (reply.status, reply.body)
        return
    _assert_app_answer(reply, {401})


def test_server_survived_the_fuzzing(api):
    reply = _call(api, "GET", "/api/products?limit=1", [_auth(api)])
    assert reply.status == 200, reply
    _assert_app_answer(reply, {200})
    assert api.proc.poll() is None
