"""`tlskit probe` against real `openssl s_server` instances and a real STARTTLS responder.

Each verification failure is also checked against what `openssl s_client` reports for the same server,
so the OpenSSL numbers tlskit prints are OpenSSL's, not a guess.
"""

from __future__ import annotations

import subprocess
import sys

import certifi
import pytest

from conftest import ROOT, assert_one_line_error, openssl, run_tlskit
from peers_chain import LEAF_NAME, openssl_pki, v1_pki
from peers_tls import (build_pki, ipv6_available, openssl_verify_first_code, s_client_verify_code, s_server,
                       silent_listener, starttls_responder)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return build_pki(tmp_path_factory.mktemp("pki"))


def probe(*args: str, cwd=None):
    return run_tlskit("probe", *args, cwd=cwd)


def pem_blocks(text: str) -> list[str]:
    return [b.split("-----END CERTIFICATE-----")[0] for b in text.split("-----BEGIN CERTIFICATE-----")[1:]]


# ------------------------------------------------------------------------------------------- verdicts


def test_good_chain_verifies(pki):
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate) as server:
        run = probe(server.target, "--servername", "localhost", "--ca-file", str(pki.root), "--json")
        assert s_client_verify_code(server.target, "localhost", pki.root) == 0
    assert run.returncode == 0, run.stderr
    doc = run.json
    assert doc["verified"] is True
    assert doc["verification"]["code"] == 0 and doc["verification"]["reason"] == "ok"
    assert doc["verification"]["path"] == ["/CN=localhost", "/CN=tlskit Test Intermediate", "/CN=tlskit Test Root"]
    assert [c["subject"] for c in doc["chain"]] == ["/CN=localhost", "/CN=tlskit Test Intermediate"]
    assert [c["depth"] for c in doc["chain"]] == [0, 1]
    assert doc["chain"][0]["sans"] == ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    assert doc["chain"][0]["key"]["label"] and doc["chain"][0]["signature_algorithm"]
    assert 28 <= doc["chain"][0]["days_left"] <= 30
    assert doc["chain_in_order"] is True and doc["chain_has_root"] is False
    assert doc["protocol"] == "TLSv1.3" and doc["cipher"].startswith("TLS_")
    assert doc["servername"] == "localhost" and doc["address"] == "127.0.0.1"
    assert doc["ocsp"] is None and doc["alpn"] is None
    assert "pem" not in doc["chain"][0]


def test_good_chain_text(pki):
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate) as server:
        run = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root))
    assert run.returncode == 0, run.stderr
    assert "Verified" in run.stdout and "hostname localhost matches" in run.stdout
    assert "Certificates sent: 2 (in order, no root)" in run.stdout
    assert "DNS:localhost" in run.stdout and "days left" in run.stdout
    assert run.stderr == ""


def test_missing_intermediate_is_21(pki):
    with s_server(pki.leaf, pki.leaf_key) as server:
        run = probe(server.target, "--servername", "localhost", "--ca-file", str(pki.root), "--json")
        assert s_client_verify_code(server.target, "localhost", pki.root) == 21
    assert run.returncode == 1, run.stderr
    verification = run.json["verification"]
    assert run.json["verified"] is False
    assert (verification["code"], verification["reason"]) == (21, "unable to verify the first certificate")
    assert "tlskit Test Intermediate" in verification["problems"][0]["detail"]
    assert "full chain" in verification["fix"]
    assert len(run.json["chain"]) == 1


def test_missing_intermediate_text_names_the_fault(pki):
    with s_server(pki.leaf, pki.leaf_key) as server:
        run = probe(server.target, "--servername", "localhost", "--ca-file", str(pki.root))
    assert run.returncode == 1
    assert "Verification failed: 21 unable to verify the first certificate" in run.stdout
    assert "Traceback" not in run.stderr


def test_self_signed_is_18(pki):
    with s_server(pki.selfsigned, pki.selfsigned_key) as server:
        run = probe(server.target, "--servername", "localhost", "--ca-file", str(pki.root), "--json")
        assert s_client_verify_code(server.target, "localhost", pki.root) == 18
        trusted = probe(server.target, "--servername", "localhost", "--ca-file", str(pki.selfsigned), "--json")
    assert run.returncode == 1
    assert run.json["verification"]["code"] == 18
    assert run.json["verification"]["reason"] == "self-signed certificate"
    # Trusting the self-signed certificate on purpose makes it verify.
    assert trusted.returncode == 0, trusted.stdout
    assert trusted.json["verified"] is True


