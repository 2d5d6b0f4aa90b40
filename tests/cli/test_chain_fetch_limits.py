"""`tlskit chain --fetch` keeps the bounds the README gives for the URLs a certificate names.

caIssuers (AIA): only http and https, 10 s, 1 MiB. CRL distribution points: http only, 15 s for the
whole download, 20 MiB. A download that fails is one error line and exit 3. The servers here are local
and misbehave on purpose: they stall, drip, send too much, or redirect to another scheme.
"""

from __future__ import annotations

import http.server
import time

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from conftest import assert_one_line_error, free_port, run_tlskit
from peers_chain import serve_http
from peers_verdicts import Pki

pytestmark = pytest.mark.slow

AIA_LIMIT, AIA_SECONDS = 1 << 20, 10
CRL_LIMIT, CRL_SECONDS = 20 << 20, 15
AIA_FIX = "check the network, or add the intermediate to the inputs"
CRL_FIX = "check the network, or pass the CRL with --crl"


class _Misbehaving(http.server.BaseHTTPRequestHandler):
    """What each path does is in ``routes``: ("body", bytes), ("redirect", url), ("stall",), ("drip",)."""

    routes: dict[str, tuple] = {}
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        kind, *rest = self.routes.get(self.path, ("missing",))
        try:
            if kind == "body":
                self.send_response(200)
                self.send_header("Content-Length", str(len(rest[0])))
                self.end_headers()
                self.wfile.write(rest[0])
            elif kind == "redirect":
                self.send_response(302)
                self.send_header("Location", rest[0])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif kind in ("stall", "drip"):
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.flush()
                for _ in range(120):                 # at most a minute, far past any bound
                    if kind == "drip":
                        self.wfile.write(b"x")
                        self.wfile.flush()
                    time.sleep(0.5)
            else:
                self.send_error(404)
        except OSError:    # the client gave up: what the bound is for
            pass


@pytest.fixture
def peer():
    routes: dict[str, tuple] = {}
    port = free_port()
    with serve_http(type("Handler", (_Misbehaving,), {"routes": routes}), port) as base:
        yield base, routes


@pytest.fixture
def pki(tmp_path):
    certs = Pki(tmp_path / "pki")
    root = certs.issue("root", "Fetch Root", None, ca=True)
    inter = certs.issue("inter", "Fetch Intermediate", root, ca=True)
    return certs, root, inter


def _leaf_pointing_at(certs: Pki, inter, url: str):
    aia = x509.AuthorityInformationAccess([x509.AccessDescription(
        AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(url))])
    return certs.issue("leaf", "www.example.test", inter, ca=False, extensions=[(aia, False)])


def _fetch_issuer(tmp_path, certs, root, inter, url: str):
    leaf = _leaf_pointing_at(certs, inter, url)
    started = time.monotonic()
    run = run_tlskit("chain", str(leaf.path), "--ca-file", str(root.path), "--fetch", cwd=tmp_path)
    return run, time.monotonic() - started


def _padded_pem(cert_pem: bytes, size: int) -> bytes:
    """The certificate's PEM followed by blank lines up to exactly ``size`` bytes (PEM readers skip them)."""
    return cert_pem + b"\n" * (size - len(cert_pem))


def test_an_issuer_of_exactly_one_mib_is_read(tmp_path, pki, peer):
    certs, root, inter = pki
    base, routes = peer
    routes["/exact.pem"] = ("body", _padded_pem(inter.path.read_bytes(), AIA_LIMIT))
    run, _ = _fetch_issuer(tmp_path, certs, root, inter, f"{base}/exact.pem")
    assert run.returncode == 0, run.stderr
    assert f"fetched /CN=Fetch Intermediate from {base}/exact.pem" in run.stderr


def test_an_issuer_one_byte_over_one_mib_is_refused(tmp_path, pki, peer):
    certs, root, inter = pki
    base, routes = peer
    routes["/over.pem"] = ("body", _padded_pem(inter.path.read_bytes(), AIA_LIMIT + 1))
    run, _ = _fetch_issuer(tmp_path, certs, root, inter, f"{base}/over.pem")
    assert_one_line_error(run, 3)
    assert run.stderr.strip() == (f"error: {base}/over.pem served more than {AIA_LIMIT} bytes "
                                  f"(that is not the issuer certificate); {AIA_FIX}")


