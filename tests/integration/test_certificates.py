"""tlskit.certificates: the facts every part asks about a certificate, on certificates openssl made."""

from __future__ import annotations

import pytest
from cryptography import x509

from conftest import openssl
from peers_chain import openssl_pki, v1_pki


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    return v1_pki(tmp_path_factory.mktemp("v1-pki"))


@pytest.fixture(scope="module")
def v3(tmp_path_factory):
    return openssl_pki(tmp_path_factory.mktemp("v3-pki"), levels=3)


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_is_ca_follows_basic_constraints(v3):
    from tlskit.certificates import is_ca

    assert is_ca(load(v3.root)) is True
    assert is_ca(load(v3.intermediates[0])) is True
    assert is_ca(load(v3.leaf)) is False


def test_v1_certificate_is_a_ca_only_when_self_issued(v1):
    from tlskit.certificates import is_ca, is_self_issued

    root, intermediate = load(v1.root), load(v1.intermediate)
    assert root.version == intermediate.version == x509.Version.v1
    assert is_self_issued(root) and not is_self_issued(intermediate)
    # An old v1 root is a CA (a trust anchor clients know out of band); a v1 certificate that another
    # CA issued is not one, although its key signed a certificate.
    assert is_ca(root) is True
    assert is_ca(intermediate) is False


def test_v3_certificate_without_basic_constraints_is_not_a_ca(v1):
    from tlskit.certificates import is_ca, is_self_issued

    no_bc = load(v1.no_bc)
    assert no_bc.version == x509.Version.v3 and is_self_issued(no_bc)
    assert is_ca(no_bc) is False


def test_is_ca_agrees_with_openssl_purpose_check(v1, v3):
    from tlskit.certificates import is_ca

    # `openssl x509 -purpose` runs X509_check_ca: "SSL server CA : Yes" for what may issue.
    for path in (v1.root, v1.intermediate, v1.no_bc, v1.leaf, v3.root, v3.intermediates[0], v3.leaf):
        purposes = openssl("x509", "-in", str(path), "-noout", "-purpose").stdout.decode()
        openssl_says = "SSL server CA : Yes" in purposes
        assert is_ca(load(path)) is openssl_says, (path.name, purposes)


def test_issued_by_checks_names_and_signatures(v3, tmp_path_factory):
    from tlskit.certificates import is_self_signed, issued_by

    leaf, intermediate, root = load(v3.leaf), load(v3.intermediates[0]), load(v3.root)
    assert issued_by(leaf, intermediate) and issued_by(intermediate, root)
    assert not issued_by(leaf, root)  # another name
    assert is_self_signed(root) and not is_self_signed(leaf)
    # Same name, another key: the signature decides.
    impostor = openssl_pki(tmp_path_factory.mktemp("impostor"), levels=3)
    assert load(impostor.intermediates[0]).subject == intermediate.subject
    assert not issued_by(leaf, load(impostor.intermediates[0]))


def test_sha1_signatures_are_checked_too(tmp_path_factory):
    from tlskit.certificates import is_self_signed, issued_by

    # cryptography's own check refuses SHA-1; the fact "this key signed it" still holds.
    sha1 = openssl_pki(tmp_path_factory.mktemp("sha1"), levels=3, digest="sha1")
    other = openssl_pki(tmp_path_factory.mktemp("sha1-other"), levels=3, digest="sha1")
    leaf, intermediate, root = load(sha1.leaf), load(sha1.intermediates[0]), load(sha1.root)
    assert issued_by(leaf, intermediate) and issued_by(intermediate, root) and is_self_signed(root)
    assert not issued_by(leaf, load(other.intermediates[0]))
    assert not issued_by(intermediate, load(other.root))


def test_key_ids_match(v3, v1):
    from tlskit.certificates import key_ids_match

    leaf, intermediate, root = load(v3.leaf), load(v3.intermediates[0]), load(v3.root)
    assert key_ids_match(leaf, intermediate) is True
    assert key_ids_match(leaf, root) is False
    assert key_ids_match(load(v1.leaf), load(v1.root)) is None  # a v1 root has no SKI


def test_ocsp_does_not_import_the_verifier():
    import ast

    import tlskit.probe.ocsp

    # The staple check needs the signature facts, not the verdict: no import circle between them.
    tree = ast.parse(open(tlskit.probe.ocsp.__file__).read())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "tlskit.certificates" in imported and "tlskit.probe.verify" not in imported


def test_pem_and_fingerprint_are_what_openssl_reads(v3, tmp_path):
    from tlskit.certificates import fingerprint, to_pem

    leaf, intermediate = load(v3.leaf), load(v3.intermediates[0])
    (tmp_path / "chain.pem").write_bytes(to_pem(leaf, intermediate))
    # openssl's crl2pkcs7 lists every certificate of a PEM file, in order.
    listed = openssl("crl2pkcs7", "-nocrl", "-certfile", str(tmp_path / "chain.pem")).stdout
    listed = openssl("pkcs7", "-print_certs", "-noout", input=listed).stdout.decode()
    assert listed.count("subject=") == 2 and listed.index("www.example.test") < listed.index("Intermediate")
    for algorithm in ("sha256", "sha1"):
        shown = openssl("x509", "-in", str(v3.leaf), "-noout", "-fingerprint", f"-{algorithm}").stdout.decode()
        assert shown.strip().split("=", 1)[1] == fingerprint(leaf, algorithm)


def test_validity_bounds(v3):
    import datetime as dt

    from tlskit.certificates import is_expired, is_not_yet_valid

    leaf = load(v3.leaf)
    assert not is_expired(leaf, leaf.not_valid_after_utc) and is_expired(leaf, leaf.not_valid_after_utc + dt.timedelta(seconds=1))
    assert not is_not_yet_valid(leaf, leaf.not_valid_before_utc)
    assert is_not_yet_valid(leaf, leaf.not_valid_before_utc - dt.timedelta(seconds=1))