def test_expired_is_10(pki):
    with s_server(pki.expired, pki.expired_key, pki.intermediate) as server:
        run = probe(server.target, "--servername", "localhost", "--ca-file", str(pki.root), "--json")
        assert s_client_verify_code(server.target, "localhost", pki.root) == 10
    assert run.returncode == 1
    verification = run.json["verification"]
    assert (verification["code"], verification["reason"]) == (10, "certificate has expired")
    assert verification["problems"][0]["depth"] == 0
    assert run.json["chain"][0]["expired"] is True and run.json["chain"][0]["days_left"] < 0


def test_not_yet_valid_is_9(pki):
    with s_server(pki.future, pki.expired_key, pki.intermediate) as server:
        run = probe(server.target, "--servername", "localhost", "--ca-file", str(pki.root), "--json")
        assert s_client_verify_code(server.target, "localhost", pki.root) == 9
    assert run.returncode == 1
    assert (run.json["verification"]["code"], run.json["verification"]["reason"]) == (9, "certificate is not yet valid")


def test_issuer_that_is_not_a_ca_is_79_then_32(pki):
    """OpenSSL 3 finds two faults here; `openssl verify` reports the first (79), s_client the last (32)."""
    with s_server(pki.under_leaf, pki.expired_key, pki.under_leaf_chain) as server:
        run = probe(server.target, "--servername", "localhost", "--ca-file", str(pki.root), "--json")
        assert s_client_verify_code(server.target, "localhost", pki.root) == 32
    assert openssl_verify_first_code(pki.under_leaf, pki.under_leaf_chain, pki.root) == 79
    assert run.returncode == 1, run.stdout
    verification = run.json["verification"]
    assert (verification["code"], verification["reason"]) == (79, "invalid CA certificate")
    assert [(p["code"], p["depth"]) for p in verification["problems"]] == [(79, 1), (32, 1)]


@pytest.mark.parametrize("name, code", [("www.example.test", 0), ("a.b.example.test", 62), ("example.test", 62)])
def test_wildcard_covers_one_label(pki, name, code):
    with s_server(pki.wildcard, pki.wildcard_key, pki.intermediate) as server:
        run = probe(server.target, "--servername", name, "--ca-file", str(pki.root), "--json")
        assert s_client_verify_code(server.target, name, pki.root) == code
    assert run.json["verification"]["code"] == code
    assert run.returncode == (0 if code == 0 else 1)


def test_wrong_name_is_62(pki):
    with s_server(pki.wrong_name, pki.wrong_name_key, pki.intermediate) as server:
        run = probe(server.target, "--servername", "localhost", "--ca-file", str(pki.root), "--json")
        assert s_client_verify_code(server.target, "localhost", pki.root) == 62
        right = probe(server.target, "--servername", "other.example", "--ca-file", str(pki.root), "--json")
    assert run.returncode == 1
    verification = run.json["verification"]
    assert (verification["code"], verification["reason"]) == (62, "hostname mismatch")
    assert verification["hostname_ok"] is False and "other.example" in verification["problems"][0]["detail"]
    assert right.returncode == 0, right.stdout


def test_untrusted_root_sent_is_19_and_missing_root_is_20(pki):
    # Against certifi, our private root is unknown: sent, it is "self-signed in chain"; not sent, "local issuer".
    with_root = _chain_file(pki, "inter-root.pem", [pki.intermediate, pki.root])
    with s_server(pki.leaf, pki.leaf_key, with_root) as server:
        run = probe(server.target, "--servername", "localhost", "--json")
        assert s_client_verify_code(server.target, "localhost", certifi.where()) == 19
    assert run.returncode == 1
    assert run.json["verification"]["code"] == 19 and run.json["verification"]["trust"] == "certifi"
    assert run.json["chain_has_root"] is True
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate) as server:
        run = probe(server.target, "--servername", "localhost", "--json")
        assert s_client_verify_code(server.target, "localhost", certifi.where()) == 20
    assert run.returncode == 1
    assert run.json["verification"]["code"] == 20
    assert run.json["verification"]["problems"][0]["depth"] == 1


