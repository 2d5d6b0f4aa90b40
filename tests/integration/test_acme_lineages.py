"""`tlskit acme` for short-lived certificates, preferred chains, IP addresses, account care, lineages
and served-certificate checks, against a real Pebble 2.4 + pebble-challtestsrv on loopback.

What Pebble 2.4 lacks is added by tests/peers_pebble.PebbleProxy in front of the real Pebble: its
directory has no ``meta.profiles`` (Pebble ignores a ``profile`` in newOrder) and no ``renewalInfo``
(ARI). Everything else is Pebble's own answer: alternate chains (PEBBLE_ALTERNATE_ROOTS), IP
identifiers (RFC 8738) validated over http-01 and tls-alpn-01, key rollover, contact updates,
deactivation, short lifetimes (certificateValidityPeriod).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, free_port, openssl, require_binary, run_tlskit, wait_for_port
from peers_pebble import Pebble, PebbleProxy, pebble_fixture
from test_acme import acme, check_lineage, issue, snapshot, verify

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    instance = pebble_fixture(tmp_path_factory, env={"PEBBLE_ALTERNATE_ROOTS": "2"})
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def root(pebble):
    return pebble.root_file()


def http01(pebble: Pebble) -> list[str]:
    return ["--http-port", str(pebble.http_port), "--bind", "127.0.0.1"]


def via(proxy: PebbleProxy, pebble: Pebble, *args: str, **kwargs):
    """`tlskit acme issue ...` through the proxy (its directory, Pebble's listener CA)."""
    return run_tlskit("acme", "issue", *args, "--agree-tos", "--directory", proxy.directory, "--directory-ca-file",
                      str(pebble.ca_file), *http01(pebble), "--json", **kwargs)


def subject_and_sans(cert: Path) -> str:
    return openssl("x509", "-in", str(cert), "-noout", "-subject", "-ext", "subjectAltName").stdout.decode()


# --- IP address certificates (RFC 8738) ----------------------------------------------------------


def test_ip_address_certificates_over_http01_and_tls_alpn01(pebble, root, tmp_path):
    run = issue(pebble, tmp_path, "127.0.0.1")
    assert run.returncode == 0, run.stderr
    lineage = tmp_path / "127.0.0.1"
    assert run.json["dir"] == str(lineage) and run.json["names"] == ["127.0.0.1"]
    assert verify(root, lineage).strip().endswith(": OK")
    text = subject_and_sans(lineage / "cert.pem")
    assert "IP Address:127.0.0.1" in text and "DNS:" not in text
    # An IPv6 address over tls-alpn-01 (the validator's SNI is the ip6.arpa name); the directory is
    # named after the address with ':' spelled '_'.
    alpn = issue(pebble, tmp_path, "::1", challenge=["--tls-alpn-port", str(pebble.tls_port), "--bind", "::1"])
    assert alpn.returncode == 0, alpn.stderr
    assert alpn.json["dir"] == str(tmp_path / "__1") and alpn.json["challenge"] == "tls-alpn-01"
    assert "IP Address:0:0:0:0:0:0:0:1" in subject_and_sans(tmp_path / "__1" / "cert.pem")
    # renew sends the same identifiers again.
    again = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--name", "127.0.0.1", "--force-renew", "--json")
    assert again.returncode == 0, again.stderr
    assert [c["status"] for c in again.json["certificates"]] == ["renewed"]


def test_an_ip_address_is_never_offered_to_dns01(tmp_path):
    run = run_tlskit("acme", "issue", "192.0.2.10", "--dns-hook", "true", "--out-dir", str(tmp_path),
                     "--directory", f"https://127.0.0.1:{free_port()}/dir")
    assert_one_line_error(run, 2, "dns-01 cannot prove")
    assert list(tmp_path.iterdir()) == []


# --- preferred chain -----------------------------------------------------------------------------


def _root_cn(pebble: Pebble, index: int) -> str:
    text = openssl("x509", "-noout", "-subject", "-nameopt", "multiline", input=pebble.get(f"/roots/{index}")).stdout
    return text.decode().split("commonName", 1)[1].split("=", 1)[1].strip()


def test_preferred_chain_picks_the_alternate_by_its_top_issuer_and_is_kept_for_renewal(pebble, tmp_path):
    roots = [_root_cn(pebble, i) for i in range(3)]
    assert len(set(roots)) == 3
    default = issue(pebble, tmp_path, "chain0.example.com")
    assert default.returncode == 0, default.stderr
    assert default.json["chain_issuer"] == roots[0] and default.json["preferred_chain_found"] is None

    run = issue(pebble, tmp_path, "chain2.example.com", extra=["--preferred-chain", roots[2]])
    assert run.returncode == 0, run.stderr
    lineage = tmp_path / "chain2.example.com"
    assert run.json["chain_issuer"] == roots[2] and run.json["preferred_chain_found"] is True
    root2 = tmp_path / "root2.pem"
    root2.write_bytes(pebble.get("/roots/2"))
    assert verify(root2, lineage).strip().endswith(": OK")
    default_root = openssl("verify", "-CAfile", str(pebble.root_file()), "-untrusted", str(lineage / "chain.pem"),
                           str(lineage / "cert.pem"), check=False)
    assert default_root.returncode != 0                                       # not the default chain
    assert json.loads((lineage / "renewal.json").read_text())["preferred_chain"] == roots[2]

    renewed = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--name", "chain2.example.com",
                         "--force-renew", "--json")
    assert renewed.returncode == 0, renewed.stderr
    assert verify(root2, lineage).strip().endswith(": OK")

    # A name the CA does not offer keeps its default chain, and says so.
    missing = issue(pebble, tmp_path, "chainx.example.com", extra=["--preferred-chain", "No Such Root"])
    assert missing.returncode == 0, missing.stderr
    assert missing.json["preferred_chain_found"] is False and missing.json["chain_issuer"] == roots[0]


