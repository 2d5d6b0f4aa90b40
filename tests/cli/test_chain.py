"""`tlskit chain`: real four-level PKIs (openssl binary and tlskit's own CA), shuffled, checked by `openssl verify`."""

from __future__ import annotations

import json
import os
import random
import shutil
import stat

import pytest

from conftest import assert_one_line_error, free_port, openssl, require_binary, run_tlskit
from peers_chain import LEAF_NAME, http_server, openssl_pki, openssl_verify, pem_subjects, tlskit_pki, v1_pki

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def openssl_ca(tmp_path_factory):
    return openssl_pki(tmp_path_factory.mktemp("openssl-pki"))


@pytest.fixture(scope="module")
def tlskit_ca(tmp_path_factory):
    return tlskit_pki(tmp_path_factory.mktemp("tlskit-pki"))


@pytest.fixture(params=["openssl", "tlskit"])
def pki(request, openssl_ca, tlskit_ca):
    return openssl_ca if request.param == "openssl" else tlskit_ca


def expected_order(pki) -> list[str]:
    return [pki.names["leaf"], pki.names["int2"], pki.names["int1"]]


def mixed_bundle(path, *sources, seed=0):
    """All PEM blocks of ``sources`` in one file, in a shuffled order."""
    blocks = []
    for source in sources:
        blocks += [b"-----BEGIN CERTIFICATE-----" + part for part in source.read_bytes().split(b"-----BEGIN CERTIFICATE-----")[1:]]
    random.Random(seed).shuffle(blocks)
    path.write_bytes(b"".join(blocks))
    return path


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_separate_files_give_ordered_chain_openssl_verifies(tmp_path, pki, seed):
    files = [str(p) for p in pki.all_certs]
    random.Random(seed).shuffle(files)
    run = run_tlskit("chain", *files, "--ca-file", str(pki.root), "--host", LEAF_NAME, "--out", "fullchain.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert pem_subjects(tmp_path / "fullchain.pem") == expected_order(pki)  # the root is left out
    verify = openssl_verify(pki.root, tmp_path / "fullchain.pem")
    assert verify.returncode == 0 and b": OK" in verify.stdout, verify.stderr
    assert "left out" in run.stdout


def test_one_mixed_bundle_with_duplicates_der_and_unrelated(tmp_path, openssl_ca, tlskit_ca):
    # One bundle holding the openssl PKI and tlskit's CAs shuffled together, an intermediate twice, and
    # the leaf once more as DER: the tlskit CAs are unrelated, the repeats are duplicates.
    mixed_bundle(tmp_path / "everything.pem", openssl_ca.leaf, *openssl_ca.intermediates, openssl_ca.root,
                          *tlskit_ca.intermediates, tlskit_ca.root, openssl_ca.intermediates[0], seed=7)
    openssl("x509", "-in", str(openssl_ca.leaf), "-outform", "DER", "-out", str(tmp_path / "leaf.der"))
    run = run_tlskit("chain", "everything.pem", "leaf.der", "--ca-file", str(openssl_ca.root), "--out", "full.pem",
                     "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    doc = run.json
    assert [c["subject"] for c in doc["chain"]] == expected_order(openssl_ca)
    assert [c["role"] for c in doc["chain"]] == ["leaf", "intermediate", "intermediate"]
    reasons = sorted(d["reason"] for d in doc["dropped"])
    assert reasons == ["duplicate", "duplicate", "unrelated", "unrelated", "unrelated"]
    assert {d["subject"] for d in doc["dropped"] if d["reason"] == "unrelated"} == {
        tlskit_ca.names["root"], tlskit_ca.names["int1"], tlskit_ca.names["int2"]}
    assert doc["root"]["subject"] == openssl_ca.names["root"] and doc["root_included"] is False
    assert doc["verified"] is True and doc["ok"] is True
    codes = {f["code"] for f in doc["findings"]}
    assert {"duplicates_dropped", "unrelated_dropped", "root_left_out"} <= codes
    assert openssl_verify(openssl_ca.root, tmp_path / "full.pem").returncode == 0
    assert (tmp_path / "full.pem").read_text() == doc["pem"]


def test_json_chain_entries_match_openssl(tmp_path, tlskit_ca):
    run = run_tlskit("chain", *map(str, tlskit_ca.all_certs), "--ca-file", str(tlskit_ca.root), "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    leaf = run.json["chain"][0]
    assert set(leaf) >= {"role", "subject", "issuer", "serial", "not_after", "fingerprint_sha256", "source"}
    fingerprint = openssl("x509", "-in", str(tlskit_ca.leaf), "-noout", "-fingerprint", "-sha256").stdout.decode()
    assert fingerprint.strip().split("=", 1)[1] == leaf["fingerprint_sha256"]
    serial = openssl("x509", "-in", str(tlskit_ca.leaf), "-noout", "-serial").stdout.decode()
    assert int(serial.strip().split("=", 1)[1], 16) == int(leaf["serial"], 16)
    assert leaf["issuer"] == tlskit_ca.names["int2"]


def test_include_root_puts_root_last(tmp_path, pki):
    files = [str(p) for p in reversed(pki.all_certs)]
    run = run_tlskit("chain", *files, "--ca-file", str(pki.root), "--include-root", "--out", "full.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert pem_subjects(tmp_path / "full.pem") == [*expected_order(pki), pki.names["root"]]
    assert openssl_verify(pki.root, tmp_path / "full.pem").returncode == 0


def test_root_comes_from_the_trust_store_when_not_given(tmp_path, pki):
    # Leaf + intermediates only: the chain ends at a root of --ca-file, as with a public CA and certifi.
    run = run_tlskit("chain", str(pki.intermediates[1]), str(pki.leaf), str(pki.intermediates[0]),
                     "--ca-file", str(pki.root), "--include-root", "--out", "full.pem", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.json["chain"][-1]["role"] == "root" and run.json["chain"][-1]["source"] == str(pki.root)
    assert openssl_verify(pki.root, tmp_path / "full.pem").returncode == 0


def test_pem_on_stdout_without_out(tmp_path, pki):
    run = run_tlskit("chain", *map(str, pki.all_certs), "--ca-file", str(pki.root), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    (tmp_path / "piped.pem").write_text(run.stdout)
    assert pem_subjects(tmp_path / "piped.pem") == expected_order(pki)
    assert "Chain OK" in run.stderr  # the summary stays off stdout
    assert openssl_verify(pki.root, tmp_path / "piped.pem").returncode == 0


def test_gap_names_the_missing_issuer_and_writes_nothing(tmp_path, pki):
    # Intermediate 1 is left out: the leaf's chain breaks above intermediate 2.
    run = run_tlskit("chain", str(pki.leaf), str(pki.intermediates[0]), str(pki.root), "--ca-file", str(pki.root),
                     "--out", "full.pem", cwd=tmp_path)
    assert_one_line_error(run, 1, f"missing intermediate: no certificate for {pki.names['int1']}")
    assert pki.names["int2"] in run.stderr  # whose issuer it is
    assert not (tmp_path / "full.pem").exists()
    assert openssl("verify", "-CAfile", str(pki.root), "-untrusted", str(pki.intermediates[0]), str(pki.leaf),
                   check=False).returncode != 0  # openssl agrees that it is broken


def test_gap_in_json_gives_missing_issuer(tmp_path, pki):
    run = run_tlskit("chain", str(pki.leaf), "--ca-file", str(pki.root), "--out", "full.pem", "--json", cwd=tmp_path)
    assert_one_line_error(run, 1, pki.names["int2"])
    assert run.json["ok"] is False and run.json["missing_issuer"] == pki.names["int2"]
    assert not (tmp_path / "full.pem").exists()


def test_private_root_not_trusted_by_certifi(tmp_path, pki):
    run = run_tlskit("chain", *map(str, pki.all_certs), "--out", "full.pem", cwd=tmp_path)
    assert_one_line_error(run, 1, f"ends at the root {pki.names['root']}, which certifi does not trust")
    assert "--ca-file" in run.stderr
    assert not (tmp_path / "full.pem").exists()


def test_no_verify_orders_without_a_trust_store(tmp_path, pki):
    run = run_tlskit("chain", *map(str, reversed(pki.all_certs)), "--no-verify", "--out", "full.pem", "--json",
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.json["verified"] is False
    assert openssl_verify(pki.root, tmp_path / "full.pem").returncode == 0


def test_wrong_host_is_a_verdict(tmp_path, pki):
    run = run_tlskit("chain", *map(str, pki.all_certs), "--ca-file", str(pki.root), "--host", "other.example.org",
                     "--out", "full.pem", cwd=tmp_path)
    assert_one_line_error(run, 1, "not valid for other.example.org")
    assert "DNS:www.example.test" in run.stderr
    assert not (tmp_path / "full.pem").exists()
    ok = run_tlskit("chain", *map(str, pki.all_certs), "--ca-file", str(pki.root), "--host", "example.test", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_wrong_ca_file_does_not_verify(tmp_path, openssl_ca, tlskit_ca):
    run = run_tlskit("chain", str(openssl_ca.leaf), *map(str, openssl_ca.intermediates), "--ca-file",
                     str(tlskit_ca.root), "--out", "full.pem", cwd=tmp_path)
    assert_one_line_error(run, 1, f"no certificate for {openssl_ca.names['root']}")
    assert not (tmp_path / "full.pem").exists()


@pytest.mark.parametrize("content,why", [
    (b"hello, this is not a certificate\n", "neither PEM nor DER"),
    (b"", "neither PEM nor DER"),
    (b"-----BEGIN CERTIFICATE-----\nMIIB\n", "broken PEM"),
    (b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", "does not parse"),
    (os.urandom(300), "neither PEM nor DER"),
])
def test_junk_input_is_a_one_line_input_error(tmp_path, pki, content, why):
    (tmp_path / "junk.crt").write_bytes(content)
    run = run_tlskit("chain", str(pki.leaf), "junk.crt", "--ca-file", str(pki.root), "--out", "full.pem", cwd=tmp_path)
    assert_one_line_error(run, 2, "junk.crt")
    assert not (tmp_path / "full.pem").exists()


def test_only_ca_certificates_or_two_leaves_is_an_input_error(tmp_path, openssl_ca, tlskit_ca):
    run = run_tlskit("chain", str(openssl_ca.root), cwd=tmp_path)
    assert_one_line_error(run, 2, "no domain")
    run = run_tlskit("chain", str(openssl_ca.leaf), str(tlskit_ca.leaf), cwd=tmp_path)
    assert_one_line_error(run, 2, "2 domain certificates")
    # --key picks the leaf it belongs to.
    run = run_tlskit("chain", str(openssl_ca.leaf), str(tlskit_ca.leaf), *map(str, tlskit_ca.intermediates),
                     "--key", str(tlskit_ca.leaf_key), "--ca-file", str(tlskit_ca.root), "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.json["key_matches"] is True and run.json["chain"][0]["source"] == str(tlskit_ca.leaf)


def test_missing_input_file_and_existing_output(tmp_path, pki):
    run = run_tlskit("chain", "nope.pem", cwd=tmp_path)
    assert_one_line_error(run, 2, "does not exist")
    (tmp_path / "full.pem").write_text("keep me")
    run = run_tlskit("chain", *map(str, pki.all_certs), "--ca-file", str(pki.root), "--out", "full.pem", cwd=tmp_path)
    assert_one_line_error(run, 2, "already exists")
    assert (tmp_path / "full.pem").read_text() == "keep me"
    run = run_tlskit("chain", *map(str, pki.all_certs), "--ca-file", str(pki.root), "--out", "full.pem", "--force",
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert openssl_verify(pki.root, tmp_path / "full.pem").returncode == 0


def test_key_must_match_the_leaf(tmp_path, openssl_ca, tlskit_ca):
    good = run_tlskit("chain", *map(str, openssl_ca.all_certs), "--ca-file", str(openssl_ca.root),
                      "--key", str(openssl_ca.leaf_key), "--out", "full.pem", cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "Key matches the leaf" in good.stdout
    bad = run_tlskit("chain", *map(str, openssl_ca.all_certs), "--ca-file", str(openssl_ca.root),
                     "--key", str(tlskit_ca.leaf_key), "--out", "other.pem", cwd=tmp_path)
    assert_one_line_error(bad, 1, "the key does not match the leaf")
    assert not (tmp_path / "other.pem").exists()


def test_pkcs12_openssl_reads_key_and_chain(tmp_path, pki):
    (tmp_path / "pass.txt").write_text("s3cret p12\n")
    run = run_tlskit("chain", *map(str, pki.all_certs), "--ca-file", str(pki.root), "--key", str(pki.leaf_key),
                     "--pkcs12", "site.p12", "--passphrase-file", "pass.txt", "--out", "full.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    p12 = tmp_path / "site.p12"
    assert stat.S_IMODE(os.stat(p12).st_mode) == 0o600
    passin = f"file:{tmp_path / 'pass.txt'}"
    certs = openssl("pkcs12", "-in", str(p12), "-passin", passin, "-nokeys", "-out", str(tmp_path / "p12certs.pem"))
    assert certs.returncode == 0
    assert sorted(pem_subjects(tmp_path / "p12certs.pem")) == sorted(expected_order(pki))
    key_pem = openssl("pkcs12", "-in", str(p12), "-passin", passin, "-nocerts", "-nodes").stdout
    from_p12 = openssl("pkey", "-pubout", input=key_pem).stdout
    from_leaf = openssl("x509", "-in", str(pki.leaf), "-noout", "-pubkey").stdout
    assert from_p12 == from_leaf
    wrong = openssl("pkcs12", "-in", str(p12), "-passin", "pass:wrong", "-nokeys", check=False)
    assert wrong.returncode != 0


def test_pkcs12_with_encrypted_key_and_missing_password(tmp_path, tlskit_ca):
    (tmp_path / "pass.txt").write_text("same for both\n")
    openssl("pkey", "-in", str(tlskit_ca.leaf_key), "-aes256", "-passout", f"file:{tmp_path / 'pass.txt'}",
            "-out", str(tmp_path / "enc.key"))
    run = run_tlskit("chain", *map(str, tlskit_ca.all_certs), "--ca-file", str(tlskit_ca.root), "--key", "enc.key",
                     "--pkcs12", "site.p12", "--passphrase-file", "pass.txt", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    openssl("pkcs12", "-in", str(tmp_path / "site.p12"), "-passin", f"file:{tmp_path / 'pass.txt'}", "-noout")
    run = run_tlskit("chain", *map(str, tlskit_ca.all_certs), "--ca-file", str(tlskit_ca.root),
                     "--key", str(tlskit_ca.leaf_key), "--pkcs12", "nopass.p12", cwd=tmp_path)
    assert_one_line_error(run, 2, "--passphrase-file")
    assert not (tmp_path / "nopass.p12").exists()


def test_warnings_intermediate_expires_first_and_leaf_soon(tmp_path_factory, tmp_path):
    pki = tlskit_pki(tmp_path_factory.mktemp("short-pki"), prefix="Short", leaf_days=20, int_days=10)
    run = run_tlskit("chain", *map(str, pki.all_certs), "--ca-file", str(pki.root), "--out", "full.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning: ")]
    assert any("leaf expires in 19 days" in w or "leaf expires in 20 days" in w for w in warnings), warnings
    assert sum("expires on" in w and "before the leaf" in w for w in warnings) == 2, warnings
    doc = run_tlskit("chain", *map(str, pki.all_certs), "--ca-file", str(pki.root), "--json", cwd=tmp_path).json
    codes = [f["code"] for f in doc["findings"] if f["level"] == "warning"]
    assert codes.count("intermediate_expires_before_leaf") == 2 and "leaf_expires_soon" in codes
    assert openssl_verify(pki.root, tmp_path / "full.pem").returncode == 0


def test_sha1_chain_is_refused_and_named(tmp_path_factory, tmp_path):
    pki = openssl_pki(tmp_path_factory.mktemp("sha1-pki"), prefix="Sha1", digest="sha1")
    run = run_tlskit("chain", *map(str, pki.all_certs), "--ca-file", str(pki.root), "--out", "full.pem", cwd=tmp_path)
    assert_one_line_error(run, 1, "signed with SHA-1")
    assert pki.names["int1"] in run.stderr
    assert not (tmp_path / "full.pem").exists()
    # Ordering still works without verification, with one warning per SHA-1 certificate.
    run = run_tlskit("chain", *map(str, pki.all_certs), "--no-verify", "--out", "full.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("signed with SHA-1") == 3
    assert pem_subjects(tmp_path / "full.pem") == expected_order(pki)


@pytest.fixture
def aia_pki(tmp_path):
    """An openssl PKI whose certificates point at their issuers on a local caIssuers server."""
    port = free_port()
    pki = openssl_pki(tmp_path / "ca", prefix="AIA", aia_base=f"http://127.0.0.1:{port}")
    repository = tmp_path / "repo"
    repository.mkdir()
    shutil.copy(tmp_path / "ca" / "int2.der", repository / "int2.der")
    # The second hop is published as PEM under the .der name: fetched files come in both forms.
    shutil.copy(tmp_path / "ca" / "int1.pem", repository / "int1.der")
    with http_server(repository, port) as base:
        yield pki, base


def test_fetch_follows_aia_ca_issuers(tmp_path, aia_pki):
    pki, base = aia_pki
    run = run_tlskit("chain", str(pki.leaf), "--fetch", "--ca-file", str(pki.root), "--host", LEAF_NAME,
                     "--out", "full.pem", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [c["source"] for c in run.json["chain"]] == [str(pki.leaf), f"{base}/int2.der", f"{base}/int1.der"]
    assert [f["code"] for f in run.json["findings"]].count("fetched") == 2
    assert pem_subjects(tmp_path / "full.pem") == expected_order(pki)
    assert openssl_verify(pki.root, tmp_path / "full.pem").returncode == 0


def test_without_fetch_the_gap_points_at_the_aia_url(tmp_path, aia_pki):
    pki, base = aia_pki
    run = run_tlskit("chain", str(pki.leaf), "--ca-file", str(pki.root), "--out", "full.pem", cwd=tmp_path)
    assert_one_line_error(run, 1, f"no certificate for {pki.names['int2']}")
    assert f"--fetch to download it from {base}/int2.der" in run.stderr
    assert not (tmp_path / "full.pem").exists()


def test_fetch_of_a_missing_file_is_a_network_error(tmp_path, aia_pki):
    pki, base = aia_pki
    (tmp_path / "repo" / "int1.der").unlink()
    run = run_tlskit("chain", str(pki.leaf), "--fetch", "--ca-file", str(pki.root), "--out", "full.pem", cwd=tmp_path)
    assert_one_line_error(run, 3, f"{base}/int1.der")
    assert "HTTP 404" in run.stderr
    assert not (tmp_path / "full.pem").exists()


def test_stdin_input(tmp_path, tlskit_ca):
    data = b"".join(p.read_bytes() for p in reversed(tlskit_ca.all_certs))
    import subprocess
    import sys

    completed = subprocess.run([sys.executable, "-m", "tlskit", "chain", "-", "--ca-file", str(tlskit_ca.root), "--json"],
                               input=data, capture_output=True, timeout=60, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    doc = json.loads(completed.stdout)
    assert [c["subject"] for c in doc["chain"]] == expected_order(tlskit_ca)
    assert doc["chain"][0]["source"] == "stdin"


def test_signature_decides_between_same_name_same_ski_issuers(tmp_path, openssl_ca):
    # A decoy CA with the same name and the same SKI as intermediate 2, valid longer (so every
    # tie-breaker prefers it): only the leaf's signature tells them apart.
    ski = openssl("x509", "-in", str(openssl_ca.intermediates[0]), "-noout", "-ext", "subjectKeyIdentifier").stdout.decode()
    ski_hex = ski.strip().splitlines()[-1].strip().replace(":", "")
    (tmp_path / "decoy.cnf").write_text(
        "[req]\ndistinguished_name = dn\n[dn]\n[decoy]\nbasicConstraints = critical,CA:TRUE\n"
        f"keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = {ski_hex}\n")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            str(tmp_path / "decoy.key"), "-subj", openssl_ca.names["int2"], "-days", "9000", "-config",
            str(tmp_path / "decoy.cnf"), "-extensions", "decoy", "-out", str(tmp_path / "decoy.pem"))
    run = run_tlskit("chain", "decoy.pem", *map(str, openssl_ca.all_certs), "--ca-file", str(openssl_ca.root),
                     "--out", "full.pem", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    real = openssl("x509", "-in", str(openssl_ca.intermediates[0]), "-noout", "-fingerprint", "-sha256").stdout.decode()
    assert run.json["chain"][1]["fingerprint_sha256"] == real.strip().split("=", 1)[1]
    assert [d["source"] for d in run.json["dropped"]] == ["decoy.pem"]
    assert openssl_verify(openssl_ca.root, tmp_path / "full.pem").returncode == 0


def test_intermediates_in_the_ca_file_still_go_into_the_fullchain(tmp_path, pki):
    mixed_bundle(tmp_path / "cafile.pem", pki.root, *pki.intermediates)
    run = run_tlskit("chain", str(pki.leaf), "--ca-file", "cafile.pem", "--out", "full.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert pem_subjects(tmp_path / "full.pem") == expected_order(pki)
    assert openssl_verify(pki.root, tmp_path / "full.pem").returncode == 0


def test_self_signed_leaf_has_no_chain(tmp_path):
    made = run_tlskit("selfsign", "--cn", "self.example.test", "--out", "self.pem", "--key-out", "self.key", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    run = run_tlskit("chain", "self.pem", "--ca-file", "self.pem", "--out", "full.pem", cwd=tmp_path)
    assert_one_line_error(run, 1, "self-signed")
    assert not (tmp_path / "full.pem").exists()


def test_certificates_without_basic_constraints(tmp_path):
    # A v3 certificate without basicConstraints is no CA (RFC 5280 4.2.1.9): self-signed, it is a
    # leaf with no chain, like one from `tlskit selfsign`. A self-issued v1 certificate is an old
    # root, so it ends the chain of the leaf it issued.
    pki = v1_pki(tmp_path / "pki")
    run = run_tlskit("chain", str(pki.no_bc), "--ca-file", str(pki.no_bc), cwd=tmp_path)
    assert_one_line_error(run, 1, "self-signed")
    run = run_tlskit("chain", str(pki.root), str(pki.leaf), "--no-verify", "--include-root", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [link["role"] for link in run.json["chain"]] == ["leaf", "root"]
    assert run.json["chain"][0]["subject"] == f"/CN={LEAF_NAME}"


def test_expired_leaf_is_named(tmp_path, openssl_ca):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    issuer_dir = openssl_ca.root.parent
    issuer = x509.load_pem_x509_certificate((issuer_dir / "int2.pem").read_bytes())
    issuer_key = serialization.load_pem_private_key((issuer_dir / "int2.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.example.test")]))
            .issuer_name(issuer.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=100)).not_valid_after(now - dt.timedelta(days=10))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("old.example.test")]), critical=False)
            .sign(issuer_key, hashes.SHA256()))
    (tmp_path / "old.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    untrusted = mixed_bundle(tmp_path / "ints.pem", *openssl_ca.intermediates)
    # openssl agrees: error 10, certificate has expired.
    assert b"certificate has expired" in openssl("verify", "-CAfile", str(openssl_ca.root), "-untrusted",
                                                 str(untrusted), str(tmp_path / "old.pem"), check=False).stderr
    run = run_tlskit("chain", "old.pem", "ints.pem", "--ca-file", str(openssl_ca.root), "--out", "full.pem", cwd=tmp_path)
    assert_one_line_error(run, 1, "the leaf /CN=old.example.test expired on")
    assert not (tmp_path / "full.pem").exists()


def test_pkcs12_is_read_by_java_keytool(tmp_path, tlskit_ca):
    keytool = require_binary("keytool")  # default-jre-headless, in the Makefile's TEST_DEBS
    (tmp_path / "pass.txt").write_text("changeit\n")
    run = run_tlskit("chain", *map(str, tlskit_ca.all_certs), "--ca-file", str(tlskit_ca.root),
                     "--key", str(tlskit_ca.leaf_key), "--pkcs12", "site.p12", "--passphrase-file", "pass.txt", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    import subprocess

    listing = subprocess.run([keytool, "-list", "-v", "-keystore", str(tmp_path / "site.p12"), "-storetype", "PKCS12",
                              "-storepass", "changeit"], capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert "Entry type: PrivateKeyEntry" in listing.stdout
    assert "Certificate chain length: 3" in listing.stdout
    assert f"Alias name: {LEAF_NAME}" in listing.stdout


def test_cross_signed_root_copy_is_not_needed_when_the_root_is_trusted(tmp_path, openssl_ca):
    # Like Let's Encrypt's old chain: the bundle carries a copy of the root cross-signed by an older
    # root that clients no longer have. The trusted root ends the chain; the cross-sign is dropped.
    d = openssl_ca.root.parent
    old = tmp_path / "old"
    old.mkdir()
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            str(old / "old.key"), "-subj", "/CN=Retired Root", "-days", "3650", "-config", str(d / "openssl.cnf"),
            "-extensions", "root", "-out", str(old / "old.pem"))
    openssl("req", "-new", "-key", str(d / "root.key"), "-subj", openssl_ca.names["root"], "-config",
            str(d / "openssl.cnf"), "-out", str(old / "cross.csr"))
    openssl("x509", "-req", "-in", str(old / "cross.csr"), "-CA", str(old / "old.pem"), "-CAkey", str(old / "old.key"),
            "-set_serial", "4242", "-days", "365", "-extfile", str(d / "openssl.cnf"), "-extensions", "int1",
            "-out", str(old / "cross.pem"))
    run = run_tlskit("chain", str(openssl_ca.leaf), *map(str, openssl_ca.intermediates), str(old / "cross.pem"),
                     "--ca-file", str(openssl_ca.root), "--out", "full.pem", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [c["subject"] for c in run.json["chain"]] == expected_order(openssl_ca)
    assert [(x["source"], x["reason"]) for x in run.json["dropped"]] == [(str(old / "cross.pem"), "unrelated")]
    assert openssl_verify(openssl_ca.root, tmp_path / "full.pem").returncode == 0
    # Trusting only the retired root, the cross-sign is the way up, and it is kept.
    run = run_tlskit("chain", str(openssl_ca.leaf), *map(str, openssl_ca.intermediates), str(old / "cross.pem"),
                     "--ca-file", str(old / "old.pem"), "--out", "full-old.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert pem_subjects(tmp_path / "full-old.pem") == [*expected_order(openssl_ca), openssl_ca.names["root"]]
    assert openssl_verify(old / "old.pem", tmp_path / "full-old.pem").returncode == 0


@pytest.mark.parametrize("int_eku,ok", [("serverAuth", True), ("serverAuth,clientAuth", True), ("codeSigning", False)])
def test_intermediates_restricted_by_eku(tmp_path, int_eku, ok):
    # Many public intermediates carry EKU serverAuth only; one restricted to code signing cannot
    # vouch for a TLS server, and openssl says so too (error 26, unsuitable certificate purpose).
    pki = openssl_pki(tmp_path / "ca", prefix="EKU", int_eku=int_eku)
    run = run_tlskit("chain", *map(str, pki.all_certs), "--ca-file", str(pki.root), "--out", "full.pem", cwd=tmp_path)
    server_ok = openssl("verify", "-purpose", "sslserver", "-CAfile", str(pki.root), "-untrusted",
                        str(mixed_bundle(tmp_path / "ints.pem", *pki.intermediates)), str(pki.leaf), check=False)
    assert (server_ok.returncode == 0) is ok
    if ok:
        assert run.returncode == 0, run.stderr
        assert openssl_verify(pki.root, tmp_path / "full.pem").returncode == 0
    else:
        assert_one_line_error(run, 1, "allows codeSigning, not serverAuth")
        assert not (tmp_path / "full.pem").exists()


def test_real_public_chain_verifies_against_certifi(tmp_path, cli_spelling):
    # The default trust store, with a real Let's Encrypt chain at a time when it was valid
    # (library call: the CLI always verifies at the current time).
    import datetime as dt

    import certifi

    from peers_chain import PUBLIC_AT, PUBLIC_E1, PUBLIC_LEAF
    from tlskit.chain import ChainError, build_chain, load_inputs
    from tlskit.trust import TrustStore

    (tmp_path / "leaf.pem").write_bytes(PUBLIC_LEAF)
    (tmp_path / "e1.pem").write_bytes(PUBLIC_E1)
    at = dt.datetime.fromisoformat(PUBLIC_AT)
    inputs, _ = load_inputs([str(tmp_path / "e1.pem"), str(tmp_path / "leaf.pem")])
    report = build_chain(inputs, TrustStore.certifi(), host="cryptography.io", now=at)
    assert report.verified
    assert [link.role for link in report.links] == ["leaf", "intermediate", "root"]
    assert report.links[-1].source == "certifi"
    assert "ISRG Root X2" in report.links[-1].certificate.subject.rfc4514_string()
    (tmp_path / "full.pem").write_bytes(report.fullchain_pem())
    # openssl, at the same time and with the same roots, agrees.
    verify = openssl("verify", "-attime", str(int(at.timestamp())), "-CAfile", certifi.where(),
                     "-untrusted", str(tmp_path / "full.pem"), str(tmp_path / "full.pem"), check=False)
    assert verify.returncode == 0, verify.stderr
    with pytest.raises(ChainError) as caught:
        build_chain(load_inputs([str(tmp_path / "leaf.pem")])[0], TrustStore.certifi(), now=at)
    assert caught.value.missing_issuer == "/C=US/O=Let's Encrypt/CN=E1"
    assert "--fetch to download it from http://e1.i.lencr.org/" in caught.value.message
    # Today the same files are expired: the CLI says so, names the leaf, and exits 1.
    run = run_tlskit("chain", "leaf.pem", "e1.pem", "--out", "today.pem", cwd=tmp_path)
    assert_one_line_error(run, 1, "the leaf /CN=cryptography.io expired on 2024-02-20")


def test_a_sub_ca_chain_without_a_domain_certificate(tmp_path, pki):
    # What an intermediate CA serves as its own chain file: it starts at a CA, and verifies with CA rules.
    run = run_tlskit("chain", str(pki.intermediates[1]), str(pki.intermediates[0]), "--ca-file", str(pki.root),
                     "--out", "ca-chain.pem", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [c["subject"] for c in run.json["chain"]] == [pki.names["int2"], pki.names["int1"]]
    assert "leaf_is_ca" in [f["code"] for f in run.json["findings"]]
    assert openssl_verify(pki.root, tmp_path / "ca-chain.pem").returncode == 0


@pytest.mark.parametrize("host", ["bad host!", "", "a..b", "-x.example"])
def test_malformed_host_is_bad_input(tmp_path, tlskit_ca, host):
    run = run_tlskit("chain", *map(str, tlskit_ca.all_certs), "--ca-file", str(tlskit_ca.root), "--host", host,
                     "--out", "full.pem", cwd=tmp_path)
    assert_one_line_error(run, 2, "--host")
    assert not (tmp_path / "full.pem").exists()


def test_host_is_matched_like_a_client_would(tmp_path, tlskit_ca):
    for host in ("WWW.Example.TEST.", "example.test"):
        run = run_tlskit("chain", *map(str, tlskit_ca.all_certs), "--ca-file", str(tlskit_ca.root), "--host", host,
                         cwd=tmp_path)
        assert run.returncode == 0, (host, run.stderr)


@pytest.mark.parametrize("outform", ["PEM", "DER"])
def test_pkcs7_bundle_input(tmp_path, pki, outform):
    # Windows CAs hand out chains as .p7b/.p7c; openssl crl2pkcs7 makes the same thing.
    mixed = mixed_bundle(tmp_path / "all.pem", *reversed(pki.all_certs))
    openssl("crl2pkcs7", "-nocrl", "-certfile", str(mixed), "-outform", outform, "-out", str(tmp_path / "chain.p7b"))
    run = run_tlskit("chain", "chain.p7b", "--ca-file", str(pki.root), "--out", "full.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert pem_subjects(tmp_path / "full.pem") == expected_order(pki)
    assert openssl_verify(pki.root, tmp_path / "full.pem").returncode == 0


def test_a_key_inside_the_bundle_is_skipped_and_said(tmp_path, tlskit_ca):
    (tmp_path / "with-key.pem").write_bytes(tlskit_ca.leaf_key.read_bytes() + b"".join(p.read_bytes() for p in tlskit_ca.all_certs))
    run = run_tlskit("chain", "with-key.pem", "--ca-file", str(tlskit_ca.root), "--out", "full.pem", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "keys_ignored" in [f["code"] for f in run.json["findings"]]
    assert b"PRIVATE KEY" not in (tmp_path / "full.pem").read_bytes()
    assert openssl_verify(tlskit_ca.root, tmp_path / "full.pem").returncode == 0