@pytest.mark.parametrize("kind", ["stall", "drip"])
def test_an_issuer_download_ends_after_ten_seconds(tmp_path, pki, peer, kind):
    """A server that sends nothing after its headers, and one that drips a byte every half second (each
    read is quick, the whole is not): both are cut off at the 10 s the README gives. This waits the
    bound out: the wait is what is tested."""
    certs, root, inter = pki
    base, routes = peer
    routes[f"/{kind}"] = (kind,)
    run, took = _fetch_issuer(tmp_path, certs, root, inter, f"{base}/{kind}")
    assert_one_line_error(run, 3)
    assert run.stderr.strip() == (f"error: cannot fetch the issuer certificate from {base}/{kind} "
                                  f"(it did not arrive within {AIA_SECONDS} s); {AIA_FIX}")
    assert AIA_SECONDS - 0.5 <= took < AIA_SECONDS + 5, took


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1:1/int.der"])
def test_issuer_urls_and_redirects_outside_http_are_not_followed(tmp_path, pki, peer, target):
    certs, root, inter = pki
    base, routes = peer
    refusal = "only http and https caIssuers URLs are fetched); add the intermediate to the inputs"
    run, _ = _fetch_issuer(tmp_path, certs, root, inter, target)
    assert_one_line_error(run, 3)
    assert run.stderr.strip() == f"error: cannot fetch {target} ({refusal}"
    routes["/moved"] = ("redirect", target)
    run, _ = _fetch_issuer(tmp_path, certs, root, inter, f"{base}/moved")
    assert_one_line_error(run, 3)
    assert run.stderr.strip() == f"error: cannot fetch {base}/moved ({refusal}"


# --- CRL distribution points -----------------------------------------------------------------------

def _fetch_crl(tmp_path, certs, root, inter, url: str):
    cdp = x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)])
    leaf = certs.issue("leaf", "www.example.test", inter, ca=False, extensions=[(cdp, False)])
    started = time.monotonic()
    run = run_tlskit("chain", str(leaf.path), str(inter.path), "--ca-file", str(root.path), "--fetch", cwd=tmp_path)
    return run, time.monotonic() - started


def test_a_crl_over_twenty_mib_is_refused(tmp_path, pki, peer):
    certs, root, inter = pki
    base, routes = peer
    routes["/big.crl"] = ("body", b"\n" * (CRL_LIMIT + 1))
    run, _ = _fetch_crl(tmp_path, certs, root, inter, f"{base}/big.crl")
    assert_one_line_error(run, 3)
    assert run.stderr.strip() == f"error: {base}/big.crl served more than {CRL_LIMIT} bytes (that is not a CRL); {CRL_FIX}"


def test_a_crl_download_ends_after_fifteen_seconds(tmp_path, pki, peer):
    """The drip never lets one read time out; the whole download still ends at 15 s (waited out: the
    wait is what is tested)."""
    certs, root, inter = pki
    base, routes = peer
    routes["/drip.crl"] = ("drip",)
    run, took = _fetch_crl(tmp_path, certs, root, inter, f"{base}/drip.crl")
    assert_one_line_error(run, 3)
    assert run.stderr.strip() == (f"error: cannot fetch a CRL from {base}/drip.crl "
                                  f"(it did not arrive within {CRL_SECONDS} s); {CRL_FIX}")
    assert CRL_SECONDS - 0.5 <= took < CRL_SECONDS + 5, took


def test_a_crl_redirect_to_https_is_not_followed(tmp_path, pki, peer):
    certs, root, inter = pki
    base, routes = peer
    routes["/moved.crl"] = ("redirect", "https://127.0.0.1:1/int.crl")
    run, _ = _fetch_crl(tmp_path, certs, root, inter, f"{base}/moved.crl")
    assert_one_line_error(run, 3)
    assert run.stderr.strip() == (f"error: cannot fetch a CRL from https://127.0.0.1:1/int.crl "
                                  f"(only http URLs are followed); {CRL_FIX}")
