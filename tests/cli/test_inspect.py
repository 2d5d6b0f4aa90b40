"""`tlskit inspect`: what it reports about certificates, CSRs, keys and bundles matches openssl."""

from __future__ import annotations

import pytest

from conftest import assert_one_line_error, openssl, run_tlskit
from peers_chain import v1_pki


@pytest.fixture
def material(tmp_path):
    assert run_tlskit("ca", "init", "--dir", "ca", "--cn", "Root", cwd=tmp_path).returncode == 0
    assert run_tlskit("csr", "--key-type", "rsa:2048", "--cn", "www.example.com", "--san", "10.1.2.3",
                      "--out", "w.csr", cwd=tmp_path).returncode == 0
    assert run_tlskit("ca", "sign", "w.csr", "--ca-dir", "ca", "--days", "45", "--out", "w.pem", cwd=tmp_path).returncode == 0
    return tmp_path


def test_certificate_facts_match_openssl(material):
    run = run_tlskit("inspect", "w.pem", "--json", cwd=material)
    assert run.returncode == 0, run.stderr
    (item,) = run.json["items"]
    assert item["type"] == "certificate"
    assert item["subject"] == "/CN=www.example.com" and item["issuer"] == "/CN=Root"
    assert item["sans"] == ["DNS:www.example.com", "IP:10.1.2.3"]
    assert item["key"] == {"type": "RSA", "bits": 2048, "label": "RSA 2048"}
    assert item["days_left"] in (44, 45)
    fingerprint = openssl("x509", "-in", str(material / "w.pem"), "-noout", "-fingerprint", "-sha256").stdout.decode()
    assert fingerprint.strip().split("=", 1)[1] == item["fingerprints"]["sha256"]
    serial = openssl("x509", "-in", str(material / "w.pem"), "-noout", "-serial").stdout.decode()
    assert int(serial.strip().split("=", 1)[1], 16) == int(item["serial"], 16)
    names = {ext["name"] for ext in item["extensions"]}
    assert {"basicConstraints", "keyUsage", "extendedKeyUsage", "subjectAltName"} <= names


def test_bundle_csr_and_key(material):
    bundle = (material / "w.pem").read_bytes() + (material / "ca" / "ca.pem").read_bytes()
    (material / "bundle.pem").write_bytes(bundle)
    run = run_tlskit("inspect", "bundle.pem", "w.csr", "w.key", "--json", cwd=material)
    assert run.returncode == 0, run.stderr
    types = [item["type"] for item in run.json["items"]]
    assert types == ["certificate", "certificate", "csr", "private_key"]
    assert run.json["items"][1]["is_ca"] is True
    assert run.json["items"][2]["signature_valid"] is True
    text = run_tlskit("inspect", "w.pem", cwd=material)
    assert text.returncode == 0
    assert "www.example.com" in text.stdout and "days left" in text.stdout


def test_der_input(material):
    der = openssl("x509", "-in", str(material / "w.pem"), "-outform", "DER").stdout
    (material / "w.der").write_bytes(der)
    run = run_tlskit("inspect", "w.der", "--json", cwd=material)
    assert run.returncode == 0 and run.json["items"][0]["subject"] == "/CN=www.example.com"


@pytest.mark.parametrize("content", [b"hello", b"-----BEGIN CERTIFICATE-----\nnotbase64!!\n-----END CERTIFICATE-----\n",
                                     b"-----BEGIN CERTIFICATE-----\nMIIB\n", b""])
def test_garbage_is_one_line_error(tmp_path, content):
    (tmp_path / "g.pem").write_bytes(content)
    assert_one_line_error(run_tlskit("inspect", "g.pem", cwd=tmp_path), 2)


def test_missing_file(tmp_path):
    assert_one_line_error(run_tlskit("inspect", "nope.pem", cwd=tmp_path), 2, "does not exist")


def test_is_ca_of_certificates_without_basic_constraints(tmp_path):
    # RFC 5280: a self-issued v1 certificate (an old root) is a CA; a v1 certificate another CA issued
    # is not, and neither is a v3 certificate without basicConstraints.
    pki = v1_pki(tmp_path / "pki")
    run = run_tlskit("inspect", str(pki.root), str(pki.intermediate), str(pki.no_bc), "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [(item["subject"], item["is_ca"]) for item in run.json["items"]] == [
        ("/CN=V1 Root", True), ("/CN=V1 Intermediate", False), ("/CN=www.example.test", False)]
    assert [item["self_signed"] for item in run.json["items"]] == [True, False, True]


