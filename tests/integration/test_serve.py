"""`tlskit serve` against real clients: curl for HTTP, openssl s_client for TLS.

One server (module-scoped) with users of every kind answers most tests; tests that need other flags
start their own. Every server binds 127.0.0.1 on a free port and is stopped at teardown.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
import subprocess

import pytest

from conftest import assert_one_line_error, free_port, openssl, require_binary, run_tlskit
from peers_serve import poll_until, start_serve

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_binary("curl")
    work = tmp_path_factory.mktemp("serve")
    served = start_serve(work, "--key-header", "X-Auth-Key", redirect=True)
    (work / "pw").write_text(PASSWORD + "\n")
    run = served.users("add", "alice", "--password-file", str(work / "pw"), "--token", "--methods", "all", "--json")
    assert run.returncode == 0, run.stderr
    served.extra["alice_token"] = run.json["token"]
    served.extra["bob_token"] = served.add_token_user("bob", "GET")
    try:
        yield served
    finally:
        served.stop()


def basic(user: str, secret: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


# ---- zero-config start --------------------------------------------------------------------------

def test_zero_config_start_makes_ca_and_cert_and_prints_how_to_call(server):
    banner = server.stderr()
    ca = server.state_dir / "ca" / "ca.pem"
    assert str(ca) in banner
    assert f"https://localhost:{server.port}/" in banner
    assert "tlskit users add" in banner and f"curl --cacert {ca}" in banner
    assert stat.S_IMODE((server.state_dir / "localhost.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((server.state_dir / "ca" / "ca.key").stat().st_mode) == 0o600
    # The served certificate verifies against the printed CA for localhost and 127.0.0.1.
    leaf = server.state_dir / "localhost.pem"
    for host in ("-verify_hostname", "-verify_ip"):
        value = "localhost" if host == "-verify_hostname" else "127.0.0.1"
        done = openssl("verify", "-CAfile", str(ca), host, value, str(leaf))
        assert b": OK" in done.stdout
    # The demo dataset is served.
    reply = server.curl("/api", "-H", f"Authorization: Bearer {server.extra['bob_token']}")
    assert reply.status == 200
    assert {t["name"] for t in reply.json["tables"]} == {"products", "customers", "orders"}


def test_zero_config_restart_reuses_the_same_ca(server, tmp_path):
    before = (server.state_dir / "ca" / "ca.pem").read_bytes()
    again = start_serve(tmp_path, state_dir=server.state_dir)
    try:
        assert again.curl("/api").status == 401
    finally:
        again.stop()
    assert (server.state_dir / "ca" / "ca.pem").read_bytes() == before


# ---- every credential form ----------------------------------------------------------------------

@pytest.mark.parametrize("form", ["basic-password", "basic-token", "token", "bearer", "x-api-key", "key-header"])
def test_each_credential_form_is_accepted(server, form):
    token = server.extra["alice_token"]
    header = {
        "basic-password": basic("alice", PASSWORD),
        "basic-token": basic("alice", token),
        "token": f"Authorization: Token {token}",
        "bearer": f"Authorization: Bearer {token}",
        "x-api-key": f"X-API-Key: {token}",
        "key-header": f"X-Auth-Key: {token}",
    }[form]
    reply = server.curl("/api/products/1", "-H", header)
    assert reply.status == 200, reply.body
    assert reply.json["name"] == "USB-C cable"


def test_curl_user_option_is_basic_auth(server):
    assert server.curl("/api/products/2", "-u", f"alice:{PASSWORD}").status == 200


def test_query_token_only_with_the_flag(server, tmp_path):
    token = server.extra["bob_token"]
    assert server.curl(f"/api/products/1?authtoken={token}").status == 401
    other = start_serve(tmp_path, "--allow-query-token", "--db", str(server.db), state_dir=server.state_dir)
    try:
        reply = other.curl(f"/api/products/1?authtoken={token}")
        assert reply.status == 200, reply.body
        assert other.curl("/api/products/1?authtoken=tlk_wrong").status == 401
        log = other.access_log("authtoken=REDACTED", count=2)
        assert token not in log and "authtoken=REDACTED" in log
    finally:
        other.stop()


def test_unknown_user_and_wrong_password_answer_byte_for_byte_alike(server):
    wrong = server.curl("/api/products/1", "-H", basic("alice", "nope"))
    unknown = server.curl("/api/products/1", "-H", basic("nobody", "nope"))
    assert (wrong.status, wrong.body) == (unknown.status, unknown.body)
    strip = lambda r: {k: v for k, v in r.headers.items() if k != "date"}  # noqa: E731
    assert strip(wrong) == strip(unknown)


# ---- privileges and addresses -------------------------------------------------------------------

def test_method_the_user_lacks_is_403(server):
    token = server.extra["bob_token"]
    for method, data in (("POST", '{"name": "x", "price": 1}'), ("DELETE", None), ("PATCH", '{"stock": 1}')):
        path = "/api/products" if method == "POST" else "/api/products/1"
        reply = server.curl(path, "-H", f"X-API-Key: {token}", method=method, data=data)
        assert reply.status == 403, (method, reply.body)
        assert reply.json["error"] == "forbidden"
        assert reply.header("strict-transport-security") == "max-age=31536000; includeSubDomains"
        assert reply.header("x-content-type-options") == "nosniff"
    assert server.curl("/api/products/1", "-H", f"X-API-Key: {token}").json["stock"] == 120
    refused = [line for line in server.access_log('"DELETE /api/products/1 HTTP/1.1" 403 ').splitlines() if '"DELETE /api/products/1 HTTP/1.1" 403 ' in line]
    assert refused and all(" - bob [" in line for line in refused)


def test_client_outside_allow_is_403(tmp_path):
    served = start_serve(tmp_path, "--allow", "127.0.0.1/32")
    try:
        token = served.add_token_user("dave")
        ok = served.curl("/api/products/1", "-H", f"X-API-Key: {token}", interface="127.0.0.1")
        assert ok.status == 200, ok.stderr
        refused = served.curl("/api/products/1", "-H", f"X-API-Key: {token}", interface="127.0.0.2")
        assert refused.status == 403, refused.stderr
        assert refused.json["detail"] == "client address not allowed"
        assert refused.header("strict-transport-security")
        assert '127.0.0.2 - - ' in served.access_log('127.0.0.2 - - ')
    finally:
        served.stop()


def test_default_allows_all_of_loopback(server):
    reply = server.curl("/api/products/1", "-H", f"X-API-Key: {server.extra['bob_token']}", interface="127.0.0.2")
    assert reply.status == 200


# ---- the dataset API ---------------------------------------------------------------------------

def test_crud_round_trip_and_client_errors(server):
    auth = ("-H", f"Authorization: Bearer {server.extra['alice_token']}")
    created = server.curl("/api/products", *auth, method="POST", data='{"name": "Desk lamp", "price": 25.5, "stock": 3}')
    assert created.status == 201, created.body
    row = created.json
    assert row["name"] == "Desk lamp" and row["stock"] == 3
    assert created.header("location") == f"/api/products/{row['id']}"
    assert server.curl(f"/api/products/{row['id']}", *auth).json == row
    patched = server.curl(f"/api/products/{row['id']}", *auth, method="PATCH", data='{"stock": 9}')
    assert patched.status == 200 and patched.json["stock"] == 9
    put = server.curl(f"/api/products/{row['id']}", *auth, method="PUT", data='{"price": 20, "stock": 1}')
    assert put.status == 200 and put.json["price"] == 20
    listed = server.curl("/api/products?name=Desk%20lamp", *auth).json
    assert [r["id"] for r in listed["rows"]] == [row["id"]]
    # conflicts and bad input are 4xx, never 500
    dup = server.curl("/api/products", *auth, method="POST", data='{"name": "Desk lamp", "price": 1}')
    assert dup.status == 409, dup.body
    assert server.curl("/api/products", *auth, method="POST", data='{"name": ').status == 400
    assert server.curl("/api/products", *auth, method="POST", data='[1, 2]').status == 400
    assert server.curl("/api/products", *auth, method="POST", data='{"nope": 1}').status == 400
    assert server.curl("/api/products", *auth, method="POST", data='{"name": {"a": 1}, "price": 1}').status == 400
    assert server.curl("/api/products", *auth, method="POST", data='{"name": "neg", "price": -1}').status == 409
    assert server.curl("/api/products", *auth, method="POST", data='\xff\xfe').status == 400
    assert server.curl("/api/products", *auth, method="POST", data='{"name": "inf", "price": 1e400}').status == 400
    assert server.curl("/api/products", *auth, method="POST", data='{"name": "\\ud800", "price": 1}').status == 400
    assert server.curl("/api/products", *auth, method="POST", data='{"name": "big", "price": 1e2, "stock": 99999999999999999999999}').status == 400
    assert server.curl("/api/products?offset=99999999999999999999999", *auth).status == 400
    assert server.curl("/api/products", *auth, method="POST", data="").status == 400
    assert server.curl("/api/products", *auth, method="POST", data='{"a":' * 3000).status == 400
    assert server.curl("/api/products?limit=x", *auth).status == 400
    assert server.curl("/api/products?colour=red", *auth).status == 400
    deleted = server.curl(f"/api/products/{row['id']}", *auth, method="DELETE")
    assert deleted.status == 204
    assert server.curl(f"/api/products/{row['id']}", *auth).status == 404
    assert server.curl(f"/api/products/{row['id']}", *auth, method="DELETE").status == 404
    assert server.curl(f"/api/products/{row['id']}", *auth, method="PATCH", data='{"stock": 1}').status == 404


def test_list_paging_and_filters(server):
    auth = ("-H", f"X-API-Key: {server.extra['bob_token']}")
    page = server.curl("/api/customers?limit=2&offset=1", *auth).json
    assert [r["id"] for r in page["rows"]] == [2, 3]
    assert page["limit"] == 2 and page["offset"] == 1
    filtered = server.curl("/api/orders?customer_id=1", *auth).json["rows"]
    assert [r["id"] for r in filtered] == [1, 2]


def test_openapi_describes_the_tables(server):
    doc = server.curl("/openapi.json", "-H", f"X-API-Key: {server.extra['bob_token']}").json
    assert doc["openapi"].startswith("3.")
    assert "/api/products/{id}" in doc["paths"]
    assert doc["components"]["schemas"]["products"]["properties"]["price"] == {"type": "number"}


def test_head_is_get_without_body(server):
    reply = server.curl("/api/products/1", "-I", "-H", f"X-API-Key: {server.extra['bob_token']}")
    assert reply.status == 200 and reply.header("content-length") == "53"
    assert b"{" not in reply.body    # with -I curl writes the headers where the body would go


# ---- TLS ---------------------------------------------------------------------------------------

def s_client(server, *args: str) -> subprocess.CompletedProcess:
    binary = require_binary("openssl")
    return subprocess.run([binary, "s_client", "-connect", f"127.0.0.1:{server.port}", "-servername", "localhost",
                           "-CAfile", str(server.ca), *args], input=b"", capture_output=True, timeout=30)


def test_tls_1_1_and_1_0_are_refused(server):
    for version in ("-tls1_1", "-tls1"):
        # SECLEVEL=0 lets the client offer the old version, so the refusal is the server's.
        done = s_client(server, version, "-cipher", "DEFAULT@SECLEVEL=0")
        assert done.returncode != 0
        text = (done.stdout + done.stderr).decode(errors="replace")
        assert "Cipher is (NONE)" in text or "alert protocol version" in text or "no protocols available" in text


def test_tls_1_2_with_alpn_and_forward_secrecy(server):
    done = s_client(server, "-tls1_2", "-alpn", "http/1.1")
    text = done.stdout.decode(errors="replace")
    assert done.returncode == 0, done.stderr
    assert "Protocol  : TLSv1.2" in text or "Protocol: TLSv1.2" in text
    assert "ALPN protocol: http/1.1" in text
    assert "Verify return code: 0 (ok)" in text
    assert "ECDHE" in text


def test_tls_1_2_weak_ciphers_are_refused(server):
    done = s_client(server, "-tls1_2", "-cipher", "AES128-SHA:DES-CBC3-SHA:@SECLEVEL=0")
    assert done.returncode != 0
    # The refusal is the cipher's: the server answered the ClientHello with no ServerHello (it closes
    # without a handshake_failure alert: asyncio's TLS layer drops the alert OpenSSL queues), and the
    # same client offering one strong cipher more gets through.
    text = (done.stdout + done.stderr).decode(errors="replace")
    assert "Cipher is (NONE)" in text and "SSL handshake has read 0 bytes" in text, text
    control = s_client(server, "-tls1_2", "-cipher", "AES128-SHA:DES-CBC3-SHA:ECDHE-ECDSA-AES128-GCM-SHA256:"
                       "ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0")
    assert control.returncode == 0 and b"Cipher is ECDHE-" in control.stdout, control.stdout


def test_tls_1_3(server):
    done = s_client(server, "-tls1_3")
    assert done.returncode == 0
    assert b"TLSv1.3" in done.stdout


# ---- the plain-HTTP redirect -------------------------------------------------------------------

def test_redirect_port_308_keeps_path_and_query(server):
    reply = server.curl("/api/products/1?limit=5&x=a%20b", scheme_port=f"http://127.0.0.1:{server.redirect_port}")
    assert reply.status == 308
    assert reply.header("location") == f"https://127.0.0.1:{server.port}/api/products/1?limit=5&x=a%20b"
    posted = server.curl("/api/orders", "-H", "Host: localhost:8080", method="POST", data="{}",
                         scheme_port=f"http://127.0.0.1:{server.redirect_port}")
    assert posted.status == 308
    assert posted.header("location") == f"https://localhost:{server.port}/api/orders"
    # A name the certificate is not for is never redirected to (no open redirect on the plain port).
    elsewhere = server.curl("/api/orders", "-H", "Host: api.example.test",
                            scheme_port=f"http://127.0.0.1:{server.redirect_port}")
    assert elsewhere.status == 400 and elsewhere.header("location") is None
    # curl -L follows it to HTTPS and gets the API's answer.
    followed = server.curl("/api/products/1", "-L", "-H", f"X-API-Key: {server.extra['bob_token']}",
                           scheme_port=f"http://localhost:{server.redirect_port}")
    assert followed.status == 200 and followed.json["id"] == 1


# ---- secrets -----------------------------------------------------------------------------------

def test_secrets_are_hashed_at_rest(server):
    raw = server.db.read_bytes()
    for secret in (server.extra["alice_token"], server.extra["bob_token"], PASSWORD):
        assert secret.encode() not in raw
    db = sqlite3.connect(server.db)
    stored = dict(db.execute("SELECT name, password_hash FROM users"))
    db.close()
    assert stored["alice"].startswith("$argon2id$")
    assert stat.S_IMODE(server.db.stat().st_mode) == 0o600


def test_access_log_has_users_and_statuses_but_no_secrets(server):
    token = server.extra["alice_token"]
    server.curl("/api/customers/1", "-H", basic("alice", PASSWORD), "-A", "logcheck/1")
    server.curl("/api/customers/1", "-H", f"Authorization: Bearer {token}", "-A", "logcheck/1")
    server.curl("/api/customers/1", "-H", basic("alice", "a-wrong-secret"), "-A", "logcheck/1")
    log = server.access_log("logcheck/1", count=3)
    lines = [line for line in log.splitlines() if "logcheck/1" in line]
    assert len(lines) == 3
    assert ' - alice [' in lines[0] and '"GET /api/customers/1 HTTP/1.1" 200 ' in lines[0]
    assert ' - - [' in lines[2] and '" 401 ' in lines[2]
    assert lines[0].endswith("ms")
    for secret in (token, PASSWORD, "a-wrong-secret", base64.b64encode(f"alice:{PASSWORD}".encode()).decode()):
        assert secret not in log


def test_json_access_log(tmp_path):
    served = start_serve(tmp_path, "--log-json")
    try:
        token = served.add_token_user("erin")
        served.curl("/api/products/1?limit=1", "-H", f"X-API-Key: {token}")
        entry = json.loads(served.access_log('"erin"').splitlines()[-1])
        assert entry["user"] == "erin" and entry["status"] == 200 and entry["method"] == "GET"
        assert entry["path"] == "/api/products/1?limit=1" and entry["ip"] == "127.0.0.1"
        assert entry["duration_ms"] >= 0 and entry["bytes"] > 0
    finally:
        served.stop()


# ---- users change under a running server ---------------------------------------------------------

def within_a_second(server, path: str, *args: str, status: int, method: str | None = None):
    """The README's promise for users-database changes: a running server answers ``status`` within a
    second of the command returning (1.5 s: curl and process start-up are in the measured time)."""
    return poll_until(lambda: server.curl(path, *args, method=method), lambda reply: reply.status == status,
                      timeout=1.5)


def test_user_changes_apply_without_restart(server, tmp_path):
    token = server.add_token_user("frank", "GET")
    assert server.curl("/api/products/1", "-H", f"X-API-Key: {token}").status == 200
    assert server.users("set", "frank", "--methods", "GET,DELETE").returncode == 0
    within_a_second(server, "/api/orders/5", "-H", f"X-API-Key: {token}", method="DELETE", status=204)
    assert server.users("remove", "frank").returncode == 0
    within_a_second(server, "/api/products/1", "-H", f"X-API-Key: {token}", status=401)


def test_users_set_limits_apply_to_the_running_server_within_a_second(server):
    token = server.add_token_user("hank", "GET")
    for _ in range(3):
        assert server.curl("/api/products/1", "-H", f"X-API-Key: {token}").status == 200
    assert server.users("set", "hank", "--max-requests", "1").returncode == 0
    refused = within_a_second(server, "/api/products/1", "-H", f"X-API-Key: {token}", status=429)
    assert refused.header("ratelimit-limit") == "1"


def test_password_change_invalidates_the_cached_credential(server, tmp_path):
    (tmp_path / "old").write_text("old-password\n")
    (tmp_path / "new").write_text("new-password\n")
    assert server.users("add", "gina", "--password-file", str(tmp_path / "old")).returncode == 0
    within_a_second(server, "/api/products/1", "-H", basic("gina", "old-password"), status=200)
    assert server.curl("/api/products/1", "-H", basic("gina", "old-password")).status == 200   # cached
    assert server.users("set", "gina", "--password-file", str(tmp_path / "new")).returncode == 0
    within_a_second(server, "/api/products/1", "-H", basic("gina", "old-password"), status=401)
    assert server.curl("/api/products/1", "-H", basic("gina", "new-password")).status == 200


# ---- htpasswd users served ---------------------------------------------------------------------

def test_htpasswd_users_log_in(server, tmp_path):
    import bcrypt

    apr1 = openssl("passwd", "-apr1", "apr-secret").stdout.decode().strip()
    crypted = bcrypt.hashpw(b"bcrypt-secret", bcrypt.gensalt(rounds=10)).decode().replace("$2b$", "$2y$", 1)
    sha = "{SHA}" + base64.b64encode(__import__("hashlib").sha1(b"sha-secret").digest()).decode()
    (tmp_path / "htpasswd").write_text(f"hapr:{apr1}\nhbcrypt:{crypted}\nhsha:{sha}\n")
    run = server.users("import-htpasswd", str(tmp_path / "htpasswd"), "--json")
    assert run.returncode == 0, run.stderr
    assert sorted(run.json["added"]) == ["hapr", "hbcrypt", "hsha"]
    within_a_second(server, "/api/products/1", "-H", basic("hapr", "apr-secret"), status=200)
    for name, secret in (("hapr", "apr-secret"), ("hbcrypt", "bcrypt-secret"), ("hsha", "sha-secret")):
        assert server.curl("/api/products/1", "-H", basic(name, secret)).status == 200, name
        assert server.curl("/api/products/1", "-H", basic(name, secret + "x")).status == 401, name


# ---- start-up errors ---------------------------------------------------------------------------

def test_missing_cert_file_is_one_line_error(tmp_path):
    run = run_tlskit("serve", "--cert", str(tmp_path / "no.pem"), "--key", str(tmp_path / "no.key"),
                     "--state-dir", str(tmp_path / "s"), "--port", str(free_port()))
    assert_one_line_error(run, 2, "does not exist")


def test_key_not_matching_cert_is_one_line_error(server, tmp_path):
    other = run_tlskit("selfsign", "--cn", "x.test", "--out", str(tmp_path / "x.pem"), "--key-out", str(tmp_path / "x.key"))
    assert other.returncode == 0, other.stderr
    run = run_tlskit("serve", "--cert", str(server.state_dir / "localhost.pem"), "--key", str(tmp_path / "x.key"),
                     "--state-dir", str(tmp_path / "s"), "--port", str(free_port()))
    assert_one_line_error(run, 2, "does not belong")


def test_cert_without_key_is_one_line_error(server, tmp_path):
    run = run_tlskit("serve", "--cert", str(server.state_dir / "localhost.pem"), "--state-dir", str(tmp_path / "s"))
    assert_one_line_error(run, 2, "--cert and --key")


def test_port_in_use_is_exit_3(server, tmp_path):
    run = run_tlskit("serve", "--port", str(server.port), "--state-dir", str(server.state_dir), timeout=60)
    assert_one_line_error(run, 3, "cannot listen")
    assert "choose another --port/--host" in run.stderr, run.stderr
    # A taken redirect port names the option that chose it, not --port.
    run = run_tlskit("serve", "--port", str(free_port()), "--redirect-port", str(server.port),
                     "--state-dir", str(server.state_dir), timeout=60)
    assert_one_line_error(run, 3, f"cannot listen on 127.0.0.1:{server.port}")
    assert "choose another --redirect-port/--host" in run.stderr, run.stderr


def test_bad_allow_is_one_line_error(tmp_path):
    run = run_tlskit("serve", "--allow", "10.0.0.300/8", "--state-dir", str(tmp_path / "s"))
    assert_one_line_error(run, 2, "--allow")


def test_dataset_not_sqlite_is_one_line_error(tmp_path):
    (tmp_path / "x.sqlite").write_text("not a database")
    run = run_tlskit("serve", "--dataset", str(tmp_path / "x.sqlite"), "--state-dir", str(tmp_path / "s"),
                     "--port", str(free_port()))
    assert_one_line_error(run, 2, "dataset")


# ---- given certificate, workers ------------------------------------------------------------------

def test_given_cert_and_two_workers(server, tmp_path):
    made = run_tlskit("ca", "init", "--dir", str(tmp_path / "ca"), "--cn", "Test CA")
    assert made.returncode == 0, made.stderr
    assert run_tlskit("csr", "--cn", "localhost", "--san", "IP:127.0.0.1", "--out", str(tmp_path / "s.csr"),
                      "--key-out", str(tmp_path / "s.key")).returncode == 0
    signed = run_tlskit("ca", "sign", str(tmp_path / "s.csr"), "--ca-dir", str(tmp_path / "ca"), "--out", str(tmp_path / "s.pem"))
    assert signed.returncode == 0, signed.stderr
    served = start_serve(tmp_path, "--cert", str(tmp_path / "s.pem"), "--key", str(tmp_path / "s.key"),
                         "--workers", "2", "--db", str(server.db))
    served.ca = tmp_path / "ca" / "ca.pem"
    try:
        for _ in range(6):
            reply = served.curl("/api/products/3", "-H", f"X-API-Key: {server.extra['bob_token']}")
            assert reply.status == 200, reply.stderr
        assert not (tmp_path / "state" / "ca").exists()   # no local CA when a certificate is given
    finally:
        assert served.stop() == 0, served.stderr()  # a clean exit on SIGTERM, both workers stopped


@pytest.mark.parametrize("args,contains", [(("--realm", 'my "realm"'), "--realm"), (("--workers", "0"), "--workers"),
                                           (("--port", "70000"), "--port")])
def test_bad_flags_are_refused_before_anything_is_written(tmp_path, args, contains):
    run = run_tlskit("serve", *args, "--state-dir", str(tmp_path / "state"))
    assert_one_line_error(run, 2, contains)
    assert not (tmp_path / "state").exists()


# ---- README answers: 413, 405 ------------------------------------------------------------------

def test_a_body_over_one_mib_is_413_and_inserts_nothing(server, tmp_path):
    token = server.extra["alice_token"]
    name = "x" * (1024 * 1024)   # with the JSON around it, just over 1 MiB
    (tmp_path / "big.json").write_text(json.dumps({"name": name, "price": 1, "stock": 1}))
    reply = server.curl("/api/products", "-H", f"X-API-Key: {token}", "-H", "Content-Type: application/json",
                        "--data-binary", f"@{tmp_path / 'big.json'}", method="POST")
    assert reply.status == 413, reply.body[:200]
    assert name.encode() not in server.curl("/api/products?limit=1000", "-H", f"X-API-Key: {token}").body


@pytest.mark.parametrize("method, path", [("POST", "/api/products/1"), ("DELETE", "/api/products"), ("PUT", "/api")])
def test_a_method_a_path_does_not_have_is_405(server, method, path):
    reply = server.curl(path, "-H", f"X-API-Key: {server.extra['alice_token']}", "-H", "Content-Type: application/json",
                        method=method, data="{}" if method != "DELETE" else None)
    assert reply.status == 405, (method, path, reply.body)