# --- profiles ------------------------------------------------------------------------------------


def test_profile_is_refused_when_the_directory_offers_none(pebble, tmp_path):
    run = issue(pebble, tmp_path, "prof.example.com", extra=["--profile", "shortlived"])
    assert_one_line_error(run, 2, "offers no certificate profiles")
    assert "meta.profiles" in run.stderr
    assert not (tmp_path / "prof.example.com").exists()


def test_profile_is_sent_in_new_order_and_kept_for_renewal(pebble, tmp_path):
    with PebbleProxy(pebble, profiles={"classic": "90 days", "shortlived": "6 days"}) as proxy:
        unknown = via(proxy, pebble, "nope.example.com", "--out-dir", str(tmp_path), "--profile", "tlsclient")
        assert_one_line_error(unknown, 2, "no profile 'tlsclient'")
        assert "classic, shortlived" in unknown.stderr
        assert proxy.payloads("/order-plz") == []

        run = via(proxy, pebble, "prof.example.com", "--out-dir", str(tmp_path), "--profile", "shortlived")
        assert run.returncode == 0, run.stderr
        assert run.json["profile"] == "shortlived"
        assert proxy.payloads("/order-plz")[-1]["profile"] == "shortlived"
        assert proxy.payloads("/order-plz")[-1]["identifiers"] == [{"type": "dns", "value": "prof.example.com"}]
        settings = json.loads((tmp_path / "prof.example.com" / "renewal.json").read_text())
        assert settings["profile"] == "shortlived"
        # Pebble refuses a nonce now and then (5%), and the client then sends the same order again.
        issued = len(proxy.payloads("/order-plz"))
        renewed = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--force-renew", "--json")
        assert renewed.returncode == 0, renewed.stderr
        orders = [p.get("profile") for p in proxy.payloads("/order-plz")]
        assert orders[:issued] == ["shortlived"] * issued
        assert orders[issued:] and set(orders[issued:]) == {"shortlived"}, orders


# --- renewal: the lifetime, ARI, fixed days ------------------------------------------------------


