"""Revocation against real peers: CRLs given and fetched from a local HTTP server, OCSP from `openssl ocsp`.

Each CRL verdict is compared with `openssl verify -crl_check` on the same files, each OCSP verdict with
what `openssl ocsp` as a client says about the same responder.
"""

from __future__ import annotations

import http.server
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from conftest import assert_one_line_error, free_port, openssl, run_tlskit
from peers_chain import serve_http
from peers_tls import s_server
from peers_verdicts import (DAY, NOW, Pki, der_extension, http_peer, make_crl, ocsp_responder, openssl_verify,
                            resign_crl)


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "pki")


def cdp(url: str) -> tuple[x509.ExtensionType, bool]:
    return x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None,
                                                              None)]), False


def aia_ocsp(url: str) -> tuple[x509.ExtensionType, bool]:
    return x509.AuthorityInformationAccess([x509.AccessDescription(
        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url))]), False


def chain_args(root, inter, leaf) -> list[str]:
    return ["chain", str(leaf.path), str(inter.path), "--ca-file", str(root.path), "--json"]


def openssl_crl_code(root, inter, leaf, crl) -> int:
    return openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path], extra=("-crl_check", "-CRLfile",
                                                                                   str(crl)))[0]


# ------------------------------------------------------------------------------------------- CRLs


@pytest.mark.parametrize("der", [False, True], ids=["pem", "der"])
def test_a_crl_that_lists_the_leaf_is_23(tmp_path, pki, der):
    root, inter, leaf = pki.chain()
    revoked = make_crl(pki, "revoked", inter, [leaf], der=der)
    run = run_tlskit(*chain_args(root, inter, leaf), "--crl", str(revoked), cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    assert [(p["code"], p["rule"], p["depth"]) for p in run.json["problems"]] == [(23, "revoked", 0)]
    assert run.json["revocation"][0]["status"] == "revoked"
    assert run.json["revocation"][0]["reason"] == "key_compromise"
    assert openssl_crl_code(root, inter, leaf, revoked) == 23
    clean = make_crl(pki, "clean", inter, [], der=der)
    run = run_tlskit(*chain_args(root, inter, leaf), "--crl", str(clean), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [(r["depth"], r["method"], r["status"]) for r in run.json["revocation"]] == [(0, "crl", "good")]
    assert openssl_crl_code(root, inter, leaf, clean) == 0


def test_an_expired_crl_is_12(tmp_path, pki):
    root, inter, leaf = pki.chain()
    stale = make_crl(pki, "stale", inter, [], last_update=NOW - 9 * DAY, next_update=NOW - DAY / 6)
    run = run_tlskit(*chain_args(root, inter, leaf), "--crl", str(stale), cwd=tmp_path)
    assert run.returncode == 1
    assert [(p["code"], p["rule"]) for p in run.json["problems"]] == [(12, "crl_expired")]
    assert openssl_crl_code(root, inter, leaf, stale) == 12
    # At a time the CRL was current, it answers.
    at = (NOW - DAY / 3).strftime("%Y-%m-%dT%H:%M:%SZ")
    earlier = run_tlskit(*chain_args(root, inter, leaf), "--crl", str(stale), "--at", at, cwd=tmp_path)
    assert earlier.returncode == 0, earlier.stderr


def test_a_crl_signed_by_another_key_is_8(tmp_path, pki):
    root, inter, leaf = pki.chain()
    forged = make_crl(pki, "forged", inter, [], signer_key=ec.generate_private_key(ec.SECP256R1()))
    run = run_tlskit(*chain_args(root, inter, leaf), "--crl", str(forged), cwd=tmp_path)
    assert run.returncode == 1
    assert [(p["code"], p["rule"]) for p in run.json["problems"]] == [(8, "crl_signature")]
    assert openssl_crl_code(root, inter, leaf, forged) == 8


def test_crl_files_are_repeatable_and_a_leaf_without_one_is_3(tmp_path, pki):
    root, inter, leaf = pki.chain()
    other_root, other_inter, _ = pki.chain("other-")
    unrelated = make_crl(pki, "unrelated", other_inter, [])
    run = run_tlskit(*chain_args(root, inter, leaf), "--crl", str(unrelated), cwd=tmp_path)
    assert run.returncode == 1
    assert [(p["code"], p["rule"]) for p in run.json["problems"]] == [(3, "crl_missing")]
    assert openssl_crl_code(root, inter, leaf, unrelated) == 3
    revoked = make_crl(pki, "revoked", inter, [leaf])
    run = run_tlskit(*chain_args(root, inter, leaf), "--crl", str(unrelated), "--crl", str(revoked), cwd=tmp_path)
    assert [p["code"] for p in run.json["problems"]] == [23]


def test_a_file_that_is_no_crl_is_an_input_error(tmp_path, pki):
    root, inter, leaf = pki.chain()
    junk = tmp_path / "junk.crl"
    junk.write_bytes(b"not a CRL\n")
    assert_one_line_error(run_tlskit(*chain_args(root, inter, leaf)[:-1], "--crl", str(junk), cwd=tmp_path), 2,
                          "is not a CRL")


def cdp_chain(pki, port: int):
    """root -> intermediate -> leaf whose CRL distribution point is http://127.0.0.1:PORT/int.crl."""
    root = pki.root()
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True)
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False,
                     extensions=[cdp(f"http://127.0.0.1:{port}/int.crl")])
    return root, inter, leaf