def test_untrusted_v1_root_sent_is_19_only(tmp_path):
    # An old v1 root carries no basicConstraints: it is a CA all the same (RFC 5280 6.1.4 (k)), so the
    # only fault of the chain is the untrusted root, as s_client says; a v1 intermediate is no CA (79).
    # tlskit adds the leaf's missing key identifier (a v1 issuer has none to name), as
    # `openssl verify -x509_strict` does (85).
    v1 = v1_pki(tmp_path / "pki")
    with s_server(v1.leaf, v1.key(v1.leaf), v1.root) as server:
        run = probe(server.target, "--servername", LEAF_NAME, "--json")
        assert s_client_verify_code(server.target, LEAF_NAME, certifi.where()) == 19
    assert run.returncode == 1
    assert [(p["code"], p["depth"]) for p in run.json["verification"]["problems"]] == [(19, 1), (85, 0)]
    sent = _chain_file(v1, "inter-root.pem", [v1.intermediate, v1.root])
    with s_server(v1.under, v1.key(v1.under), sent) as server:
        run = probe(server.target, "--servername", f"under.{LEAF_NAME}", "--json")
        assert openssl_verify_first_code(v1.under, sent, v1.root) == 79
    assert [(p["code"], p["depth"]) for p in run.json["verification"]["problems"]] == [(19, 2), (85, 0), (79, 1)]


def test_sha1_chain_is_68_as_s_client_says(tmp_path):
    sha1 = openssl_pki(tmp_path / "pki", levels=3, digest="sha1")
    # The server has to lower its own security level to load a SHA-1 certificate at all.
    with s_server(sha1.leaf, sha1.leaf_key, sha1.intermediates[0], extra=("-cipher", "ALL:@SECLEVEL=0")) as server:
        run = probe(server.target, "--servername", LEAF_NAME, "--ca-file", str(sha1.root), "--json")
        assert s_client_verify_code(server.target, LEAF_NAME, sha1.root) == 68
    assert run.returncode == 1
    assert run.json["chain_in_order"] is True
    verification = run.json["verification"]
    assert (verification["code"], verification["reason"]) == (68, "CA signature digest algorithm too weak")
    assert [(p["code"], p["depth"]) for p in verification["problems"]] == [(68, 0), (68, 1)]
    assert "SHA-1" in verification["problems"][0]["detail"] and "SHA-256" in verification["fix"]


def _chain_file(pki, name, parts):
    path = pki.dir / name
    path.write_bytes(b"".join(p.read_bytes() for p in parts))
    return path


def test_chain_out_of_order_still_verifies_but_is_reported(pki):
    with s_server(pki.leaf, pki.leaf_key, pki.reversed_chain) as server:
        run = probe(server.target, "--servername", "localhost", "--ca-file", str(pki.root), "--json")
    assert run.returncode == 0, run.stdout
    assert run.json["chain_in_order"] is False and run.json["chain_has_root"] is True
    assert len(run.json["chain"]) == 3


# --------------------------------------------------------------------------------------- network faults


def test_closed_port_is_exit_3():
    with silent_listener() as port:
        pass  # bound then closed: nothing listens there now
    run = probe(f"127.0.0.1:{port}", "--timeout", "5")
    assert_one_line_error(run, 3, "cannot connect")
    assert run.stdout == ""


def test_silent_server_times_out_with_exit_3():
    with silent_listener() as port:
        run = probe(f"127.0.0.1:{port}", "--timeout", "1")
    assert_one_line_error(run, 3, "timed out")


def test_plain_text_port_fails_the_handshake_with_a_hint(pki):
    with starttls_responder("smtp", pki.fullchain, pki.leaf_key) as responder:
        run = probe(responder.target, "--timeout", "5")
    assert_one_line_error(run, 3, "handshake")
    assert "--starttls" in run.stderr


def test_unresolvable_host_is_exit_3():
    run = probe("no-such-host.invalid:443", "--timeout", "5")
    assert_one_line_error(run, 3, "resolve")


