"""tlskit.trust: one way to read the roots a verdict ends at, for chain and probe alike."""

from __future__ import annotations

import certifi
import pytest
from cryptography import x509

from conftest import assert_one_line_error, openssl, run_tlskit
from peers_chain import openssl_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return openssl_pki(tmp_path_factory.mktemp("trust-pki"), levels=3)


def test_certifi_is_the_default():
    from tlskit.trust import TrustStore

    trust = TrustStore.load(None)
    assert trust.name == "certifi"
    assert len(trust.certificates) == open(certifi.where(), "rb").read().count(b"-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("form", ["pem", "der", "pem-with-key"])
def test_ca_file_forms(pki, tmp_path, form):
    from tlskit.trust import TrustStore

    path = tmp_path / "ca"
    if form == "der":
        path.write_bytes(openssl("x509", "-in", str(pki.root), "-outform", "DER").stdout)
    elif form == "pem-with-key":
        path.write_bytes(pki.root.read_bytes() + (pki.root.parent / "root.key").read_bytes())
    else:
        path.write_bytes(pki.root.read_bytes() + pki.intermediates[0].read_bytes())
    trust = TrustStore.load(path)
    assert trust.name == str(path)
    root = x509.load_pem_x509_certificate(pki.root.read_bytes())
    assert trust.certificates[0] == root and trust.holds(root)
    intermediate = x509.load_pem_x509_certificate(pki.intermediates[0].read_bytes())
    assert trust.issuers_of(intermediate) == [root]
    assert trust.holds(intermediate) is (form == "pem")


@pytest.mark.parametrize("command", ["chain", "probe"])
def test_chain_and_probe_say_the_same_of_a_bad_ca_file(pki, tmp_path, command):
    target = str(pki.leaf) if command == "chain" else "127.0.0.1:1"
    (tmp_path / "key-only.pem").write_bytes((pki.root.parent / "root.key").read_bytes())
    run = run_tlskit(command, target, "--ca-file", "key-only.pem", cwd=tmp_path)
    assert_one_line_error(run, 2, "CA file key-only.pem holds no certificate")
    run = run_tlskit(command, target, "--ca-file", "missing.pem", cwd=tmp_path)
    assert_one_line_error(run, 2, "CA file missing.pem does not exist")