def test_fetch_reads_the_distribution_point(tmp_path, pki):
    port = free_port()
    root, inter, leaf = cdp_chain(pki, port)
    revoked = make_crl(pki, "revoked", inter, [leaf], der=True)
    clean = make_crl(pki, "clean", inter, [], der=True)
    routes = {"/int.crl": (revoked.read_bytes(), "application/pkix-crl")}
    with http_peer(routes, port):
        run = run_tlskit(*chain_args(root, inter, leaf), "--fetch", cwd=tmp_path)
        assert run.returncode == 1, run.stderr
        assert [(p["code"], p["depth"]) for p in run.json["problems"]] == [(23, 0)]
        assert run.json["revocation"][0]["source"] == f"http://127.0.0.1:{port}/int.crl"
        routes["/int.crl"] = (clean.read_bytes(), "application/pkix-crl")
        run = run_tlskit(*chain_args(root, inter, leaf), "--fetch", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert run.json["revocation"][0]["status"] == "good"
        del routes["/int.crl"]
        gone = run_tlskit(*chain_args(root, inter, leaf)[:-1], "--fetch", cwd=tmp_path)
        assert_one_line_error(gone, 3, "HTTP 404")
    # Without --fetch the distribution point is not asked.
    assert run_tlskit(*chain_args(root, inter, leaf), cwd=tmp_path).returncode == 0


def crl_problems(run) -> list[tuple[str, int, int]]:
    return [(p["rule"], p["code"], p["depth"]) for p in run.json["problems"]]


def assert_crl_refused(tmp_path, root, inter, leaf, crl, expected, fix: str | None = None) -> None:
    """The verdict fails with exactly ``expected``, ``--lenient`` or not (revocation rules are no findings);
    ``fix``, words of what the user is told to do, is in the one-line error and the JSON's ``error``."""
    for lenient in ((), ("--lenient",)):
        run = run_tlskit(*chain_args(root, inter, leaf), "--crl", str(crl), *lenient, cwd=tmp_path)
        assert run.returncode == 1, run.stdout + run.stderr
        assert crl_problems(run) == expected
        if fix is not None:
            assert fix in run.json["error"] and "--ocsp instead of --crl" in run.json["error"], run.json["error"]
    if fix is not None:
        human = run_tlskit(*chain_args(root, inter, leaf)[:-1], "--crl", str(crl), cwd=tmp_path)
        assert human.returncode == 1 and human.stdout == ""
        assert_one_line_error(human, 1, fix)


_ODD = "1.3.6.1.4.1.99999.3"  # an extension nobody processes


def test_a_delta_crl_is_no_complete_list(tmp_path, pki):
    root, inter, leaf = pki.chain()
    delta = make_crl(pki, "delta", inter, [leaf], extensions=[(x509.DeltaCRLIndicator(1), True)])
    # A delta CRL lists only the changes since its base (crl_delta): it does not cover the leaf on its own.
    assert_crl_refused(tmp_path, root, inter, leaf, delta, [("crl_missing", 3, 0)])
    # OpenSSL 3.0 takes the delta as if it were complete, even without -use_deltas.
    assert openssl_crl_code(root, inter, leaf, delta) == 23
    full = make_crl(pki, "full", inter, [leaf])
    run = run_tlskit(*chain_args(root, inter, leaf), "--crl", str(delta), "--crl", str(full), cwd=tmp_path)
    assert run.returncode == 1 and crl_problems(run) == [("revoked", 23, 0)]


def test_a_crl_for_ca_certificates_only_does_not_cover_a_leaf(tmp_path, pki):
    root, inter, leaf = pki.chain()
    only_cas = make_crl(pki, "only-cas", inter, [leaf], extensions=[(x509.IssuingDistributionPoint(
        None, None, only_contains_user_certs=False, only_contains_ca_certs=True, only_some_reasons=None,
        indirect_crl=False, only_contains_attribute_certs=False), True)])
    # Out of its scope (crl_scope) the CRL says nothing about the leaf, which is then not covered at all.
    assert_crl_refused(tmp_path, root, inter, leaf, only_cas, [("crl_missing", 3, 0)])
    assert openssl_crl_code(root, inter, leaf, only_cas) == 44  # "Different CRL scope"
    only_users = make_crl(pki, "only-users", inter, [leaf], extensions=[(x509.IssuingDistributionPoint(
        None, None, only_contains_user_certs=True, only_contains_ca_certs=False, only_some_reasons=None,
        indirect_crl=False, only_contains_attribute_certs=False), True)])
    run = run_tlskit(*chain_args(root, inter, leaf), "--crl", str(only_users), cwd=tmp_path)
    assert run.returncode == 1 and crl_problems(run) == [("revoked", 23, 0)]
    assert openssl_crl_code(root, inter, leaf, only_users) == 23


@pytest.mark.parametrize("scope", ["indirect", "some-reasons"])
def test_indirect_and_partial_crls_are_36(tmp_path, pki, scope):
    root, inter, leaf = pki.chain()
    point = x509.IssuingDistributionPoint(
        None, None, only_contains_user_certs=False, only_contains_ca_certs=False,
        only_some_reasons=frozenset({x509.ReasonFlags.key_compromise}) if scope == "some-reasons" else None,
        indirect_crl=scope == "indirect", only_contains_attribute_certs=False)
    crl = make_crl(pki, scope, inter, [leaf], extensions=[(point, True)])
    assert_crl_refused(tmp_path, root, inter, leaf, crl, [("crl_scope_unsupported", 36, 0)])
    # OpenSSL leaves such CRLs out without -extended_crl, so for it the leaf has no CRL (3).
    assert openssl_crl_code(root, inter, leaf, crl) == 3


def test_a_crl_with_an_unknown_critical_extension_is_36(tmp_path, pki):
    root, inter, leaf = pki.chain()
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier(_ODD), b"\x05\x00")
    crl = make_crl(pki, "critical", inter, [], extensions=[(odd, True)])
    assert_crl_refused(tmp_path, root, inter, leaf, crl, [("crl_critical_extension", 36, 0)],
                      "pass a CRL without that critical extension")
    assert openssl_crl_code(root, inter, leaf, crl) == 36