# ------------------------------------------------------------------------------------------- STARTTLS


@pytest.mark.parametrize("protocol", ["smtp", "imap", "pop3", "ftp", "postgres"])
def test_starttls(pki, protocol):
    with starttls_responder(protocol, pki.fullchain, pki.leaf_key) as responder:
        run = probe(responder.target, "--starttls", protocol, "--servername", "localhost",
                    "--ca-file", str(pki.root), "--json")
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert run.json["starttls"] == protocol and run.json["verified"] is True
    assert len(run.json["chain"]) == 2
    transcript = responder.transcripts[0]
    assert any(line.startswith("TLS TLSv1.") for line in transcript), transcript
    expected_command = {"smtp": "STARTTLS", "imap": "STARTTLS", "pop3": "STLS", "ftp": "AUTH TLS",
                        "postgres": "04d2162f"}[protocol]
    assert any(expected_command in line for line in transcript), transcript
    if protocol == "smtp":
        assert transcript[0].startswith("EHLO ")


def test_smtp_responder_is_a_real_peer_for_openssl_too(pki):
    """The responder is not built to please tlskit: openssl's own STARTTLS client gets through it."""
    with starttls_responder("smtp", pki.fullchain, pki.leaf_key) as responder:
        result = openssl("s_client", "-connect", responder.target, "-starttls", "smtp", "-CAfile", str(pki.root),
                         "-verify_hostname", "localhost", input=b"", check=False)
    assert b"Verify return code: 0 (ok)" in result.stdout, result.stdout + result.stderr


def test_smtp_without_starttls_is_exit_3(pki):
    with starttls_responder("smtp", pki.fullchain, pki.leaf_key, offer_tls=False) as responder:
        run = probe(responder.target, "--starttls", "smtp", "--timeout", "5")
    assert_one_line_error(run, 3, "does not offer STARTTLS")


def test_starttls_against_a_tls_port_is_exit_3(pki):
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate) as server:
        run = probe(server.target, "--starttls", "imap", "--timeout", "2")
    assert run.returncode == 3
    assert_one_line_error(run, 3, "STARTTLS")


# -------------------------------------------------------------------------------------- what is shown


def test_showcerts_and_out_give_exactly_what_was_sent(pki, tmp_path):
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate) as server:
        run = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--showcerts",
                    "--out", "sent.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert pem_blocks(run.stdout) == pem_blocks(pki.fullchain.read_text())
    assert (tmp_path / "sent.pem").read_text() == pki.fullchain.read_text()
    assert "Saved the 2 certificate(s) sent to sent.pem" in run.stdout


def test_out_is_written_even_when_verification_fails(pki, tmp_path):
    with s_server(pki.leaf, pki.leaf_key) as server:
        run = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--out", "sent.pem", "--json",
                    cwd=tmp_path)
    assert run.returncode == 1
    assert run.json["saved"] == "sent.pem"
    assert (tmp_path / "sent.pem").read_text() == pki.leaf.read_text()


def test_out_refuses_an_existing_file_before_connecting(pki, tmp_path):
    (tmp_path / "sent.pem").write_text("keep me")
    with silent_listener() as port:
        pass
    run = probe(f"127.0.0.1:{port}", "--out", "sent.pem", cwd=tmp_path)
    assert_one_line_error(run, 2, "sent.pem")
    assert (tmp_path / "sent.pem").read_text() == "keep me"
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate) as server:
        forced = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--out", "sent.pem", "--force",
                       cwd=tmp_path)
    assert forced.returncode == 0
    assert (tmp_path / "sent.pem").read_text() == pki.fullchain.read_text()


def test_json_pem_with_showcerts(pki):
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate) as server:
        run = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--showcerts", "--json")
    assert "".join(c["pem"] for c in run.json["chain"]) == pki.fullchain.read_text()


def test_ocsp_staple_is_shown(pki):
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate, extra=("-status_file", str(pki.ocsp_good))) as server:
        run = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--json")
        text = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root))
    assert run.returncode == 0, run.stderr
    staple = run.json["ocsp"]
    assert staple["response_status"] == "successful" and staple["certificate_status"] == "good"
    assert staple["matches_leaf"] is True and staple["next_update"] and staple["signature_valid"] is True
    assert "OCSP staple: good" in text.stdout