def test_short_lived_certificate_renews_when_a_third_of_its_lifetime_is_left(tmp_path_factory, tmp_path):
    short = pebble_fixture(tmp_path_factory, validity=12)
    try:
        first = issue(short, tmp_path, "short.example.com")
        assert first.returncode == 0, first.stderr
        not_after = dt.datetime.fromisoformat(first.json["not_after"])
        lifetime = not_after - dt.datetime.fromisoformat(first.json["not_before"])
        assert lifetime <= dt.timedelta(seconds=12)
        early = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--json")
        assert early.returncode == 0, early.stderr
        (doc,) = early.json["certificates"]
        assert (doc["status"], doc["rule"]) == ("not-due", "lifetime")
        renew_at = dt.datetime.fromisoformat(doc["renew_at"])
        assert dt.timedelta(0) <= not_after - lifetime / 3 - renew_at < dt.timedelta(seconds=1)
        assert "a third of its" in doc["reason"]
        wait = (not_after - lifetime / 3 - dt.datetime.now(dt.timezone.utc)).total_seconds()
        # Waiting out the clock is the behaviour under test: the certificate becomes due because time
        # passes its renewal point, and nothing the test could poll makes it due sooner.
        time.sleep(max(wait, 0) + 0.5)
        # A fixed window (--days 0: only once expired) overrides the lifetime rule...
        fixed = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--days", "0", "--json")
        assert [(c["status"], c["rule"]) for c in fixed.json["certificates"]] == [("not-due", "days")]
        # ...and without it the certificate is due now.
        due = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--json")
        assert due.returncode == 0, due.stderr
        assert [c["status"] for c in due.json["certificates"]] == ["renewed"]
        assert due.json["certificates"][0]["serial"] != first.json["serial"]
    finally:
        short.stop()


def _ari_id(cert_path: Path) -> str:
    """RFC 9773's certificate ID, computed here independently of tlskit."""
    import base64

    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    serial = cert.serial_number
    der = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
    enc = lambda data: base64.urlsafe_b64encode(data).decode().rstrip("=")  # noqa: E731
    return f"{enc(aki)}.{enc(der)}"


