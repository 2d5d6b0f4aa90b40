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