def test_a_crl_entry_with_an_unknown_critical_extension_is_36(tmp_path, pki):
    root, inter, leaf = pki.chain()
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier(_ODD), b"\x05\x00")
    crl = make_crl(pki, "entry", inter, [leaf], entry_extensions=[(odd, True)])
    assert_crl_refused(tmp_path, root, inter, leaf, crl, [("crl_entry_extension", 36, 0)],
                      "whose entries carry no critical extension")
    assert openssl_crl_code(root, inter, leaf, crl) == 36


def test_a_crl_with_a_duplicated_extension_is_36(tmp_path, pki):
    from cryptography.hazmat.primitives.serialization import Encoding

    root, inter, leaf = pki.chain()
    built = x509.load_pem_x509_crl(make_crl(pki, "built", inter, [leaf]).read_bytes())
    number = built.extensions.get_extension_for_class(x509.CRLNumber).value.public_bytes()
    crl = pki.dir / "duplicated.pem"
    crl.write_bytes(resign_crl(built, inter.key, [der_extension("2.5.29.20", number)]).public_bytes(Encoding.PEM))
    assert_crl_refused(tmp_path, root, inter, leaf, crl, [("crl_malformed", 36, 0)],
                      "reissue it with each extension once")
    # RFC 5280 4.2: an extension appears at most once; OpenSSL 3.0 reads the CRL anyway and applies it.
    assert openssl_crl_code(root, inter, leaf, crl) == 23


