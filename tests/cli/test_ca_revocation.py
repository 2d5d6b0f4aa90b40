"""`tlskit ca revoke` and `tlskit ca crl`: the record in the CA directory and CRLs that openssl accepts (a
running server that reads them: tests/integration/test_serve_mtls.py)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest
from cryptography import x509

from conftest import assert_one_line_error, openssl, run_tlskit
from tlskit_processes import start_tlskit


@pytest.fixture
def ca(tmp_path):
    assert run_tlskit("ca", "init", "--dir", "ca", "--cn", "Revoking CA", cwd=tmp_path).returncode == 0
    for name in ("alice", "bob"):
        assert run_tlskit("ca", "client", name, "--ca-dir", "ca", cwd=tmp_path).returncode == 0
    return tmp_path


def _crl(path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(path.read_bytes())


def test_a_revoked_certificate_is_in_the_next_crl_and_openssl_refuses_it(ca):
    revoke = run_tlskit("ca", "revoke", "alice.pem", "--ca-dir", "ca", "--reason", "keyCompromise", "--json", cwd=ca)
    assert revoke.returncode == 0, revoke.stderr
    assert revoke.json["reason"] == "keyCompromise" and revoke.json["already_revoked"] is False
    published = run_tlskit("ca", "crl", "--ca-dir", "ca", "--out", "ca.crl", "--days", "3", "--json", cwd=ca)
    assert published.returncode == 0, published.stderr
    assert published.json["number"] == 1 and published.json["revoked"] == 1
    openssl("crl", "-in", "ca.crl", "-verify", "-CAfile", "ca/ca.pem", "-noout", cwd=ca)
    text = openssl("crl", "-in", "ca.crl", "-noout", "-text", cwd=ca).stdout.decode()
    assert "Key Compromise" in text and "X509v3 CRL Number" in text
    crl = _crl(ca / "ca.crl")
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(days=3)
    alice = x509.load_pem_x509_certificate((ca / "alice.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(alice.serial_number) is not None
    (ca / "trust.pem").write_bytes((ca / "ca" / "ca.pem").read_bytes() + (ca / "ca.crl").read_bytes())
    refused = openssl("verify", "-crl_check", "-CAfile", "trust.pem", "alice.pem", cwd=ca, check=False)
    assert refused.returncode != 0 and b"certificate revoked" in refused.stdout + refused.stderr
    openssl("verify", "-crl_check", "-CAfile", "trust.pem", "bob.pem", cwd=ca)
    # tlskit's own verdict engine reads the CRL the same way.
    checked = run_tlskit("chain", "alice.pem", "--ca-file", "ca/ca.pem", "--purpose", "client", "--crl", "ca.crl", cwd=ca)
    assert checked.returncode == 1 and "revoked" in checked.stderr and "key_compromise" in checked.stderr, checked.stderr
    assert run_tlskit("chain", "bob.pem", "--ca-file", "ca/ca.pem", "--purpose", "client", "--crl", "ca.crl",
                      cwd=ca).returncode == 0
    # Each CRL gets the next number, and replaces the earlier one without --force.
    again = run_tlskit("ca", "crl", "--ca-dir", "ca", "--out", "ca.crl", "--json", cwd=ca)
    assert again.returncode == 0 and again.json["number"] == 2, again.stderr
    assert _crl(ca / "ca.crl").extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2


def test_an_empty_crl_is_valid_and_unspecified_carries_no_reason_code(ca):
    published = run_tlskit("ca", "crl", "--ca-dir", "ca", "--out", "empty.crl", cwd=ca)
    assert published.returncode == 0 and "CRL number 1" in published.stdout, published.stderr
    openssl("crl", "-in", "empty.crl", "-verify", "-CAfile", "ca/ca.pem", "-noout", cwd=ca)
    assert run_tlskit("ca", "revoke", "bob.pem", "--ca-dir", "ca", cwd=ca).returncode == 0
    assert run_tlskit("ca", "crl", "--ca-dir", "ca", "--out", "empty.crl", cwd=ca).returncode == 0
    (entry,) = list(_crl(ca / "empty.crl"))
    assert len(entry.extensions) == 0


def test_revoking_twice_changes_nothing_and_says_so(ca):
    first = run_tlskit("ca", "revoke", "alice.pem", "--ca-dir", "ca", "--reason", "superseded", "--json", cwd=ca).json
    second = run_tlskit("ca", "revoke", "alice.pem", "--ca-dir", "ca", "--reason", "key-compromise", cwd=ca)
    assert second.returncode == 0 and "already revoked" in second.stdout and "superseded" in second.stdout
    record = json.loads((ca / "ca" / "revoked.json").read_text())
    assert [entry["reason"] for entry in record["revoked"]] == ["superseded"]
    assert record["revoked"][0]["revoked_at"] == first["revoked_at"]


def test_revoke_refuses_what_this_ca_did_not_issue(ca):
    assert run_tlskit("ca", "init", "--dir", "other", "--cn", "Revoking CA", cwd=ca).returncode == 0
    assert run_tlskit("ca", "client", "mallory", "--ca-dir", "other", cwd=ca).returncode == 0
    # Same issuer name, another key: refused on the signature, not just the name.
    assert_one_line_error(run_tlskit("ca", "revoke", "mallory.pem", "--ca-dir", "ca", cwd=ca), 2,
                          "was not issued by this CA")
    assert_one_line_error(run_tlskit("ca", "revoke", "ca/ca.pem", "--ca-dir", "ca", cwd=ca), 2, "CA's own")
    assert_one_line_error(run_tlskit("ca", "revoke", "bob.pem", "--ca-dir", "ca", "--reason", "lost", cwd=ca), 2,
                          "unknown revocation reason")
    assert_one_line_error(run_tlskit("ca", "revoke", "bob.pem", "--ca-dir", "nope", cwd=ca), 2,
                          "not a tlskit CA directory")
    assert not (ca / "ca" / "revoked.json").exists()


def test_crl_errors(ca):
    (ca / "notes.txt").write_text("not a CRL")
    assert_one_line_error(run_tlskit("ca", "crl", "--ca-dir", "ca", "--out", "notes.txt", cwd=ca), 2, "already exists")
    assert (ca / "notes.txt").read_text() == "not a CRL"
    assert_one_line_error(run_tlskit("ca", "crl", "--ca-dir", "ca", "--out", "x.crl", "--days", "0", cwd=ca), 2,
                          "--days 0")
    (ca / "ca" / "revoked.json").write_text("{broken")
    assert_one_line_error(run_tlskit("ca", "crl", "--ca-dir", "ca", "--out", "x.crl", cwd=ca), 2, "damaged")


def test_concurrent_revocations_are_all_recorded(ca):
    for index in range(6):
        assert run_tlskit("ca", "client", f"user{index}", "--ca-dir", "ca", cwd=ca).returncode == 0
    procs = [start_tlskit(["ca", "revoke", f"user{index}.pem", "--ca-dir", "ca"], cwd=ca, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL) for index in range(6)]
    assert all(proc.wait(timeout=60) == 0 for proc in procs)
    record = json.loads((ca / "ca" / "revoked.json").read_text())
    assert len({entry["serial"] for entry in record["revoked"]}) == 6