def test_revoked_staple_fails_verification_with_23(pki):
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate, extra=("-status_file", str(pki.ocsp_revoked))) as server:
        run = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--json")
    assert run.returncode == 1, run.stdout
    assert run.json["ocsp"]["certificate_status"] == "revoked"
    assert run.json["ocsp"]["revocation_reason"] == "key_compromise"
    assert run.json["ocsp"]["signature_valid"] is True
    assert run.json["verification"]["code"] == 23 and run.json["verification"]["reason"] == "certificate revoked"


def test_forged_staple_is_flagged_and_ignored(pki):
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate, extra=("-status_file", str(pki.ocsp_forged))) as server:
        run = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--json")
        text = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root))
    assert run.returncode == 0
    assert run.json["ocsp"]["certificate_status"] == "good" and run.json["ocsp"]["signature_valid"] is False
    assert "signature NOT valid" in text.stdout


def test_tls12_server_shows_its_version_and_cipher(pki):
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate, extra=("-tls1_2",)) as server:
        run = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--json")
        s_client = openssl("s_client", "-connect", server.target, "-servername", "localhost", input=b"", check=False)
    assert run.returncode == 0, run.stdout
    assert run.json["protocol"] == "TLSv1.2" and run.json["protocol_obsolete"] is False
    assert f"Cipher is {run.json['cipher']}".encode() in s_client.stdout
    assert run.json["cipher_bits"] >= 128


def test_obsolete_tls10_server_is_still_probed_and_flagged(pki):
    """s_client (system defaults) cannot even talk to it; a probe must, to say what is wrong."""
    extra = ("-tls1", "-cipher", "DEFAULT:@SECLEVEL=0")
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate, extra=extra) as server:
        run = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--json")
        text = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root))
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert run.json["protocol"] == "TLSv1" and run.json["protocol_obsolete"] is True
    assert "TLSv1 (obsolete, RFC 8996)" in text.stdout


def test_alpn(pki):
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate, extra=("-alpn", "h2,http/1.1")) as server:
        h2 = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--alpn", "h2,http/1.1", "--json")
        http1 = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--alpn", "http/1.1", "--json")
        none = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--json")
    assert h2.json["alpn"] == "h2"
    assert http1.json["alpn"] == "http/1.1"
    assert none.json["alpn"] is None


def test_servername_selects_the_certificate_by_sni(pki):
    """s_server answers SNI other.example with a second certificate: --servername is really sent."""
    extra = ("-servername", "other.example", "-cert2", str(pki.wrong_name), "-key2", str(pki.wrong_name_key))
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate, extra=extra) as server:
        other = probe(server.target, "-n", "other.example", "--ca-file", str(pki.root), "--json")
        local = probe(server.target, "-n", "localhost", "--ca-file", str(pki.root), "--json")
    assert other.json["chain"][0]["subject"] == "/CN=other.example"
    assert other.json["servername"] == "other.example"
    assert local.json["chain"][0]["subject"] == "/CN=localhost"


def test_ip_target_sends_no_sni_and_verifies_the_ip_san(pki):
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate) as server:
        run = probe(server.target, "--ca-file", str(pki.root), "--json")
        wrong = probe(server.target, "-n", "127.0.0.2", "--ca-file", str(pki.root), "--json", "--timeout", "5")
    assert run.returncode == 0, run.stdout
    assert run.json["servername"] is None and run.json["verification"]["hostname"] == "127.0.0.1"
    assert wrong.returncode == 1 and wrong.json["verification"]["code"] == 64


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback here")
def test_ipv6_bracket_target(pki):
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate, host="::1") as server:
        run = probe(f"[::1]:{server.port}", "--ca-file", str(pki.root), "--json")
    assert run.returncode == 0, (run.stdout, run.stderr)
    assert run.json["host"] == "::1" and run.json["address"] == "::1"
    assert run.json["verification"]["hostname"] == "::1"