class _Dripping(http.server.BaseHTTPRequestHandler):
    """Answers one byte every 0.2 s, for ever: no single read times out."""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(500):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass


def test_downloads_are_bounded_in_size_and_in_total_time():
    from tlskit.errors import NetworkError
    from tlskit.fetching import http_request

    with http_peer({"/big": (b"x" * 5000, "application/pkix-crl")}) as base:
        assert len(http_request(f"{base}/big", "a CRL", limit=5000, timeout=5)) == 5000
        with pytest.raises(NetworkError, match="more than 4999 bytes"):
            http_request(f"{base}/big", "a CRL", limit=4999, timeout=5)
    with pytest.raises(NetworkError, match="only http"):
        http_request("https://127.0.0.1:9/x.crl", "a CRL", limit=10, timeout=1)
    with serve_http(_Dripping) as base:
        started = time.monotonic()
        with pytest.raises(NetworkError, match="within 1"):
            http_request(f"{base}/crl", "a CRL", limit=1 << 20, timeout=1.0)
        assert time.monotonic() - started < 3


# ------------------------------------------------------------------------------------------- OCSP


def ocsp_chain(pki, port: int):
    root = pki.root()
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True)
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False, extensions=[aia_ocsp(f"http://127.0.0.1:{port}")])
    return root, inter, leaf


def openssl_ocsp_says(url: str, inter, leaf, root) -> str:
    result = openssl("ocsp", "-issuer", str(inter.path), "-cert", str(leaf.path), "-url", url, "-CAfile",
                     str(root.path), "-verify_other", str(inter.path), check=False)
    return (result.stdout + result.stderr).decode(errors="replace")


@pytest.mark.parametrize("state", ["V", "R"])
def test_chain_ocsp_asks_the_responder(tmp_path, pki, state):
    port = free_port()
    root, inter, leaf = ocsp_chain(pki, port)
    with ocsp_responder(tmp_path, [(leaf, state)], inter, port=port) as url:
        run = run_tlskit(*chain_args(root, inter, leaf), "--ocsp", cwd=tmp_path)
        says = openssl_ocsp_says(url, inter, leaf, root)
    leaf_status = run.json["revocation"][0]
    assert (leaf_status["depth"], leaf_status["method"], leaf_status["source"]) == (0, "ocsp", url)
    assert leaf_status["nonce"] == "echoed"
    # The intermediate names no responder: said, not failed.
    assert [(r["depth"], r["status"]) for r in run.json["revocation"][1:]] == [(1, "unchecked")]
    if state == "V":
        assert run.returncode == 0, run.stderr
        assert leaf_status["status"] == "good"
        assert "Response verify OK" in says and f"{leaf.path}: good" in says, says
    else:
        assert run.returncode == 1
        assert [(p["code"], p["rule"], p["depth"]) for p in run.json["problems"]] == [(23, "revoked", 0)]
        assert leaf_status["status"] == "revoked" and leaf_status["reason"] == "key_compromise"
        assert f"{leaf.path}: revoked" in says


