"""Every PKCS#12 file tlskit writes is protected as the README says: PBES2 (PBKDF2 with HMAC-SHA256)
and AES-256-CBC for both the certificates and the key, and a SHA-256 MAC, as `openssl pkcs12 -info`
reads them. The old RC2/3DES and SHA-1 forms still open in OpenSSL 3, so a test that only reads the file
back would not notice a weaker one.
"""

from __future__ import annotations

import re

import pytest

from conftest import openssl, run_tlskit
from peers_chain import tlskit_pki

PASSPHRASE = "p12 secret\n"
# cryptography's encryption builder is given this many PBKDF2 rounds (OpenSSL's own default is 2048).
MIN_KDF_ITERATIONS = 50_000


def _protection(p12, cwd) -> str:
    info = openssl("pkcs12", "-info", "-noout", "-in", str(p12), "-passin", "file:pw", cwd=cwd)
    # OpenSSL 3 writes the parameters to stderr (stdout is where the PEM would go without -noout).
    return (info.stdout + info.stderr).decode()


def _assert_strong(text: str) -> None:
    assert re.search(r"^MAC: sha256, Iteration \d+$", text, re.M), text
    assert re.search(r"^MAC length: 32, salt length: \d+$", text, re.M), text
    certificates = re.findall(r"^PKCS7 Encrypted data: (.*)$", text, re.M)
    keys = re.findall(r"^Shrouded Keybag: (.*)$", text, re.M)
    assert len(certificates) == 1 and len(keys) == 1, text
    for parameters in (*certificates, *keys):
        found = re.fullmatch(r"PBES2, PBKDF2, AES-256-CBC, Iteration (\d+), PRF hmacWithSHA256", parameters)
        assert found, parameters
        assert int(found.group(1)) >= MIN_KDF_ITERATIONS, parameters


def test_ca_client_pkcs12_is_aes256_pbkdf2_with_a_sha256_mac(tmp_path):
    (tmp_path / "pw").write_text(PASSPHRASE)
    assert run_tlskit("ca", "init", "--dir", "ca", "--cn", "P12 CA", cwd=tmp_path).returncode == 0
    run = run_tlskit("ca", "client", "alice", "--ca-dir", "ca", "--pkcs12", "alice.p12", "--passphrase-file", "pw",
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    _assert_strong(_protection(tmp_path / "alice.p12", tmp_path))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tlskit_pki(tmp_path_factory.mktemp("p12-pki"), prefix="P12")


def test_chain_pkcs12_is_aes256_pbkdf2_with_a_sha256_mac(tmp_path, pki):
    (tmp_path / "pw").write_text(PASSPHRASE)
    run = run_tlskit("chain", *map(str, pki.all_certs), "--ca-file", str(pki.root), "--key", str(pki.leaf_key),
                     "--pkcs12", "site.p12", "--passphrase-file", "pw", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    text = _protection(tmp_path / "site.p12", tmp_path)
    _assert_strong(text)
    assert text.count("Certificate bag") == 3, text     # the leaf and both intermediates, encrypted together