def test_never_reads_stdin_and_prints_no_session_secrets(pki):
    """stdin stays open (unlike </dev/null), yet probe finishes; s_client would sit waiting."""
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate) as server:
        process = subprocess.Popen([sys.executable, "-m", "tlskit", "probe", server.target, "-n", "localhost",
                                    "--ca-file", str(pki.root), "--showcerts"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        try:
            out, err = _wait_without_closing_stdin(process)
        finally:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    for secret in (b"Master-Key", b"Session-ID", b"session ticket", b"PRIVATE KEY", b"Resumption PSK"):
        assert secret.lower() not in out.lower()


def _wait_without_closing_stdin(process: subprocess.Popen) -> tuple[bytes, bytes]:
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("tlskit probe waited on stdin")
    return process.stdout.read(), process.stderr.read()


# ----------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("args, contains", [
    (["localhost:99999"], "port"),
    (["localhost:http"], "port"),
    (["[::1"], "]"),
    (["[not-v6]:443"], "IPv6"),
    (["localhost", "--starttls", "gopher"], "starttls"),
    (["localhost", "--timeout", "0"], "timeout"),
    (["localhost", "--alpn", "h2,,http/1.1"], "alpn"),
    (["localhost", "--ca-file", "/nonexistent/ca.pem"], "does not exist"),
    (["127.0.0.1:1", "--servername", "a" * 64 + ".example"], "longer than 63 characters"),
])
def test_bad_arguments_are_exit_2(args, contains):
    assert_one_line_error(probe(*args), 2, contains)


def test_ca_file_without_certificates_is_exit_2(tmp_path):
    (tmp_path / "empty.pem").write_text("nothing here\n")
    assert_one_line_error(probe("127.0.0.1:1", "--ca-file", "empty.pem", cwd=tmp_path), 2, "empty.pem")


def test_parse_target_forms():
    from tlskit.probe import Target, parse_target

    assert parse_target("example.com") == Target("example.com", 443)
    assert parse_target("example.com:8443") == Target("example.com", 8443)
    assert parse_target("[::1]:8443") == Target("::1", 8443)
    assert parse_target("[::1]") == Target("::1", 443)
    assert parse_target("::1") == Target("::1", 443)
    assert parse_target("https://example.com/path") == Target("example.com", 443)
    assert parse_target("https://example.com:4443") == Target("example.com", 4443)
    assert parse_target("mail.example.com", 587) == Target("mail.example.com", 587)
    assert str(Target("::1", 443)) == "[::1]:443"



def test_probe_options_from_what_a_user_types():
    from tlskit.errors import InputError
    from tlskit.probe import ProbeOptions

    smtp = ProbeOptions.parse("mail.example.com", starttls="SMTP", alpn="h2, http/1.1", timeout=5)
    assert (smtp.host, smtp.port, smtp.starttls, smtp.alpn, smtp.timeout) == ("mail.example.com", 25, "smtp",
                                                                               ["h2", "http/1.1"], 5)
    assert ProbeOptions.parse("[::1]:8443", starttls="imap").port == 8443
    assert ProbeOptions.parse("example.com").port == 443 and ProbeOptions.parse("example.com").alpn == []
    assert ProbeOptions("example.com", starttls="Pop3").starttls == "pop3"
    for bad in ({"starttls": "gopher"}, {"alpn": "h2,"}, {"alpn": "x" * 256}):
        with pytest.raises(InputError):
            ProbeOptions.parse("example.com", **bad)
    with pytest.raises(InputError, match="starttls"):
        ProbeOptions("example.com", starttls="gopher")

def test_verify_words_are_openssls_own():
    """Every number tlskit prints carries the exact words of the installed libcrypto's error table."""
    import ctypes
    import ssl

    from tlskit.probe import VERIFY_REASONS

    # The libcrypto the ssl module links (the one the probe's handshakes use): a symbol looked up through
    # _ssl's own handle resolves in its dependencies. find_library("crypto") needs the -dev package or
    # ldconfig, and the process may hold other copies (psycopg's wheel brings its own).
    import _ssl

    assert ssl.OPENSSL_VERSION
    error_string = ctypes.CDLL(_ssl.__file__).X509_verify_cert_error_string
    error_string.restype, error_string.argtypes = ctypes.c_char_p, [ctypes.c_long]
    for code, words in VERIFY_REASONS.items():
        assert error_string(code).decode() == words, code