def test_ocsp_responders_the_issuer_did_not_authorize_are_74(tmp_path, pki):
    port = free_port()
    root, inter, leaf = ocsp_chain(pki, port)
    delegated = pki.issue("delegated", "Verdict OCSP", inter, ca=False, sans=None,
                          eku=(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False))
    stranger = pki.issue("stranger", "Verdict OCSP", inter, ca=False, sans=None)  # serverAuth only
    with ocsp_responder(tmp_path, [(leaf, "V")], inter, signer=delegated, port=port) as url:
        run = run_tlskit(*chain_args(root, inter, leaf), "--ocsp", cwd=tmp_path)
        assert "Response verify OK" in openssl_ocsp_says(url, inter, leaf, root)
    assert run.returncode == 0, run.stderr
    with ocsp_responder(tmp_path, [(leaf, "V")], inter, signer=stranger, port=port) as url:
        run = run_tlskit(*chain_args(root, inter, leaf), "--ocsp", cwd=tmp_path)
        says = openssl_ocsp_says(url, inter, leaf, root)
    assert run.returncode == 1
    assert [(p["code"], p["rule"]) for p in run.json["problems"]] == [(74, "ocsp_unreliable")]
    assert run.json["revocation"][0]["status"] == "unreliable"
    assert "Response Verify Failure" in says, says


def test_ocsp_responder_down_is_exit_3(tmp_path, pki):
    root, inter, leaf = ocsp_chain(pki, free_port())
    assert_one_line_error(run_tlskit(*chain_args(root, inter, leaf)[:-1], "--ocsp", cwd=tmp_path), 3, "OCSP")


# ------------------------------------------------------------------------------------------- probe


def probe_args(server, root) -> list[str]:
    return ["probe", server.target, "--servername", "www.example.test", "--ca-file", str(root.path), "--json"]


