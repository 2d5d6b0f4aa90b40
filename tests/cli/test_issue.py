"""`tlskit selfsign` and `tlskit ca`: certificates checked by the openssl binary for every key type."""

from __future__ import annotations

import os
import stat

import pytest

from conftest import assert_one_line_error, openssl, run_tlskit
from test_csr import KEY_TYPES, snapshot


def x509_text(path) -> str:
    return openssl("x509", "-in", str(path), "-noout", "-text").stdout.decode()


def checkhost(path, host) -> bool:
    out = openssl("x509", "-in", str(path), "-noout", "-checkhost", host).stdout.decode()
    return "does match" in out


def checkip(path, ip) -> bool:
    out = openssl("x509", "-in", str(path), "-noout", "-checkip", ip).stdout.decode()
    return "does match" in out


def csr_signature_holds(path, der: bool = False) -> bool:
    """openssl's verdict on a CSR's self-signature. `openssl req -verify` exits 0 even when the
    signature is wrong (OpenSSL 3.0), so the verdict is read from its message."""
    run = openssl("req", *(["-inform", "DER"] if der else []), "-in", str(path), "-verify", "-noout", check=False)
    text = (run.stdout + run.stderr).decode(errors="replace")
    return run.returncode == 0 and "verify OK" in text and "failure" not in text


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_selfsign_every_key_type(tmp_path, key_type):
    run = run_tlskit("selfsign", "--key-type", key_type, "--cn", "localhost", "--san", "127.0.0.1",
                     "--days", "30", "--out", "s.pem", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    cert = tmp_path / "s.pem"
    assert checkhost(cert, "localhost") and checkip(cert, "127.0.0.1")
    assert not checkhost(cert, "example.com")
    verify = openssl("verify", "-CAfile", str(cert), "-purpose", "sslserver", str(cert), check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = x509_text(cert)
    for expected in ("TLS Web Server Authentication", "Subject Key Identifier", "Authority Key Identifier",
                     "CA:FALSE"):
        assert expected in text, expected
    assert stat.S_IMODE(os.stat(tmp_path / "s.key").st_mode) == 0o600
    assert run.json["sans"] == ["DNS:localhost", "IP:127.0.0.1"]
    assert openssl("x509", "-in", str(cert), "-noout", "-checkend", str(29 * 86400)).returncode == 0
    assert openssl("x509", "-in", str(cert), "-noout", "-checkend", str(31 * 86400), check=False).returncode == 1


def test_selfsign_copies_cn_into_san(tmp_path):
    assert run_tlskit("selfsign", "--cn", "solo.example.com", "--out", "c.pem", cwd=tmp_path).returncode == 0
    assert "DNS:solo.example.com" in x509_text(tmp_path / "c.pem")


def test_selfsign_from_csr_keeps_its_sans(tmp_path):
    assert run_tlskit("csr", "--cn", "a.example.com", "--san", "b.example.com", "--out", "r.csr", cwd=tmp_path).returncode == 0
    run = run_tlskit("selfsign", "--csr", "r.csr", "--key", "r.key", "--out", "r.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert checkhost(tmp_path / "r.pem", "b.example.com")
    other = run_tlskit("selfsign", "--key-type", "ec:p256", "--cn", "x", "--out", "other.pem", cwd=tmp_path)
    assert other.returncode == 0
    mismatch = run_tlskit("selfsign", "--csr", "r.csr", "--key", "other.key", "--out", "m.pem", cwd=tmp_path)
    assert_one_line_error(mismatch, 2, "does not match")
    assert not (tmp_path / "m.pem").exists()


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_local_ca_signs_csr_keeping_sans(tmp_path, key_type):
    init = run_tlskit("ca", "init", "--dir", "ca", "--cn", "Test Root", "--org", "tlskit tests", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "ca" / "ca.key").st_mode) == 0o600
    assert "CA:TRUE" in x509_text(tmp_path / "ca" / "ca.pem")
    csr = run_tlskit("csr", "--key-type", key_type, "--cn", "www.example.com", "--san", "api.example.com",
                     "--san", "192.0.2.10", "--out", "w.csr", cwd=tmp_path)
    assert csr.returncode == 0, csr.stderr
    sign = run_tlskit("ca", "sign", "w.csr", "--ca-dir", "ca", "--days", "90", "--out", "w.pem", "--json", cwd=tmp_path)
    assert sign.returncode == 0, sign.stderr
    cert = tmp_path / "w.pem"
    verify = openssl("verify", "-CAfile", str(tmp_path / "ca" / "ca.pem"), "-purpose", "sslserver", str(cert), check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert checkhost(cert, "www.example.com") and checkhost(cert, "api.example.com") and checkip(cert, "192.0.2.10")
    text = x509_text(cert)
    for expected in ("CA:FALSE", "TLS Web Server Authentication", "TLS Web Client Authentication",
                     "Digital Signature", "Subject Key Identifier", "Authority Key Identifier"):
        assert expected in text, expected
    assert sign.json["issuer"] == "/O=tlskit tests/CN=Test Root"
    assert sign.json["warnings"] == []


def test_intermediate_ca_and_fullchain(tmp_path):
    assert run_tlskit("ca", "init", "--dir", "root", "--cn", "Root", "--key-type", "rsa:2048", cwd=tmp_path).returncode == 0
    inter = run_tlskit("ca", "init", "--dir", "int", "--cn", "Intermediate", "--parent", "root", "--json", cwd=tmp_path)
    assert inter.returncode == 0, inter.stderr
    assert inter.json["intermediate"] is True
    assert run_tlskit("csr", "--cn", "leaf.example.com", "--out", "leaf.csr", cwd=tmp_path).returncode == 0
    sign = run_tlskit("ca", "sign", "leaf.csr", "--ca-dir", "int", "--fullchain", "--out", "full.pem", cwd=tmp_path)
    assert sign.returncode == 0, sign.stderr
    root = str(tmp_path / "root" / "ca.pem")
    full = str(tmp_path / "full.pem")
    assert openssl("verify", "-CAfile", root, "-untrusted", full, full, check=False).returncode == 0
    # Without the intermediate the leaf does not verify: the fullchain really carries it.
    alone = run_tlskit("ca", "sign", "leaf.csr", "--ca-dir", "int", "--out", "alone.pem", cwd=tmp_path)
    assert alone.returncode == 0
    assert openssl("verify", "-CAfile", root, str(tmp_path / "alone.pem"), check=False).returncode != 0


def test_long_validity_warns_but_signs(tmp_path):
    assert run_tlskit("ca", "init", "--dir", "ca", "--cn", "Root", cwd=tmp_path).returncode == 0
    assert run_tlskit("csr", "--cn", "long.example.com", "--out", "l.csr", cwd=tmp_path).returncode == 0
    run = run_tlskit("ca", "sign", "l.csr", "--ca-dir", "ca", "--days", "825", "--out", "l.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "warning:" in run.stderr and "398" in run.stderr
    assert (tmp_path / "l.pem").exists()


@pytest.mark.parametrize("key_type", ["rsa:2048", "ec:p256"])
def test_tampered_csr_is_refused(tmp_path, key_type):
    """The classic forgery: same key and signature, another name. The signature no longer covers it."""
    assert run_tlskit("ca", "init", "--dir", "ca", "--cn", "Root", cwd=tmp_path).returncode == 0
    assert run_tlskit("csr", "--key-type", key_type, "--cn", "good.example.com", "--out", "t.csr", cwd=tmp_path).returncode == 0
    der = openssl("req", "-in", str(tmp_path / "t.csr"), "-outform", "DER").stdout
    tampered = der.replace(b"good.example.com", b"evil.example.com")
    assert tampered != der
    (tmp_path / "t.der").write_bytes(tampered)
    assert not csr_signature_holds(tmp_path / "t.der", der=True)
    run = run_tlskit("ca", "sign", "t.der", "--ca-dir", "ca", "--out", "t.pem", cwd=tmp_path)
    assert_one_line_error(run, 1, "invalid signature")
    assert not (tmp_path / "t.pem").exists()


def test_ca_errors(tmp_path):
    assert_one_line_error(run_tlskit("ca", "sign", "x.csr", "--ca-dir", "nope", cwd=tmp_path), 2, "does not exist")
    (tmp_path / "x.csr").write_text("not a csr")
    assert_one_line_error(run_tlskit("ca", "sign", "x.csr", "--ca-dir", "nope", cwd=tmp_path), 2)
    assert run_tlskit("ca", "init", "--dir", "ca", "--cn", "Root", cwd=tmp_path).returncode == 0
    before = snapshot(tmp_path / "ca")
    again = run_tlskit("ca", "init", "--dir", "ca", "--cn", "Other", cwd=tmp_path)
    assert_one_line_error(again, 2, "--force")
    assert snapshot(tmp_path / "ca") == before
    assert_one_line_error(run_tlskit("ca", "init", "--dir", "x", "--cn", "Root", "--country", "India", cwd=tmp_path), 2,
                          "two-letter")


# --- the library workflows the commands call -------------------------------------------------------


def test_chain_to_send_is_the_ca_and_its_issuers_without_the_root(tmp_path):
    from tlskit.issue import LocalCA

    root = LocalCA.create(tmp_path / "root", {"CN": "Root"})
    first = LocalCA.create(tmp_path / "int", {"CN": "Intermediate"}, parent=root)
    second = LocalCA.create(tmp_path / "int2", {"CN": "Second"}, parent=LocalCA.load(tmp_path / "int"))
    assert root.chain_to_send == []
    assert first.chain_to_send == [first.certificate]
    assert LocalCA.load(tmp_path / "int2").chain_to_send == [second.certificate, first.certificate]


def test_sign_csr_file_writes_a_fullchain_openssl_verifies(tmp_path):
    from tlskit.csr import write_csr
    from tlskit.issue import LocalCA, sign_csr_file
    from tlskit.keys import KeySource

    root = LocalCA.create(tmp_path / "root", {"CN": "Root"})
    LocalCA.create(tmp_path / "int", {"CN": "Intermediate"}, parent=root)
    LocalCA.create(tmp_path / "int2", {"CN": "Second"}, parent=LocalCA.load(tmp_path / "int"))
    request = write_csr({"CN": "leaf.example.com"}, [], KeySource(), out=tmp_path / "leaf.csr")
    written = sign_csr_file(tmp_path / "int2", request.path, fullchain=True)
    assert written.path == tmp_path / "leaf.pem" and len(written.chain) == 2 and written.key_path is None
    full = str(written.path)
    assert "leaf.example.com" in openssl("x509", "-in", full, "-noout", "-subject").stdout.decode()
    assert openssl("verify", "-CAfile", str(tmp_path / "root" / "ca.pem"), "-untrusted", full, full).returncode == 0
    alone = sign_csr_file(tmp_path / "int2", request.path, out=tmp_path / "alone.pem")
    assert alone.chain == [] and (tmp_path / "alone.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 1
