"""Users whose credential is a client certificate or an S3 key pair, end to end: `tlskit ca client`, `tlskit
users add --cert/--s3-key`, a running `tlskit serve`, curl and botocore's own signers; and `tlskit users why`."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from conftest import assert_one_line_error, require_binary, run_tlskit
from peers_postgres import pg_url, postgres  # noqa: F401 (fixtures)
from peers_serve import start_serve


def _curl(server, *args: str, path: str = "/api/me") -> tuple[int, str]:
    done = subprocess.run([require_binary("curl"), "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20",
                           "--resolve", f"localhost:{server.port}:127.0.0.1", "--cacert", str(server.ca), *args,
                           f"https://localhost:{server.port}{path}"], capture_output=True, text=True, timeout=60,
                          cwd=server.extra["work"])
    body, _, code = done.stdout.rpartition("\n")
    return int(code or 0), body


def _until(check, seconds: float = 5.0):
    """The users store is reread within a second: wait for a change to show."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("creds")
    assert run_tlskit("ca", "init", "--dir", "ca", "--cn", "Users CA", cwd=work).returncode == 0
    for name, out in (("carol", "carol"), ("carol", "carol-laptop"), ("dave", "dave")):
        made = run_tlskit("ca", "client", name, "--ca-dir", "ca", "--out", f"{out}.pem", cwd=work)
        assert made.returncode == 0, made.stderr
    server = start_serve(work, "--client-ca", str(work / "ca" / "ca.pem"))
    server.extra["work"] = work
    yield server
    server.stop()


def test_a_certificate_only_user_gets_in_with_curl(served):
    add = served.users("add", "dave", "--methods", "GET,POST", "--cert", str(served.extra["work"] / "dave.pem"),
                       "--json")
    assert add.returncode == 0, add.stderr
    assert add.json["certificates"] == 1 and add.json["password"] is None and add.json["tokens"] == 0
    status, body = _until(lambda: (lambda r: r if r[0] == 200 else None)(_curl(served, "--cert", "dave.pem",
                                                                                 "--key", "dave.key"))) or (0, "")
    assert status == 200 and json.loads(body)["user"] == "dave" and json.loads(body)["authenticated_by"] == "certificate"
    # Nothing else proves dave: no password, no token.
    assert _curl(served, "-u", "dave:anything")[0] == 401


def test_a_pinned_user_is_refused_with_another_valid_certificate_until_it_is_pinned(served):
    work = served.extra["work"]
    assert served.users("add", "carol", "--cert", str(work / "carol.pem")).returncode == 0
    laptop = ("--cert", "carol-laptop.pem", "--key", "carol-laptop.key")
    assert _until(lambda: _curl(served, "--cert", "carol.pem", "--key", "carol.key")[0] == 200)
    # Same CA, same CN, verifies: but not the pinned one.
    status, body = _curl(served, *laptop)
    assert status == 401 and json.loads(body)["error"] == "unauthorized"
    assert served.users("set", "carol", "--cert", str(work / "carol-laptop.pem"), "--remove-cert",
                        str(work / "carol.pem")).returncode == 0
    assert _until(lambda: _curl(served, *laptop)[0] == 200)
    assert _curl(served, "--cert", "carol.pem", "--key", "carol.key")[0] == 401
    assert_one_line_error(served.users("set", "carol", "--remove-cert", str(work / "carol.pem")), 2, "no certificate")


def _signed(server, signer: str, access_key: str, secret: str, method: str = "GET", path: str = "/api/me",
            body: bytes = b"") -> tuple[int, str]:
    from botocore.auth import HmacV1Auth, S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=f"https://localhost:{server.port}{path}", data=body,
                         headers={"Content-Type": "application/json"} if body else {})
    credentials = Credentials(access_key, secret)
    {"v4": SigV4Auth(credentials, "execute-api", "eu-west-1"), "s3v4": S3SigV4Auth(credentials, "s3", "us-east-1"),
     "v2": HmacV1Auth(credentials)}[signer].add_auth(request)
    args = ["-X", method]
    for name, value in request.headers.items():
        args += ["-H", f"{name}: {value.decode() if isinstance(value, bytes) else value}"]
    if body:
        args += ["--data-binary", body.decode()]
    return _curl(server, *args, path=path)


@pytest.fixture(scope="module")
def key_pair(served):
    add = served.users("add", "bob", "--s3-key", "--methods", "GET,POST", "--json")
    assert add.returncode == 0, add.stderr
    pair = add.json["access_key_id"], add.json["secret_access_key"]
    assert pair[1] not in served.users("list", "--json").stdout
    assert _until(lambda: _signed(served, "v4", *pair)[0] == 200)
    return pair