def test_ari_window_overrides_the_lifetime_and_the_renewal_names_what_it_replaces(pebble, tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    window = {"start": now + dt.timedelta(days=10), "end": now + dt.timedelta(days=11)}

    def renewal_info(cert_id: str) -> dict:
        return {"suggestedWindow": {k: v.strftime("%Y-%m-%dT%H:%M:%SZ") for k, v in window.items()}}

    with PebbleProxy(pebble, renewal_info=renewal_info, retry_after_ari=3600) as proxy:
        run = via(proxy, pebble, "ari.example.com", "--out-dir", str(tmp_path))
        assert run.returncode == 0, run.stderr
        cert_id = _ari_id(tmp_path / "ari.example.com" / "cert.pem")
        listed = run_tlskit("acme", "certificates", "--out-dir", str(tmp_path), "--json")
        assert listed.returncode == 0, listed.stderr
        (doc,) = listed.json["certificates"]
        assert doc["rule"] == "ari" and doc["ari"]["start"].startswith(window["start"].strftime("%Y-%m-%dT%H:%M"))
        renew_at = dt.datetime.fromisoformat(doc["renew_at"])
        assert window["start"] - dt.timedelta(seconds=1) <= renew_at <= window["end"]
        assert proxy.renewal_info_asked == [cert_id]
        # Without ARI the five-year Pebble certificate renews by its lifetime, years away.
        offline = run_tlskit("acme", "certificates", "--out-dir", str(tmp_path), "--no-ari", "--json")
        assert offline.json["certificates"][0]["rule"] == "lifetime"
        assert offline.json["certificates"][0]["ari_note"] == "not asked"
        quiet = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--json")
        assert [c["status"] for c in quiet.json["certificates"]] == ["not-due"]

        # The CA moves the window into the past (say, before a mass revocation): renew now, and say
        # which certificate this one replaces (RFC 9773 section 5).
        window.update(start=now - dt.timedelta(hours=2), end=now - dt.timedelta(hours=1))
        due = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--json")
        assert due.returncode == 0, due.stderr
        (outcome,) = due.json["certificates"]
        assert outcome["status"] == "renewed" and outcome["rule"] == "ari" and "ARI" in outcome["reason"]
        assert proxy.payloads("/order-plz")[-1]["replaces"] == cert_id
        assert "replaces" not in proxy.payloads("/order-plz")[0]


def test_plain_pebble_offers_no_ari_and_certificates_says_so(pebble, tmp_path):
    run = issue(pebble, tmp_path, "noari.example.com")
    assert run.returncode == 0, run.stderr
    listed = run_tlskit("acme", "certificates", "--out-dir", str(tmp_path), "--json")
    (doc,) = listed.json["certificates"]
    assert doc["ari"] is None and doc["ari_note"] == "the CA offers no renewalInfo"
    assert doc["names"] == ["noari.example.com"] and doc["key_type"] == "ec:p256" and doc["challenge"] == "http-01"
    assert doc["serial"] == run.json["serial"] and doc["not_after"] == run.json["not_after"]
    text = run_tlskit("acme", "certificates", "--out-dir", str(tmp_path))
    assert text.returncode == 0, text.stderr
    assert "noari.example.com" in text.stdout and "a third of its 1826-day lifetime left" in text.stdout


# --- lineages: certificates, delete, dry run -----------------------------------------------------


def test_delete_removes_one_lineage_and_keeps_the_account(pebble, tmp_path):
    for name in ("keep.example.com", "gone.example.com"):
        run = issue(pebble, tmp_path, name)
        assert run.returncode == 0, run.stderr
    refused = run_tlskit("acme", "delete", "gone.example.com", "--out-dir", str(tmp_path))
    assert_one_line_error(refused, 2, "--yes")
    assert (tmp_path / "gone.example.com" / "privkey.pem").exists()
    unknown = run_tlskit("acme", "delete", "nothere.example.com", "--out-dir", str(tmp_path), "--yes")
    assert_one_line_error(unknown, 2, "keep.example.com")
    done = run_tlskit("acme", "delete", "GONE.example.com", "--out-dir", str(tmp_path), "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert done.json["names"] == ["gone.example.com"] and len(done.json["removed"]) == 5
    assert not (tmp_path / "gone.example.com").exists()
    listed = run_tlskit("acme", "certificates", "--out-dir", str(tmp_path), "--no-ari", "--json")
    assert [c["name"] for c in listed.json["certificates"]] == ["keep.example.com"]
    assert len(list((tmp_path / "accounts").iterdir())) == 1
    again = issue(pebble, tmp_path, "gone.example.com")   # the account is reused
    assert again.returncode == 0 and again.json["account"] == listed_account(tmp_path)


def listed_account(out: Path) -> str:
    (account,) = (out / "accounts").iterdir()
    return json.loads((account / "account.json").read_text())["uri"]


def test_dry_run_orders_for_real_and_writes_nothing(pebble, tmp_path):
    run = issue(pebble, tmp_path, "dry.example.com")
    assert run.returncode == 0, run.stderr
    before = snapshot(tmp_path)
    hook_out = tmp_path.parent / f"{tmp_path.name}-hook.txt"
    dry = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--dry-run", "--deploy-hook", f"touch {hook_out}",
                     "--json")
    assert dry.returncode == 0, dry.stderr
    assert dry.json["dry_run"] is True
    (outcome,) = dry.json["certificates"]
    assert outcome["status"] == "dry-run" and outcome["serial"] != run.json["serial"]
    assert pebble.cert_status(outcome["serial"]) == "Valid"       # Pebble really issued it
    assert snapshot(tmp_path) == before and not hook_out.exists()
    text = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--dry-run")
    assert text.returncode == 0 and "Dry run OK dry.example.com" in text.stdout and "nothing saved" in text.stdout


# --- account care --------------------------------------------------------------------------------


def account(pebble: Pebble, action: str, out: Path, *extra: str):
    return run_tlskit("acme", "account", action, "--out-dir", str(out), "--directory", pebble.directory,
                      "--directory-ca-file", str(pebble.ca_file), *extra)


def test_account_show_and_email_updates(pebble, tmp_path):
    first = issue(pebble, tmp_path, "acct.example.com")
    assert first.returncode == 0, first.stderr
    shown = account(pebble, "show", tmp_path, "--json")
    assert shown.returncode == 0, shown.stderr
    assert shown.json["uri"] == first.json["account"] and shown.json["status"] == "valid"
    assert shown.json["contact"] == ["mailto:test@example.com"] and shown.json["key_type"] == "ec:p256"
    # The only account under the directory needs no --directory (its CA file was kept too).
    alone = run_tlskit("acme", "account", "show", "--out-dir", str(tmp_path), "--json")
    assert alone.returncode == 0 and alone.json["uri"] == first.json["account"], alone.stderr

    updated = account(pebble, "update", tmp_path, "--email", "ops@example.com", "--json")
    assert updated.returncode == 0, updated.stderr
    assert account(pebble, "show", tmp_path, "--json").json["contact"] == ["mailto:ops@example.com"]
    # `issue --email` with another address updates the known account instead of ignoring it.
    other = acme(pebble, "issue", "acct2.example.com", "--email", "new@example.com", "--agree-tos", "--out-dir",
                 str(tmp_path), *http01(pebble), "--json")
    assert other.returncode == 0 and other.json["account"] == first.json["account"], other.stderr
    assert account(pebble, "show", tmp_path, "--json").json["contact"] == ["mailto:new@example.com"]
    bad = account(pebble, "update", tmp_path, "--email", "not-an-address")
    assert_one_line_error(bad, 3, "invalidContact")
    assert_one_line_error(account(pebble, "update", tmp_path), 2, "--email")
    assert_one_line_error(run_tlskit("acme", "account", "show", "--out-dir", str(tmp_path / "none")), 2,
                          "no ACME account")


def test_key_rollover_keeps_the_account_and_renewal_uses_the_new_key(pebble, root, tmp_path):
    first = issue(pebble, tmp_path, "roll.example.com")
    assert first.returncode == 0, first.stderr
    (account_dir,) = (tmp_path / "accounts").iterdir()
    old_key = (account_dir / "account-key.pem").read_bytes()
    rolled = account(pebble, "rollover", tmp_path, "--json")
    assert rolled.returncode == 0, rolled.stderr
    assert rolled.json["uri"] == first.json["account"] and rolled.json["previous_thumbprint"] != rolled.json["thumbprint"]
    new_key = (account_dir / "account-key.pem").read_bytes()
    assert new_key != old_key and not (account_dir / "account-key.next.pem").exists()
    assert (account_dir / "account-key.pem").stat().st_mode & 0o777 == 0o600
    renewed = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--force-renew", "--json")
    assert renewed.returncode == 0, renewed.stderr
    check_lineage(root, tmp_path / "roll.example.com", ["roll.example.com"])
    again = issue(pebble, tmp_path, "roll2.example.com")
    assert again.returncode == 0 and again.json["account"] == first.json["account"], again.stderr
    # The CA no longer knows the old key.
    (account_dir / "account-key.pem").write_bytes(old_key)
    stale = account(pebble, "show", tmp_path)
    assert_one_line_error(stale, 3, "knows no account")
    # A rollover interrupted after the CA's answer (new key only in account-key.next.pem) is finished
    # by the next command; a next key the CA never saw is dropped.
    (account_dir / "account-key.next.pem").write_bytes(new_key)
    healed = account(pebble, "show", tmp_path, "--json")
    assert healed.returncode == 0 and healed.json["uri"] == first.json["account"], healed.stderr
    assert (account_dir / "account-key.pem").read_bytes() == new_key
    assert not (account_dir / "account-key.next.pem").exists()
    (account_dir / "account-key.next.pem").write_bytes(old_key)
    kept = account(pebble, "show", tmp_path, "--json")
    assert kept.returncode == 0 and (account_dir / "account-key.pem").read_bytes() == new_key, kept.stderr
    assert not (account_dir / "account-key.next.pem").exists()


def test_deactivate_needs_confirmation_then_the_next_issue_registers_anew(pebble, tmp_path):
    first = issue(pebble, tmp_path, "deact.example.com")
    assert first.returncode == 0, first.stderr
    refused = account(pebble, "deactivate", tmp_path)
    assert_one_line_error(refused, 2, "--yes")
    assert account(pebble, "show", tmp_path, "--json").json["status"] == "valid"
    done = account(pebble, "deactivate", tmp_path, "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert done.json["status"] == "deactivated"
    retired = Path(done.json["retired_to"])
    assert retired.parent == tmp_path / "accounts" / "retired" and (retired / "account-key.pem").exists()
    assert_one_line_error(account(pebble, "show", tmp_path), 2, "no account")
    # Certificates stay; the next order registers a new account.
    assert (tmp_path / "deact.example.com" / "cert.pem").exists()
    again = issue(pebble, tmp_path, "deact2.example.com")
    assert again.returncode == 0, again.stderr
    assert again.json["account"] != first.json["account"]


# --- is the renewed certificate served? ----------------------------------------------------------


def test_verify_served_passes_when_the_server_reloads_and_fails_when_it_does_not(pebble, tmp_path):
    from peers_upstream import start_serve

    run = issue(pebble, tmp_path / "certs", "served.example.com")
    assert run.returncode == 0, run.stderr
    lineage = tmp_path / "certs" / "served.example.com"
    with start_serve(tmp_path / "state", "--cert", str(lineage / "fullchain.pem"), "--key",
                     str(lineage / "privkey.pem"), "--reload-interval", "0.2") as served:
        target = f"127.0.0.1:{served.port}"
        ok = run_tlskit("acme", "renew", "--out-dir", str(tmp_path / "certs"), "--force-renew",
                        "--verify-served", target, "--json")
        assert ok.returncode == 0, ok.stderr
        (outcome,) = ok.json["certificates"]
        assert outcome["status"] == "renewed" and outcome["served_error"] is None

    # A server that never reloads: the renewal lands on disk, the check fails loudly (exit 1).
    port = free_port()
    server = subprocess.Popen([require_binary("openssl"), "s_server", "-accept", str(port), "-cert",
                               str(lineage / "cert.pem"), "-key", str(lineage / "privkey.pem"), "-cert_chain",
                               str(lineage / "chain.pem"), "-www", "-quiet"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, server, timeout=10)
        old_serial = openssl("x509", "-in", str(lineage / "cert.pem"), "-noout", "-serial").stdout.decode()
        stale = run_tlskit("acme", "renew", "--out-dir", str(tmp_path / "certs"), "--force-renew",
                           "--verify-served", f"127.0.0.1:{port}")
        assert_one_line_error(stale, 1, "still serves serial")
        assert old_serial.split("=")[1].strip().lower().lstrip("0") in stale.stderr.lower()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_verify_served_is_kept_per_lineage(pebble, tmp_path):
    port = free_port()
    run = issue(pebble, tmp_path, "kept.example.com", extra=["--verify-served", f"127.0.0.1:{port}"])
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "kept.example.com" / "renewal.json").read_text())["verify_served"] == \
        f"127.0.0.1:{port}"
    # Nothing listens there: the renewal is saved, and the check says it could not reach the server.
    renewed = run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--force-renew", "--json")
    assert renewed.returncode == 1
    (outcome,) = renewed.json["certificates"]
    assert outcome["status"] == "renewed" and "could not be checked" in outcome["served_error"]
    assert_one_line_error(run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--verify-served", "[::1"), 2)


def test_a_taken_challenge_port_is_a_bind_error_exit_3(pebble, tmp_path):
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        run = acme(pebble, "issue", "bind.example.com", "--agree-tos", "--out-dir", str(tmp_path),
                   "--http-port", str(port), "--bind", "127.0.0.1")
    assert_one_line_error(run, 3, f"cannot listen on 127.0.0.1:{port} for http-01")
    assert "--" not in run.stderr.split("error: ", 1)[1]     # the library names no flag
    assert not (tmp_path / "bind.example.com" / "cert.pem").exists()


def test_new_commands_report_bad_input_in_one_line(tmp_path):
    assert_one_line_error(run_tlskit("acme", "certificates", "--out-dir", str(tmp_path / "missing")), 2,
                          "not a directory")
    assert_one_line_error(run_tlskit("acme", "renew", "--out-dir", str(tmp_path), "--days", "-1"), 2, "negative")
    assert_one_line_error(run_tlskit("acme", "delete", "x.example.com", "--out-dir", str(tmp_path), "--yes"), 2,
                          "no certificate named")
    assert_one_line_error(run_tlskit("acme", "account", "rollover", "--out-dir", str(tmp_path)), 2, "no ACME account")
    empty = run_tlskit("acme", "certificates", "--out-dir", str(tmp_path), "--json")
    assert empty.returncode == 0 and empty.json == {"out_dir": str(tmp_path), "certificates": []}
