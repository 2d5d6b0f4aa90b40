"""`tlskit serve` as a TLS scanner sees it: testssl.sh (the Debian package), and the openssl binary.

testssl runs its protocol, cipher-list, forward-secrecy, server-preference, server-default, HTTP-header
and vulnerability checks with ``--jsonfile``; the test fails on any finding of severity MEDIUM, HIGH or
CRITICAL, on any scan problem, and when a check that must have run is missing. Below, the openssl
binary tries every TLS 1.2 suite it knows, one handshake each; it links the same libssl as the server,
so no suite the server could negotiate is left out, and testssl's cipher-per-protocol scan (-E) would
only ask the same again.

The server uses a certificate the way production does (`--cert/--key`): an RSA leaf under an
intermediate, made by the openssl binary, with CRL and OCSP URLs like a public CA's. testssl grades
such attributes of the certificate (no revocation URL is a HIGH finding), and they are decided by
whoever issues the certificate, not by the server; this keeps every finding about tlskit's own TLS
and HTTP behaviour, with no allow-list. The zero-config local CA's certificate is checked by openssl
below for protocols and suites (EC suites), since its protocol and cipher settings are the same code.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import openssl, require_binary
from peers_serve import start_serve

pytestmark = pytest.mark.slow
BAD = {"MEDIUM", "HIGH", "CRITICAL"}
# Old protocols, and CBC suites with SHA-1 MACs: what "no legacy TLS" means for a 2020s server.
# (SSLv3 is tested by testssl's own sockets: Debian's openssl cannot even offer it.)
LEGACY_PROTOCOLS = {"tls1": "-tls1", "tls1_1": "-tls1_1"}


def _testssl() -> str:
    """Debian installs the script as `testssl`; upstream calls it `testssl.sh`."""
    import shutil

    return shutil.which("testssl") or require_binary("testssl.sh")


def _make_pki(directory: Path) -> dict[str, Path]:
    """root -> intermediate -> RSA leaf for localhost/127.0.0.1, with CRL and OCSP URLs; all by openssl."""
    d = directory
    exts = d / "ext.cnf"
    exts.write_text(
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        "[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        "crlDistributionPoints=URI:http://127.0.0.1:9/intermediate.crl\n"
        "authorityInfoAccess=OCSP;URI:http://127.0.0.1:9/ocsp,caIssuers;URI:http://127.0.0.1:9/intermediate.der\n"
    )
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "root.key"), "-out", str(d / "root.pem"),
            "-subj", "/O=tlskit tests/CN=testssl root", "-days", "90", "-sha256",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "inter.key"), "-out", str(d / "inter.csr"),
            "-subj", "/O=tlskit tests/CN=testssl intermediate")
    openssl("x509", "-req", "-in", str(d / "inter.csr"), "-CA", str(d / "root.pem"), "-CAkey", str(d / "root.key"),
            "-CAcreateserial", "-out", str(d / "inter.pem"), "-days", "90", "-sha256", "-extfile", str(exts),
            "-extensions", "ca")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "leaf.key"), "-out", str(d / "leaf.csr"),
            "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", str(d / "leaf.csr"), "-CA", str(d / "inter.pem"), "-CAkey", str(d / "inter.key"),
            "-CAcreateserial", "-out", str(d / "leaf.pem"), "-days", "90", "-sha256", "-extfile", str(exts),
            "-extensions", "leaf")
    (d / "fullchain.pem").write_bytes((d / "leaf.pem").read_bytes() + (d / "inter.pem").read_bytes())
    return {"root": d / "root.pem", "fullchain": d / "fullchain.pem", "key": d / "leaf.key"}


@pytest.fixture(scope="module")
def production_server(tmp_path_factory):
    require_binary("openssl")
    work = tmp_path_factory.mktemp("testssl")
    pki = _make_pki(work)
    served = start_serve(work, "--cert", str(pki["fullchain"]), "--key", str(pki["key"]))
    served.ca = pki["root"]
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def zero_config_server(tmp_path_factory):
    work = tmp_path_factory.mktemp("zeroconf")
    served = start_serve(work)
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def scan(production_server, tmp_path_factory) -> list[dict]:
    testssl = _testssl()
    out = tmp_path_factory.mktemp("scan") / "testssl.json"
    command = [testssl, "--quiet", "--warnings", "off", "--color", "0", "--jsonfile", str(out),
               "--ip", "127.0.0.1", "--add-ca", str(production_server.ca),
               # protocols, standard cipher lists, forward secrecy, server preference, server defaults,
               # HTTP headers and all vulnerabilities
               "-p", "-s", "-f", "-P", "-S", "-h", "-U",
               f"localhost:{production_server.port}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert out.exists(), f"testssl wrote no JSON (exit {done.returncode}): {done.stderr[-2000:]}{done.stdout[-2000:]}"
    findings = json.loads(out.read_text())
    assert isinstance(findings, list) and len(findings) > 50, findings
    return findings


def _by_id(findings: list[dict]) -> dict[str, dict]:
    return {f["id"]: f for f in findings}


def _testssl_reports_nothing_medium_or_worse(scan):
    bad = [f"{f['severity']} {f['id']}: {f['finding']}" for f in scan if f["severity"] in BAD]
    assert bad == [], "\n".join(bad)
    problems = [f"{f['id']}: {f['finding']}" for f in scan if f["severity"] == "FATAL" or f["id"] == "scanProblem"]
    assert problems == [], problems


def _testssl_checked_what_it_must(scan):
    """A scan that silently skipped the checks would pass the check above, so the checks are named here."""
    ids = _by_id(scan)
    for required in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "cipherlist_NULL", "cipherlist_aNULL",
                     "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_AVERAGE",
                     "cipher_order", "HSTS_time",
                     "heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego", "secure_client_renego", "CRIME_TLS",
                     "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4", "BREACH",
                     "cert_chain_of_trust"):
        assert required in ids, f"testssl did not report {required}"
    # Forward secrecy: "PFS" in testssl 3.0, "FS" from 3.1 on.
    assert ids.get("PFS", ids.get("FS", {})).get("severity") == "OK", ids.get("PFS", ids.get("FS"))
    # The certificate chain was verified up to the root it was given: the scan saw the served chain.
    assert ids["cert_chain_of_trust"]["severity"] == "OK", ids["cert_chain_of_trust"]


def _testssl_sees_only_tls12_and_tls13(scan):
    ids = _by_id(scan)
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert ids[old]["finding"].startswith("not offered"), ids[old]
    assert ids["TLS1_2"]["finding"].startswith("offered"), ids["TLS1_2"]
    assert ids["TLS1_3"]["finding"].startswith("offered"), ids["TLS1_3"]


def _testssl_offers_no_cbc_or_sha1_suites(scan):
    ids = _by_id(scan)
    # -s sends its lists as raw cipher codes, so suites this openssl does not know are asked for too:
    # AVERAGE is every CBC suite (with SHA-1 or SHA-2 MACs), 3DES_IDEA the 64-bit block ciphers.
    for listed in ("cipherlist_3DES_IDEA", "cipherlist_AVERAGE"):
        assert ids[listed]["finding"].startswith("not offered"), ids[listed]
    # -f names every forward-secret suite offered; the TLS 1.2 ones are ECDHE with AEAD.
    offered = ids.get("PFS_ciphers", ids.get("FS_ciphers", {})).get("finding", "").split()
    tls12 = [name for name in offered if not name.startswith("TLS_")]     # TLS_* are TLS 1.3's
    assert tls12 and all(n.startswith("ECDHE-") and ("GCM" in n or "CHACHA20" in n) for n in tls12), offered


def test_testssl_scan_of_serve(scan):
    """One scan (over half a minute of CPU) answers all four questions; a module fixture shared by four tests
    would be rebuilt whenever pytest-xdist interleaves another module's tests on the same worker."""
    _testssl_reports_nothing_medium_or_worse(scan)
    _testssl_checked_what_it_must(scan)
    _testssl_sees_only_tls12_and_tls13(scan)
    _testssl_offers_no_cbc_or_sha1_suites(scan)