@pytest.mark.parametrize("signer", ["v4", "s3v4", "v2"])
def test_botocore_signed_requests_with_an_s3_key_pair(served, key_pair, signer):
    status, body = _signed(served, signer, *key_pair)
    assert status == 200, body
    assert json.loads(body)["user"] == "bob" and json.loads(body)["authenticated_by"] == "s3"
    wrong_status, wrong_body = _signed(served, signer, key_pair[0], key_pair[1][::-1])
    assert wrong_status == 401 and wrong_body == _curl(served, "-u", "bob:wrong")[1]


def test_a_signed_post_covers_its_body(served, key_pair):
    status, body = _signed(served, "v4", *key_pair, method="POST", path="/api/products",
                           body=b'{"name":"Signed lamp","price":3.5,"stock":1}')
    assert status == 201, body
    assert json.loads(body)["name"] == "Signed lamp"


def test_a_removed_key_pair_stops_working(served):
    add = served.users("add", "erin", "--s3-key", "--json").json
    pair = add["access_key_id"], add["secret_access_key"]
    assert _until(lambda: _signed(served, "v2", *pair)[0] == 200)
    assert served.users("set", "erin", "--remove-s3-key", pair[0]).returncode == 0
    assert _until(lambda: _signed(served, "v2", *pair)[0] == 401)


# --- users why ----------------------------------------------------------------------------------------

def test_users_why_exit_codes_name_the_rule(served):
    assert served.users("add", "frank", "--token", "--methods", "GET", "--max-requests", "50").returncode == 0
    allowed = served.users("why", "frank", "GET", "/api/products/1", "--json")
    assert allowed.returncode == 0 and allowed.json["allowed"] is True and allowed.json["rule"] is None
    method = served.users("why", "frank", "DELETE", "/api/products/1")
    assert method.returncode == 1 and "(method)" in method.stdout and "may GET, not DELETE" in method.stdout
    override = served.users("why", "frank", "POST", "/api/products/1", "--method-override", "DELETE", "--json")
    assert override.returncode == 1 and override.json["rule"] == "method"
    address = served.users("why", "frank", "GET", "/api", "--ip", "10.0.0.7", "--json")
    assert address.returncode == 1 and address.json["rule"] == "address" and address.json["status"] == 403
    inside = served.users("why", "frank", "GET", "/api", "--ip", "10.0.0.7", "--allow", "10.0.0.0/8")
    assert inside.returncode == 0, inside.stdout
    nobody = served.users("why", "nobody", "GET", "/api", "--json")
    assert nobody.returncode == 1 and nobody.json["rule"] == "user" and nobody.json["status"] == 401


def test_users_why_reads_a_shared_limits_store_without_spending_it(served, tmp_path):
    from tlskit.server.limits import Limits, SharedLimiter

    assert served.users("add", "gina", "--token", "--max-requests", "3").returncode == 0
    path = tmp_path / "limits.sqlite"
    limiter = SharedLimiter(path)
    store = ("--limits-store", f"sqlite:{path}")
    assert served.users("why", "gina", "GET", "/api", *store).returncode == 0
    for _ in range(3):
        assert limiter.acquire("gina", Limits(3, 0)).allowed
    spent = served.users("why", "gina", "GET", "/api", *store, "--json")
    assert spent.returncode == 1 and spent.json["rule"] == "limit" and spent.json["status"] == 429, spent.stdout
    assert "retry after" in spent.json["steps"][-1]["detail"]
    import sqlite3

    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM admitted").fetchone()[0] == 3


# --- the same over PostgreSQL (the server's background feed) -------------------------------------------

def test_pins_and_signed_keys_on_postgresql(pg_url, tmp_path):
    state = tmp_path / "state"
    assert run_tlskit("ca", "init", "--dir", "ca", "--cn", "PG CA", cwd=tmp_path).returncode == 0
    assert run_tlskit("ca", "client", "hana", "--ca-dir", "ca", cwd=tmp_path).returncode == 0
    users = ("users", "--db", pg_url, "--state-dir", str(state))
    added = run_tlskit(*users[:1], "add", "ivan", *users[1:], "--s3-key", "--json")
    assert added.returncode == 0, added.stderr
    assert (state / "s3-secrets.key").stat().st_mode & 0o777 == 0o600
    pair = added.json["access_key_id"], added.json["secret_access_key"]
    import psycopg

    with psycopg.connect(pg_url) as db:
        assert pair[1] not in str(db.execute("SELECT * FROM tlskit.s3_keys").fetchall())
    server = start_serve(tmp_path, "--db", pg_url, "--client-ca", str(tmp_path / "ca" / "ca.pem"), state_dir=state)
    server.extra["work"] = tmp_path
    try:
        assert _until(lambda: _signed(server, "v4", *pair)[0] == 200)
        assert _signed(server, "v2", pair[0], "not the secret")[0] == 401
        # A pin added while serving reaches the feed through the triggers.
        assert run_tlskit(*users[:1], "add", "hana", *users[1:], "--cert", str(tmp_path / "hana.pem")).returncode == 0
        assert _until(lambda: _curl(server, "--cert", "hana.pem", "--key", "hana.key")[0] == 200)
    finally:
        server.stop()
