"""`tlskit acme` end to end against a real Pebble + pebble-challtestsrv on free loopback ports.

Every issued certificate is checked by the openssl binary against Pebble's own root
(``openssl verify -CAfile root -untrusted chain.pem cert.pem``). No ALWAYS_VALID shortcut: Pebble's
validator really fetches http-01 answers, does the acme-tls/1 handshake and looks up TXT records.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, free_port, openssl, refused_port, run_tlskit, wait_for_port
from tlskit_processes import start_tlskit
from peers_pebble import Pebble, pebble_fixture


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    instance = pebble_fixture(tmp_path_factory)
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def root(pebble):
    return pebble.root_file()


def acme(pebble: Pebble, *args: str, **kwargs):
    """`tlskit acme ...` pointed at this Pebble (its directory and its listener's CA)."""
    command, rest = args[0], args[1:]
    extra = ["--directory", pebble.directory, "--directory-ca-file", str(pebble.ca_file)] if command != "renew" else []
    return run_tlskit("acme", command, *rest, *extra, **kwargs)


def issue(pebble: Pebble, out: Path, *names: str, challenge: list[str] | None = None, extra: list[str] | None = None):
    challenge = challenge if challenge is not None else ["--http-port", str(pebble.http_port), "--bind", "127.0.0.1"]
    return acme(pebble, "issue", *names, "--email", "test@example.com", "--agree-tos", "--out-dir", str(out),
                *challenge, *(extra or []), "--json")


def verify(root: Path, lineage: Path) -> str:
    """openssl's verdict on cert.pem with chain.pem as the untrusted intermediates."""
    result = openssl("verify", "-CAfile", str(root), "-untrusted", str(lineage / "chain.pem"), str(lineage / "cert.pem"))
    return result.stdout.decode()


def sans(cert: Path) -> str:
    return openssl("x509", "-in", str(cert), "-noout", "-ext", "subjectAltName").stdout.decode()


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def check_lineage(root: Path, lineage: Path, names: list[str]) -> None:
    assert verify(root, lineage).strip().endswith(": OK")
    text = sans(lineage / "cert.pem")
    for name in names:
        assert f"DNS:{name}" in text, text
    assert stat.S_IMODE(os.stat(lineage / "privkey.pem").st_mode) == 0o600
    # fullchain.pem is cert.pem followed by chain.pem; the key is the certificate's.
    assert (lineage / "fullchain.pem").read_bytes() == (lineage / "cert.pem").read_bytes() + (lineage / "chain.pem").read_bytes()
    from_key = openssl("pkey", "-in", str(lineage / "privkey.pem"), "-pubout").stdout
    from_cert = openssl("x509", "-in", str(lineage / "cert.pem"), "-noout", "-pubkey").stdout
    assert from_key == from_cert


# --- the four challenges -------------------------------------------------------------------------


def test_http01_standalone_issues_a_verifiable_certificate(pebble, root, tmp_path):
    run = issue(pebble, tmp_path, "a.example.com", "www.a.example.com")
    assert run.returncode == 0, run.stderr
    doc = run.json
    lineage = tmp_path / "a.example.com"
    assert doc["dir"] == str(lineage) and doc["challenge"] == "http-01"
    assert doc["names"] == ["a.example.com", "www.a.example.com"]
    assert doc["issuer"].startswith("/CN=Pebble Intermediate CA")
    check_lineage(root, lineage, ["a.example.com", "www.a.example.com"])
    settings = json.loads((lineage / "renewal.json").read_text())
    assert settings["directory"] == pebble.directory
    assert settings["challenge"] == {"type": "http-standalone", "port": pebble.http_port, "address": "127.0.0.1"}
    # The account key is kept (0600) and reused: a second issue registers no new account.
    accounts = list((tmp_path / "accounts").iterdir())
    assert len(accounts) == 1
    assert stat.S_IMODE(os.stat(accounts[0] / "account-key.pem").st_mode) == 0o600
    again = issue(pebble, tmp_path, "b.example.com")
    assert again.returncode == 0, again.stderr
    assert again.json["account"] == doc["account"]
    check_lineage(root, tmp_path / "b.example.com", ["b.example.com"])


def test_webroot_writes_answers_for_a_running_web_server_and_removes_them(pebble, root, tmp_path):
    webroot = tmp_path / "www"
    webroot.mkdir()
    (webroot / "index.html").write_text("hello")
    # A real, separate web server serves the webroot on the port Pebble's validator connects to.
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(webroot),
                               str(pebble.http_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(pebble.http_port, server, timeout=10)
        run = issue(pebble, tmp_path / "out", "web.example.com", challenge=["--webroot", str(webroot)])
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert run.returncode == 0, run.stderr
    check_lineage(root, tmp_path / "out" / "web.example.com", ["web.example.com"])
    # The answers and the directories tlskit created are gone; the site's own file is not.
    assert sorted(p.name for p in webroot.iterdir()) == ["index.html"]


def test_dns01_hook_gets_a_wildcard(pebble, root, tmp_path):
    log = tmp_path / "hook.log"
    hook = pebble.dns_hook(log)
    run = issue(pebble, tmp_path, "*.wild.example.com", "wild.example.com", challenge=["--dns-hook", str(hook)])
    assert run.returncode == 0, run.stderr
    lineage = tmp_path / "_wildcard.wild.example.com"
    assert run.json["dir"] == str(lineage) and run.json["challenge"] == "dns-01"
    check_lineage(root, lineage, ["*.wild.example.com", "wild.example.com"])
    calls = log.read_text().splitlines()
    # Both names share one TXT record name; both values were added, then removed.
    assert [c.split()[:2] for c in calls] == [["add", "_acme-challenge.wild.example.com."]] * 2 + \
        [["remove", "_acme-challenge.wild.example.com."]] * 2
    assert len({c.split()[2] for c in calls if c.startswith("add")}) == 2


def test_tls_alpn01(pebble, root, tmp_path):
    run = issue(pebble, tmp_path, "alpn.example.com",
                challenge=["--tls-alpn-port", str(pebble.tls_port), "--bind", "127.0.0.1"])
    assert run.returncode == 0, run.stderr
    assert run.json["challenge"] == "tls-alpn-01"
    check_lineage(root, tmp_path / "alpn.example.com", ["alpn.example.com"])


def test_own_csr_keeps_the_users_key(pebble, root, tmp_path):
    made = run_tlskit("csr", "--cn", "csr.example.com", "--san", "www.csr.example.com", "--out", "r.csr",
                      "--key-out", "r.key", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    run = issue(pebble, tmp_path / "out", challenge=["--http-port", str(pebble.http_port), "--bind", "127.0.0.1"],
                extra=["--csr", str(tmp_path / "r.csr")])
    assert run.returncode == 0, run.stderr
    lineage = tmp_path / "out" / "csr.example.com"
    assert run.json["privkey"] is None and not (lineage / "privkey.pem").exists()
    assert verify(root, lineage).strip().endswith(": OK")
    from_key = openssl("pkey", "-in", str(tmp_path / "r.key"), "-pubout").stdout
    assert from_key == openssl("x509", "-in", str(lineage / "cert.pem"), "-noout", "-pubkey").stdout


# --- renew and revoke ----------------------------------------------------------------------------


def test_renew_outside_the_window_leaves_files_untouched_inside_renews_and_deploys(pebble, root, tmp_path):
    first = issue(pebble, tmp_path, "renew.example.com")
    assert first.returncode == 0, first.stderr
    lineage = tmp_path / "renew.example.com"
    before = snapshot(tmp_path)
    hook_out = tmp_path.parent / f"{tmp_path.name}-deployed.txt"
    hook = f'echo "$TLSKIT_RENEWED_DIR|$TLSKIT_RENEWED_NAMES" >> {hook_out}'

    # Pebble's certificates live about five years: a 30-day window is not reached.
    quiet = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--days", "30", "--deploy-hook", hook, "--json")
    assert quiet.returncode == 0, quiet.stderr
    assert [c["status"] for c in quiet.json["certificates"]] == ["not-due"]
    assert quiet.json["certificates"][0]["days_left"] > 30 and quiet.json["certificates"][0]["not_after"]
    assert snapshot(tmp_path) == before
    assert not hook_out.exists()

    # A window longer than the certificate's life makes it due.
    due = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--days", "3000", "--deploy-hook", hook, "--json")
    assert due.returncode == 0, due.stderr
    assert [c["status"] for c in due.json["certificates"]] == ["renewed"]
    check_lineage(root, lineage, ["renew.example.com"])
    assert (lineage / "cert.pem").read_bytes() != before["renew.example.com/cert.pem"]
    assert (lineage / "privkey.pem").read_bytes() != before["renew.example.com/privkey.pem"]
    assert hook_out.read_text() == f"{lineage}|renew.example.com\n"

    # A failing deploy hook: the certificate is renewed, and the failure is one line with exit 1.
    renewed = (lineage / "cert.pem").read_bytes()
    failing = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--days", "3000",
                         "--deploy-hook", "echo nginx: reload refused >&2; exit 7")
    assert_one_line_error(failing, 1, "deploy-hook exited 7: nginx: reload refused")
    assert (lineage / "cert.pem").read_bytes() != renewed
    check_lineage(root, lineage, ["renew.example.com"])


def test_renew_text_output_and_no_certificates(tmp_path):
    run = run_tlskit("acme", "renew", "--out-dir", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "No certificates" in run.stdout


def test_revoke(pebble, root, tmp_path):
    run = issue(pebble, tmp_path, "revoke.example.com")
    assert run.returncode == 0, run.stderr
    serial = run.json["serial"]
    assert pebble.cert_status(serial) == "Valid"
    cert = tmp_path / "revoke.example.com" / "cert.pem"
    done = run_tlskit("acme", "revoke", str(cert), "--reason", "superseded", "--json")
    assert done.returncode == 0, done.stderr
    assert done.json["serial"] == serial and done.json["reason"] == "superseded"
    assert pebble.cert_status(serial) == "Revoked"
    # Revoking twice is the CA's refusal: one line with its problem type, exit 3.
    again = run_tlskit("acme", "revoke", str(cert))
    assert_one_line_error(again, 3, "alreadyRevoked")


def test_revoke_with_the_account_key_when_privkey_is_gone(pebble, tmp_path):
    run = issue(pebble, tmp_path, "revoke2.example.com")
    assert run.returncode == 0, run.stderr
    (tmp_path / "revoke2.example.com" / "privkey.pem").unlink()
    done = run_tlskit("acme", "revoke", str(tmp_path / "revoke2.example.com" / "cert.pem"), "--json")
    assert done.returncode == 0, done.stderr
    assert done.json["signed_with"] == "account key"
    assert pebble.cert_status(run.json["serial"]) == "Revoked"


# --- failures: one line, the right exit code, nothing written ------------------------------------


def test_ca_down_is_one_line_exit_3_and_writes_nothing(tmp_path):
    with refused_port() as port:
        run = run_tlskit("acme", "issue", "down.example.com", "--agree-tos", "--out-dir", str(tmp_path / "out"),
                         "--directory", f"https://127.0.0.1:{port}/dir", "--http-port", str(free_port()),
                         "--bind", "127.0.0.1")
    assert_one_line_error(run, 3, "cannot reach the ACME server")
    assert "Connection refused" in run.stderr
    assert not (tmp_path / "out").exists()


def test_renew_with_the_ca_down_leaves_existing_files_untouched(tmp_path_factory, tmp_path):
    own = pebble_fixture(tmp_path_factory)
    try:
        first = issue(own, tmp_path, "gone.example.com")
        assert first.returncode == 0, first.stderr
    finally:
        own.stop()
    before = snapshot(tmp_path)
    run = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--days", "3000")
    assert_one_line_error(run, 3, "cannot reach the ACME server")
    assert "gone.example.com" in run.stderr
    # renew has no --directory: the message points at where the URL it used is kept.
    assert "check directory in renewal.json and the network" in run.stderr and "--directory" not in run.stderr
    assert snapshot(tmp_path) == before


def test_failed_validation_carries_the_cas_problem_document(pebble, tmp_path):
    # A webroot nobody serves: Pebble's validator is refused and the order fails with its reason.
    webroot = tmp_path / "www"
    webroot.mkdir()
    run = issue(pebble, tmp_path / "out", "nobody.example.com", challenge=["--webroot", str(webroot)])
    assert_one_line_error(run, 3, "could not validate nobody.example.com")
    assert "urn:ietf:params:acme:error:connection" in run.stderr
    assert list(webroot.iterdir()) == []
    assert not (tmp_path / "out" / "nobody.example.com" / "cert.pem").exists()


def test_ca_refusal_carries_its_problem_document(pebble, tmp_path):
    run = acme(pebble, "issue", "contact.example.com", "--email", "no-at-sign", "--agree-tos", "--out-dir",
               str(tmp_path), "--http-port", str(pebble.http_port), "--bind", "127.0.0.1")
    assert_one_line_error(run, 3, "the CA refused the account")
    assert "urn:ietf:params:acme:error:invalidContact" in run.stderr
    assert not (tmp_path / "contact.example.com").exists() and not (tmp_path / "accounts").exists()


def test_an_account_the_ca_forgot_is_registered_again(pebble, root, tmp_path):
    first = issue(pebble, tmp_path, "forgot1.example.com")
    assert first.returncode == 0, first.stderr
    # A key the CA has never seen stands in for a CA that lost its accounts (Pebble after a restart).
    (account_dir,) = (tmp_path / "accounts").iterdir()
    fresh = openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256").stdout
    (account_dir / "account-key.pem").write_bytes(fresh)
    again = issue(pebble, tmp_path, "forgot2.example.com")
    assert again.returncode == 0, again.stderr
    assert again.json["account"] != first.json["account"]
    assert json.loads((account_dir / "account.json").read_text())["uri"] == again.json["account"]
    check_lineage(root, tmp_path / "forgot2.example.com", ["forgot2.example.com"])


def test_terms_not_agreed_or_directory_not_trusted_write_nothing(pebble, tmp_path):
    http = ["--http-port", str(pebble.http_port), "--bind", "127.0.0.1"]
    no_tos = acme(pebble, "issue", "tos.example.com", "--out-dir", str(tmp_path / "a"), *http)
    assert_one_line_error(no_tos, 2, "pass --agree-tos")
    untrusted = run_tlskit("acme", "issue", "tls.example.com", "--agree-tos", "--out-dir", str(tmp_path / "b"),
                           "--directory", pebble.directory, *http)
    assert_one_line_error(untrusted, 3, "--directory-ca-file")
    assert list(tmp_path.iterdir()) == []


def test_wildcard_without_dns_hook_is_refused_before_contacting_the_ca(tmp_path):
    run = run_tlskit("acme", "issue", "*.example.com", "--out-dir", str(tmp_path), "--directory",
                     f"https://127.0.0.1:{free_port()}/dir")
    assert_one_line_error(run, 2, "only dns-01")
    assert list(tmp_path.iterdir()) == []


def test_existing_certificate_is_not_replaced_without_force(pebble, tmp_path):
    first = issue(pebble, tmp_path, "twice.example.com")
    assert first.returncode == 0, first.stderr
    before = snapshot(tmp_path)
    again = issue(pebble, tmp_path, "twice.example.com")
    assert_one_line_error(again, 2, "already exists")
    assert snapshot(tmp_path) == before
    forced = issue(pebble, tmp_path, "twice.example.com", extra=["--force"])
    assert forced.returncode == 0, forced.stderr
    assert forced.json["serial"] != first.json["serial"]


def test_bad_input_is_one_line(tmp_path):
    assert_one_line_error(run_tlskit("acme", "issue", "bad_name!.example.com", "--out-dir", str(tmp_path)), 2,
                          "not a DNS name")
    assert_one_line_error(run_tlskit("acme", "issue", "1.2.3", "--out-dir", str(tmp_path)), 2, "nor an IP address")
    # Checked before the CA is contacted (the directory here is dead: contacting it would be exit 3).
    assert_one_line_error(run_tlskit("acme", "issue", "x.example.com", "--webroot", str(tmp_path / "nowww"),
                                     "--directory", f"https://127.0.0.1:{free_port()}/dir"), 2, "not a directory")
    assert_one_line_error(run_tlskit("acme", "issue", "x.example.com", "--webroot", str(tmp_path), "--http-port", "8080",
                                     "--out-dir", str(tmp_path)), 2, "choose one challenge")
    assert_one_line_error(run_tlskit("acme", "issue", "x.example.com", "--directory", "nowhere"), 2,
                          "unknown ACME directory")
    assert_one_line_error(run_tlskit("acme", "revoke", str(tmp_path / "missing.pem")), 2, "does not exist")
    dead = ["--directory", f"https://127.0.0.1:{free_port()}/dir", "--out-dir", str(tmp_path / "out")]
    assert_one_line_error(run_tlskit("acme", "issue", "x.example.com", "--key-type", "ed25519", *dead), 2, "Ed25519")
    made = run_tlskit("csr", "--cn", "c.example.com", "--out", "c.csr", "--key-out", "c.key", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert_one_line_error(run_tlskit("acme", "issue", "other.example.com", "--csr", str(tmp_path / "c.csr"), *dead), 2,
                          "differ from the CSR")
    assert not (tmp_path / "out").exists()


# --- reliability ---------------------------------------------------------------------------------


def test_issues_although_pebble_rejects_half_the_nonces(tmp_path_factory, tmp_path):
    noisy = pebble_fixture(tmp_path_factory, env={"PEBBLE_WFE_NONCEREJECT": "50"})
    try:
        root = noisy.root_file()
        for index in range(3):
            run = issue(noisy, tmp_path, f"nonce{index}.example.com")
            assert run.returncode == 0, run.stderr
            assert verify(root, tmp_path / f"nonce{index}.example.com").strip().endswith(": OK")
        # Pebble does not log its rejections, but each one costs the client a fresh nonce (HEAD
        # newNonce); without rejections each run fetches exactly one, as every reply carries the next.
        fresh_nonces = (noisy.workdir / "pebble.log").read_text().count("HEAD /nonce-plz")
        assert fresh_nonces > 3 + 5, fresh_nonces
    finally:
        noisy.stop()


def test_a_ca_that_rejects_every_nonce_is_one_error_not_a_loop(tmp_path_factory, tmp_path):
    broken = pebble_fixture(tmp_path_factory, env={"PEBBLE_WFE_NONCEREJECT": "100"})
    try:
        started = time.monotonic()
        run = issue(broken, tmp_path, "never.example.com")
        assert_one_line_error(run, 3, "badNonce")
        assert time.monotonic() - started < 30
        assert not (tmp_path / "never.example.com").exists()
    finally:
        broken.stop()


def test_external_account_binding(tmp_path_factory, tmp_path):
    import base64

    hmac = base64.urlsafe_b64encode(b"a secret of thirty-two bytes....").decode().rstrip("=")
    strict = pebble_fixture(tmp_path_factory, eab_keys={"kid-1": hmac})
    try:
        missing = issue(strict, tmp_path / "a", "eab.example.com")
        assert_one_line_error(missing, 2, "external account binding")
        run = issue(strict, tmp_path / "b", "eab.example.com", extra=["--eab-kid", "kid-1", "--eab-hmac-key", hmac])
        assert run.returncode == 0, run.stderr
        assert verify(strict.root_file(), tmp_path / "b" / "eab.example.com").strip().endswith(": OK")
    finally:
        strict.stop()


def test_sigkill_during_issue_leaves_no_truncated_file(pebble, root, tmp_path):
    """SIGKILL `tlskit acme issue --force` the moment its temp files appear, i.e. in the middle of
    writing: every file under its final name is always complete, and the next run heals the rest."""
    first = issue(pebble, tmp_path, "kill.example.com")
    assert first.returncode == 0, first.stderr
    lineage = tmp_path / "kill.example.com"
    command = ["acme", "issue", "kill.example.com", "--force", "--agree-tos",
               "--out-dir", str(tmp_path), "--directory", pebble.directory, "--directory-ca-file", str(pebble.ca_file),
               "--http-port", str(pebble.http_port), "--bind", "127.0.0.1"]
    caught = 0
    for _ in range(8):
        process = start_tlskit(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if any(name.endswith(".tmp") for name in os.listdir(lineage)):
                process.send_signal(signal.SIGKILL)
                caught += 1
                break
        process.wait(timeout=30)
        for name in ("cert.pem", "chain.pem", "fullchain.pem"):
            data = (lineage / name).read_bytes()
            assert data.startswith(b"-----BEGIN CERTIFICATE-----"), name
            assert data.rstrip().endswith(b"-----END CERTIFICATE-----"), name
        openssl("pkey", "-in", str(lineage / "privkey.pem"), "-noout")
        json.loads((lineage / "renewal.json").read_text())
        if caught >= 3:
            break
    assert caught, "never caught tlskit while it was writing"
    # A kill between two renames can pair a new key with the old certificate: renew sees it and heals.
    healed = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--days", "30", "--json")
    assert healed.returncode == 0, healed.stderr
    check_lineage(root, lineage, ["kill.example.com"])
    again = issue(pebble, tmp_path, "kill.example.com", extra=["--force"])
    assert again.returncode == 0, again.stderr
    assert not list(lineage.glob(".*.tmp"))
    check_lineage(root, lineage, ["kill.example.com"])


# --- the library API, as `tlskit serve --acme` uses it --------------------------------------------


def test_library_issue_with_in_process_http_tokens(pebble, root, tmp_path):
    """A server that owns the http-01 port serves HttpTokens itself; here a tiny one stands in."""
    import http.server
    import threading

    from tlskit.acme import HttpTokens, issue_certificate, renew_due

    tokens = HttpTokens()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = tokens.answer(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write((body or "").encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", pebble.http_port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        issued = issue_certificate(["lib.example.com"], tmp_path, pebble.directory, "lib@example.com", tokens,
                                   agree_tos=True, directory_ca_file=pebble.ca_file)
        assert issued.fullchain == tmp_path / "lib.example.com" / "fullchain.pem"
        check_lineage(root, issued.lineage, ["lib.example.com"])
        report = renew_due(tmp_path, days=3000, challenge=tokens)
        assert [o.status for o in report.outcomes] == ["renewed"] and not report.failed
    finally:
        server.shutdown()
        server.server_close()
    assert tokens.answers == {}


def test_retry_after_is_honoured_and_an_unreasonable_one_fails_at_once(pebble, root, tmp_path):
    from peers_pebble import PebbleProxy

    with PebbleProxy(pebble, throttle=("/order-plz", 1)) as proxy:
        run = run_tlskit("acme", "issue", "slow.example.com", "--agree-tos", "--out-dir", str(tmp_path / "a"),
                         "--directory", proxy.directory, "--directory-ca-file", str(pebble.ca_file),
                         "--http-port", str(pebble.http_port), "--bind", "127.0.0.1", "--json")
        assert run.returncode == 0, run.stderr
        throttled, retried = proxy.times("POST", "/order-plz")[:2]
        # A lower bound only: the client waited at least what the CA asked before asking again.
        assert retried - throttled >= 1.0
    check_lineage(root, tmp_path / "a" / "slow.example.com", ["slow.example.com"])

    with PebbleProxy(pebble, throttle=("/order-plz", 3600)) as proxy:
        run = run_tlskit("acme", "issue", "slower.example.com", "--agree-tos", "--out-dir", str(tmp_path / "b"),
                         "--directory", proxy.directory, "--directory-ca-file", str(pebble.ca_file),
                         "--http-port", str(pebble.http_port), "--bind", "127.0.0.1")
        assert_one_line_error(run, 3, "rateLimited")
        assert len(proxy.times("POST", "/order-plz")) == 1
    assert not (tmp_path / "b" / "slower.example.com").exists()
