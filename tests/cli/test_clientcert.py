"""Client certificates from the local CA: `tlskit ca client` (one step, PKCS#12) and `ca sign --client`,
checked with openssl as a server would check them."""

from __future__ import annotations

import stat

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import assert_one_line_error, openssl, run_tlskit


def _init(tmp_path, *extra: str, name: str = "ca") -> None:
    run = run_tlskit("ca", "init", "--dir", name, "--cn", f"{name} CA", *extra, cwd=tmp_path)
    assert run.returncode == 0, run.stderr


def _load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_ca_client_makes_a_clientauth_only_certificate_key_and_pkcs12(tmp_path):
    _init(tmp_path)
    (tmp_path / "pw").write_text("p12 secret\n")
    run = run_tlskit("ca", "client", "alice", "--ca-dir", "ca", "--email", "alice@example.test",
                     "--uri", "spiffe://example.test/alice", "--pkcs12", "alice.p12", "--passphrase-file", "pw",
                     "--days", "30", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    made = run.json
    assert made["user"] == "alice" and made["certificate"] == "alice.pem" and made["key"] == "alice.key"
    assert made["sans"] == ["email:alice@example.test", "URI:spiffe://example.test/alice"]
    for secret in ("alice.key", "alice.p12"):
        assert stat.S_IMODE((tmp_path / secret).stat().st_mode) == 0o600, secret
    cert = _load(tmp_path / "alice.pem")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 30
    # As a TLS server verifies a client: the "SSL client" purpose passes, "SSL server" does not.
    openssl("verify", "-CAfile", "ca/ca.pem", "-purpose", "sslclient", "alice.pem", cwd=tmp_path)
    assert openssl("verify", "-CAfile", "ca/ca.pem", "-purpose", "sslserver", "alice.pem", cwd=tmp_path,
                   check=False).returncode != 0
    # The PKCS#12 holds the same certificate and a key that matches, readable by OpenSSL 3 (curl's).
    dumped = openssl("pkcs12", "-in", "alice.p12", "-passin", "file:pw", "-nodes", cwd=tmp_path).stdout
    assert cert.public_bytes(Encoding.PEM).strip() in dumped
    assert b"PRIVATE KEY" in dumped and b"friendlyName: alice" in dumped


def test_ca_client_under_an_intermediate_sends_the_intermediate_with_it(tmp_path):
    _init(tmp_path, name="root")
    assert run_tlskit("ca", "init", "--dir", "int", "--cn", "Issuing", "--parent", "root", cwd=tmp_path).returncode == 0
    run = run_tlskit("ca", "client", "bob", "--ca-dir", "int", "--out", "bob.crt", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "bob.key").exists()
    pem = (tmp_path / "bob.crt").read_bytes()
    assert pem.count(b"BEGIN CERTIFICATE") == 2
    openssl("verify", "-CAfile", "root/ca.pem", "-untrusted", "bob.crt", "-purpose", "sslclient", "bob.crt",
            cwd=tmp_path)


def test_ca_sign_client_keeps_email_and_uri_and_drops_host_names(tmp_path):
    _init(tmp_path)
    csr = run_tlskit("csr", "--cn", "carol", "--san", "email:carol@example.test", "--san", "URI:urn:user:carol",
                     "--san", "DNS:carol.example.test", "--out", "carol.csr", cwd=tmp_path)
    assert csr.returncode == 0, csr.stderr
    run = run_tlskit("ca", "sign", "carol.csr", "--ca-dir", "ca", "--client", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    signed = run.json
    assert signed["client"] is True
    assert signed["sans"] == ["email:carol@example.test", "URI:urn:user:carol"]
    assert any("DNS:carol.example.test" in warning for warning in signed["warnings"])
    cert = _load(tmp_path / "carol.pem")
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    openssl("verify", "-CAfile", "ca/ca.pem", "-purpose", "sslclient", "carol.pem", cwd=tmp_path)
    # Without --client the same CSR is a server certificate, as before.
    plain = run_tlskit("ca", "sign", "carol.csr", "--ca-dir", "ca", "--out", "server.pem", "--json", cwd=tmp_path)
    assert "DNS:carol.example.test" in plain.json["sans"] and plain.json["client"] is False


def test_client_certificates_honour_the_cas_email_constraints(tmp_path):
    _init(tmp_path, "--permit-email", "example.test")
    assert run_tlskit("ca", "client", "dave", "--ca-dir", "ca", "--email", "dave@example.test",
                      cwd=tmp_path).returncode == 0
    openssl("verify", "-CAfile", "ca/ca.pem", "-purpose", "sslclient", "dave.pem", cwd=tmp_path)
    assert_one_line_error(run_tlskit("ca", "client", "eve", "--ca-dir", "ca", "--email", "eve@elsewhere.test",
                                     cwd=tmp_path), 2)
    assert not (tmp_path / "eve.pem").exists() and not (tmp_path / "eve.key").exists()


def test_client_errors_are_one_line_and_write_nothing(tmp_path):
    _init(tmp_path)
    assert_one_line_error(run_tlskit("ca", "client", "al ice", "--ca-dir", "ca", cwd=tmp_path), 2, "user name")
    assert_one_line_error(run_tlskit("ca", "client", "alice", "--ca-dir", "ca", "--pkcs12", "a.p12", cwd=tmp_path),
                          2, "--passphrase-file")
    assert_one_line_error(run_tlskit("ca", "client", "alice", "--ca-dir", "nope", cwd=tmp_path), 2,
                          "not a tlskit CA directory")
    assert_one_line_error(run_tlskit("ca", "client", "alice", "--ca-dir", "ca", "--email", "not-an-address",
                                     cwd=tmp_path), 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca"]
    (tmp_path / "alice.pem").write_text("keep me")
    assert_one_line_error(run_tlskit("ca", "client", "alice", "--ca-dir", "ca", cwd=tmp_path), 2, "already exists")
    assert (tmp_path / "alice.pem").read_text() == "keep me" and not (tmp_path / "alice.key").exists()
    run_tlskit("csr", "--subject", "/O=No CN here", "--san", "email:x@example.test", "--out", "nocn.csr", cwd=tmp_path)
    assert_one_line_error(run_tlskit("ca", "sign", "nocn.csr", "--ca-dir", "ca", "--client", cwd=tmp_path), 2, "CN")