def test_dn_attributes_and_directory_name_sans_as_openssl_prints_them(tmp_path):
    # organizationIdentifier (2.5.4.97) and street are in real CA bundles; a DirName SAN is printed by
    # openssl as a one-line name, and tlskit must say the same, not a Python repr or "Unknown OID".
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from peers_verdicts import Pki

    pki = Pki(tmp_path / "pki")
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example AG"),
                         x509.NameAttribute(x509.ObjectIdentifier("2.5.4.97"), "VATDE-123456789"),
                         x509.NameAttribute(NameOID.STREET_ADDRESS, "Hauptstr. 1"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "Example Root")])
    dirname = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example AG"),
                         x509.NameAttribute(NameOID.STREET_ADDRESS, "Hauptstr. 1")])
    cert = pki.issue("dn", subject, None, ca=False, sans=[x509.DNSName("www.example.test"),
                                                          x509.DirectoryName(dirname)])
    run = run_tlskit("inspect", str(cert.path), "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (item,) = run.json["items"]
    openssl_subject = openssl("x509", "-in", str(cert.path), "-noout", "-subject", "-nameopt", "compat").stdout
    assert "subject=" + item["subject"] == openssl_subject.decode().strip()
    assert "/organizationIdentifier=VATDE-123456789/street=Hauptstr. 1/" in item["subject"]
    openssl_sans = openssl("x509", "-in", str(cert.path), "-noout", "-ext", "subjectAltName").stdout.decode()
    assert item["sans"] == ["DNS:www.example.test", "DirName:/O=Example AG/street=Hauptstr. 1"]
    assert ", ".join(item["sans"]) in openssl_sans
    text = run_tlskit("inspect", str(cert.path), cwd=tmp_path)
    assert "Unknown OID" not in text.stdout and "DirectoryName(" not in text.stdout


def test_a_root_with_serial_zero_prints_no_python_warning(tmp_path):
    from peers_verdicts import Pki, resign

    pki = Pki(tmp_path / "pki")
    root = pki.root()
    zero = pki.write("zero", resign(root.cert, root.key, serial_bytes=b"\x00"), root.key)
    for args in (("inspect", str(zero.path)), ("inspect", str(zero.path), "--json"),
                 ("chain", str(zero.path), "--ca-file", str(zero.path), "--json")):
        run = run_tlskit(*args, cwd=tmp_path)
        assert "CryptographyDeprecationWarning" not in run.stderr and "Warning" not in run.stderr, run.stderr
    assert run_tlskit("inspect", str(zero.path), "--json", cwd=tmp_path).json["items"][0]["serial"] in ("0", "00")


def test_a_certificate_with_an_extension_twice_is_shown_with_the_reason(tmp_path):
    """RFC 5280 4.2 allows an extension once; cryptography then refuses all of them. inspect still shows
    the rest of the certificate and says why there are no extensions, instead of crashing."""
    from peers_verdicts import Pki, der_extension, resign

    pki = Pki(tmp_path / "pki")
    root, inter, built = pki.chain()
    san = next(e for e in built.cert.extensions if e.oid.dotted_string == "2.5.29.17").value.public_bytes()
    twice = pki.write("twice", resign(built.cert, inter.key, extra_extensions=[der_extension("2.5.29.17", san)]),
                      built.key)
    run = run_tlskit("inspect", str(twice.path), "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (item,) = run.json["items"]
    assert item["extensions"] == [] and item["extensions_error"] == "Duplicate 2.5.29.17 extension found"
    assert item["subject"] == "/CN=www.example.test"
    text = run_tlskit("inspect", str(twice.path), cwd=tmp_path)
    assert text.returncode == 0 and "Extensions cannot be parsed: Duplicate 2.5.29.17 extension found" in text.stdout
    good = run_tlskit("inspect", str(built.path), "--json", cwd=tmp_path).json["items"][0]
    assert good["extensions_error"] is None and good["extensions"]