# --- the same guarantees, checked with the openssl binary on both certificate kinds -----------------


def _handshake(server, *flags: str) -> subprocess.CompletedProcess:
    binary = require_binary("openssl")
    return subprocess.run([binary, "s_client", "-connect", f"127.0.0.1:{server.port}", "-servername", "localhost",
                           "-CAfile", str(server.ca), *flags], input=b"", capture_output=True, timeout=30)


def _offered_tls12_suites() -> list[str]:
    """Every TLS 1.2 suite this openssl knows, at security level 0 so old ones are tried too."""
    out = openssl("ciphers", "-tls1_2", "-s", "ALL:COMPLEMENTOFALL:@SECLEVEL=0").stdout.decode().strip()
    return [name for name in out.split(":") if name and not name.startswith("TLS_")]


@pytest.mark.parametrize("which", ["production_server", "zero_config_server"])
def test_openssl_cannot_negotiate_legacy_protocols(request, which):
    server = request.getfixturevalue(which)
    for flag in LEGACY_PROTOCOLS.values():
        run = _handshake(server, flag, "-cipher", "ALL:@SECLEVEL=0")
        text = (run.stdout + run.stderr).decode(errors="replace")
        assert run.returncode != 0 or "Cipher is (NONE)" in text, (flag, text[-1500:])
    ok = _handshake(server, "-tls1_2", "-verify_return_error")
    assert ok.returncode == 0 and b"Protocol  : TLSv1.2" in ok.stdout, ok.stdout[-1500:]


@pytest.mark.parametrize("which", ["production_server", "zero_config_server"])
def test_openssl_finds_only_aead_forward_secret_suites(request, which):
    """Every TLS 1.2 suite the openssl binary knows, one handshake each: what the server accepts is
    ECDHE with AEAD (no CBC, no SHA-1 MAC, no RSA key exchange). TLS 1.0 and 1.1 are refused above, and
    every TLS 1.3 suite is AEAD with forward secrecy by definition."""
    server = request.getfixturevalue(which)
    accepted = []
    for suite in _offered_tls12_suites():
        run = _handshake(server, "-tls1_2", "-cipher", f"{suite}:@SECLEVEL=0")
        if run.returncode == 0 and b"Cipher is (NONE)" not in run.stdout:
            accepted.append(suite)
    assert accepted, "no TLS 1.2 suite at all was accepted"
    assert all(s.startswith("ECDHE-") and ("GCM" in s or "CHACHA20" in s) for s in accepted), accepted