def test_probe_ocsp_crl_and_at_against_s_server(tmp_path, pki):
    port = free_port()
    root, inter, leaf = ocsp_chain(pki, port)
    revoked = make_crl(pki, "revoked", inter, [leaf])
    key = leaf.path.with_suffix(".key")
    with s_server(leaf.path, key, inter.path) as server:
        good = run_tlskit(*probe_args(server, root), cwd=tmp_path)
        assert good.returncode == 0, good.stdout + good.stderr
        crl = run_tlskit(*probe_args(server, root), "--crl", str(revoked), cwd=tmp_path)
        assert crl.returncode == 1
        assert [p["code"] for p in crl.json["verification"]["problems"]] == [23]
        later = (NOW + 60 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
        expired = run_tlskit(*probe_args(server, root), "--at", later, cwd=tmp_path)
        assert expired.returncode == 1
        assert [(p["code"], p["depth"]) for p in expired.json["verification"]["problems"]] == [(10, 0), (10, 1),
                                                                                              (10, 2)]
        assert_one_line_error(run_tlskit("probe", server.target, "--at", "soon", cwd=tmp_path), 2, "--at")
        with ocsp_responder(tmp_path, [(leaf, "R")], inter, port=port):
            run = run_tlskit(*probe_args(server, root), "--ocsp", cwd=tmp_path)
            text = run_tlskit(*probe_args(server, root)[:-1], "--ocsp", cwd=tmp_path)
    assert run.returncode == 1
    assert [(p["code"], p["rule"]) for p in run.json["verification"]["problems"]] == [(23, "revoked")]
    assert run.json["verification"]["revocation"][0]["method"] == "ocsp"
    assert "23 certificate revoked" in text.stdout


def test_probe_fetch_reads_the_crl_distribution_point(tmp_path, pki):
    port = free_port()
    root, inter, leaf = cdp_chain(pki, port)
    revoked = make_crl(pki, "revoked", inter, [leaf], der=True).read_bytes()
    asked: list[str] = []

    def serve_crl(body):
        asked.append("GET")
        return revoked, "application/pkix-crl"

    with s_server(leaf.path, leaf.path.with_suffix(".key"), inter.path) as server, \
            http_peer({"/int.crl": serve_crl}, port) as base:
        unfetched = run_tlskit(*probe_args(server, root), cwd=tmp_path)
        assert unfetched.returncode == 0, unfetched.stdout + unfetched.stderr
        assert asked == [] and unfetched.json["verification"]["revocation"] == []
        run = run_tlskit(*probe_args(server, root), "--fetch", cwd=tmp_path)
        text = run_tlskit(*probe_args(server, root)[:-1], "--fetch", cwd=tmp_path)
        says = openssl("s_client", "-connect", server.target, "-servername", "www.example.test", "-CAfile",
                       str(root.path), "-crl_check", "-crl_download", input=b"", check=False).stdout.decode()
    assert run.returncode == 1, run.stdout + run.stderr
    verification = run.json["verification"]
    assert [(p["code"], p["rule"], p["depth"]) for p in verification["problems"]] == [(23, "revoked", 0)]
    assert (verification["code"], verification["reason"]) == (23, "certificate revoked")
    assert [(r["depth"], r["method"], r["status"], r["source"]) for r in verification["revocation"]] == [
        (0, "crl", "revoked", f"{base}/int.crl")]
    assert text.returncode == 1 and "23 certificate revoked" in text.stdout
    assert len(asked) >= 2
    # s_client with -crl_download fetches the same distribution point and says the same number.
    assert "Verify return code: 23 (certificate revoked)" in says, says


def crafted_ocsp(inter, leaf, *, this_update, next_update, nonce: bytes | None = b"", status="good"):
    """A route answering every request with a response signed by the issuer, dated as asked; ``nonce`` b"" echoes
    the request's, None leaves it out, other bytes replace it (a replayed answer)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp

    def answer(body: bytes):
        request = ocsp.load_der_ocsp_request(body)
        builder = (ocsp.OCSPResponseBuilder()
                   .add_response(leaf.cert, inter.cert, hashes.SHA1(), ocsp.OCSPCertStatus.GOOD, this_update,
                                 next_update, None, None)
                   .responder_id(ocsp.OCSPResponderEncoding.HASH, inter.cert))
        if nonce is not None:
            sent = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
            builder = builder.add_extension(x509.OCSPNonce(nonce or sent), critical=False)
        from cryptography.hazmat.primitives.serialization import Encoding

        return builder.sign(inter.key, hashes.SHA256()).public_bytes(Encoding.DER), "application/ocsp-response"

    return answer


@pytest.mark.parametrize("case, fault", [
    ("stale", "nextUpdate"), ("future", "in the future"), ("replayed", "another nonce"), ("no_nonce", None)])
def test_ocsp_freshness_and_nonce(tmp_path, pki, case, fault):
    port = free_port()
    root, inter, leaf = ocsp_chain(pki, port)
    dates = {"stale": (NOW - 3 * DAY, NOW - DAY), "future": (NOW + DAY, NOW + 2 * DAY)}.get(case, (NOW - DAY / 24,
                                                                                                  NOW + DAY))
    nonce = {"replayed": b"0123456789abcdef", "no_nonce": None}.get(case, b"")
    route = crafted_ocsp(inter, leaf, this_update=dates[0], next_update=dates[1], nonce=nonce)
    with http_peer({"/": route}, port):
        run = run_tlskit(*chain_args(root, inter, leaf), "--ocsp", cwd=tmp_path)
    if fault is None:
        # Responders that pre-sign their answers leave the nonce out; that is said, not failed.
        assert run.returncode == 0, run.stderr
        assert run.json["revocation"][0]["nonce"] == "absent"
    else:
        assert run.returncode == 1
        assert [(p["code"], p["rule"]) for p in run.json["problems"]] == [(74, "ocsp_unreliable")]
        assert fault in run.json["problems"][0]["detail"]


def test_ocsp_freshness_is_judged_on_the_real_clock_even_with_at(tmp_path, pki):
    port = free_port()
    early = NOW - 10 * DAY
    root = pki.root(not_before=early)
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True, not_before=early)
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False, not_before=early,
                     extensions=[aia_ocsp(f"http://127.0.0.1:{port}")])
    at = (NOW - 3 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Current at --at, stale now: the responder speaks about the present, so it is stale.
    routes = {"/": crafted_ocsp(inter, leaf, this_update=NOW - 4 * DAY, next_update=NOW - 2 * DAY)}
    with http_peer(routes, port):
        then = run_tlskit(*chain_args(root, inter, leaf), "--ocsp", "--at", at, cwd=tmp_path)
        routes["/"] = crafted_ocsp(inter, leaf, this_update=NOW - DAY / 24, next_update=NOW + DAY)
        now = run_tlskit(*chain_args(root, inter, leaf), "--ocsp", "--at", at, cwd=tmp_path)
    assert then.returncode == 1
    assert [(p["code"], p["rule"]) for p in then.json["problems"]] == [(74, "ocsp_unreliable")]
    assert "nextUpdate" in then.json["problems"][0]["detail"]
    # Fresh now, dated after --at: relied on.
    assert now.returncode == 0, now.stdout + now.stderr
    assert now.json["revocation"][0]["status"] == "good"


def test_a_redirect_away_from_http_is_not_followed():
    from tlskit.errors import NetworkError
    from tlskit.fetching import http_request

    class Redirect(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(302)
            self.send_header("Location", "https://127.0.0.1:9/elsewhere.crl")
            self.send_header("Content-Length", "0")
            self.end_headers()

    with serve_http(Redirect) as base, pytest.raises(NetworkError, match="only http"):
        http_request(f"{base}/int.crl", "a CRL", limit=1000, timeout=5)


def test_a_crl_not_yet_valid_is_11_and_one_from_an_issuer_without_crl_sign_is_35(tmp_path, pki):
    root, inter, leaf = pki.chain()
    early = make_crl(pki, "early", inter, [], last_update=NOW + DAY / 2, next_update=NOW + 7 * DAY)
    run = run_tlskit(*chain_args(root, inter, leaf), "--crl", str(early), cwd=tmp_path)
    assert [(p["code"], p["rule"]) for p in run.json["problems"]] == [(11, "crl_not_yet_valid")]
    assert openssl_crl_code(root, inter, leaf, early) == 11
    from peers_verdicts import _key_usage

    no_crl_sign = x509.KeyUsage(**{**{k: getattr(_key_usage(True), k) for k in (
        "digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
        "key_cert_sign")}, "crl_sign": False, "encipher_only": False, "decipher_only": False})
    inter2 = pki.issue("int2", "Verdict Intermediate 2", root, ca=True, key_usage=no_crl_sign)
    leaf2 = pki.issue("leaf2", "www.example.test", inter2, ca=False)
    crl = make_crl(pki, "int2-crl", inter2, [])
    run = run_tlskit(*chain_args(root, inter2, leaf2), "--crl", str(crl), cwd=tmp_path)
    assert [(p["code"], p["rule"]) for p in run.json["problems"]] == [(35, "crl_sign_missing")]
    assert openssl_crl_code(root, inter2, leaf2, crl) == 35


def test_a_responder_that_does_not_know_the_leaf_is_75(tmp_path, pki):
    port = free_port()
    root, inter, leaf = ocsp_chain(pki, port)
    with ocsp_responder(tmp_path, [(inter, "V")], inter, port=port) as url:
        run = run_tlskit(*chain_args(root, inter, leaf), "--ocsp", cwd=tmp_path)
        says = openssl_ocsp_says(url, inter, leaf, root)
    assert run.returncode == 1
    assert [(p["code"], p["rule"]) for p in run.json["problems"]] == [(75, "ocsp_unknown")]
    assert f"{leaf.path}: unknown" in says
