"""The verdict rules the other verdict tests leave out, one test each, run as a user runs them.

Each test builds the certificates of one fault (with `cryptography`'s builder, or with
:func:`peers_verdicts.resign` for the DER the builder refuses to write), runs `tlskit chain --json` with and
without ``--lenient``, and runs `openssl verify -x509_strict` on the same files. Where the two disagree the
test says which one is stricter and why: the README's "stricter than openssl" list rests on these.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID

from conftest import run_tlskit
from peers_verdicts import DAY, NOW, Pki, der_extension, der_oid, der_sequence, der_validity, openssl_verify, resign

ANY_POLICY = "2.5.29.32.0"


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "pki")


def chain(leaf, pool, root, *extra: str):
    return run_tlskit("chain", str(leaf.path), *(str(p.path) for p in pool), "--ca-file", str(root.path), "--json",
                      *extra, cwd=leaf.path.parent)


def problems(run) -> list[tuple[str, int, int]]:
    return [(p["rule"], p["code"], p["depth"]) for p in run.json["problems"]]


def assert_error(leaf, pool, root, expected, *extra: str) -> None:
    """The verdict fails with exactly ``expected``, ``--lenient`` or not: an error, not a Web PKI finding."""
    for lenient in ((), ("--lenient",)):
        run = chain(leaf, pool, root, *extra, *lenient)
        assert run.returncode == 1, run.stdout + run.stderr
        assert run.json["ok"] is False and problems(run) == expected, run.json["problems"]


def openssl_code(leaf, pool, root, *extra: str) -> int:
    return openssl_verify(leaf, trusted=[root.path], untrusted=[p.path for p in pool], extra=extra)[0]


# ------------------------------------------------------------------------------------ path building


def test_a_path_longer_than_ten_certificates_is_22(pki):
    root = pki.root("Long Root")
    cas, issuer = [], root
    for index in range(10):
        issuer = pki.issue(f"ca{index}", f"Long CA {index}", issuer, ca=True)
        cas.append(issuer)
    leaf = pki.issue("leaf", "www.example.test", issuer, ca=False)
    # The search stops at MAX_PATH_LENGTH (10, leaf and anchor included): the tenth certificate is where it gave up.
    assert_error(leaf, cas, root, [("chain_too_long", 22, 9)])
    # OpenSSL's default depth is 100, so it accepts the path; with a depth of 8 intermediates it gives the same 22.
    assert openssl_code(leaf, cas, root) == 0
    assert openssl_code(leaf, cas, root, "-verify_depth", "8") == 22


def test_more_than_sixteen_candidate_paths_end_the_search(pki):
    # Seventeen expired copies of the intermediate (same name, same key), each a complete path to the root:
    # tlskit evaluates sixteen, reports the best failure and says that it stopped.
    root = pki.root()
    key = ec.generate_private_key(ec.SECP256R1())
    copies = [pki.issue(f"copy{i}", "Shared CA", root, ca=True, key=key, not_before=NOW - 90 * DAY,
                        not_after=NOW - (10 + i) * DAY) for i in range(17)]
    leaf = pki.issue("leaf", "www.example.test", copies[0], ca=False)
    for lenient in ((), ("--lenient",)):
        run = chain(leaf, copies, root, *lenient)
        assert run.returncode == 1, run.stdout + run.stderr
        assert problems(run)[0] == ("expired", 10, 1)
        bounded = run.json["problems"][-1]
        assert (bounded["rule"], bounded["code"], bounded["depth"]) == ("path_search_bounded", 1, None)
        assert bounded["detail"].startswith("gave up after 16 candidate paths")
        assert run.json["candidates"] == 16
    assert openssl_code(leaf, copies, root) == 10


# ------------------------------------------------------------------------------------ the form of a certificate


@pytest.mark.parametrize("oid, openssl_says", [("1.3.6.1.4.1.99999.2", 0), ("2.5.29.17", 20)],
                         ids=["unknown-extension", "subjectAltName"])
def test_a_duplicated_extension_is_41(pki, oid, openssl_says):
    root, inter, built = pki.chain(extensions=[
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.2"), b"\x05\x00"), False)])
    value = next(e for e in built.cert.extensions if e.oid.dotted_string == oid).value.public_bytes()
    leaf = pki.write("dup", resign(built.cert, inter.key, extra_extensions=[der_extension(oid, value)]), built.key)
    assert_error(leaf, [inter], root, [("extensions_malformed", 41, 0)])
    # RFC 5280 4.2: an extension appears at most once. OpenSSL 3.0 lets a repeated unknown extension through,
    # and a repeated SAN makes it lose the leaf's issuer (20) rather than name the fault.
    assert openssl_code(leaf, [inter], root) == openssl_says


def test_a_path_length_on_a_non_ca_is_refused_as_malformed(pki):
    # basicConstraints {cA FALSE, pathLenConstraint 0}: cryptography refuses to parse it (its BasicConstraints
    # cannot hold a path length without CA:TRUE), so the certificate's extensions are malformed (41) and
    # the rule OpenSSL names 80 is reached through that one.
    root, inter, built = pki.chain(basic_constraints=None)
    leaf = pki.write("plc", resign(built.cert, inter.key, extra_extensions=[
        der_extension("2.5.29.19", der_sequence(bytes.fromhex("020100")), critical=True)]), built.key)
    assert_error(leaf, [inter], root, [("extensions_malformed", 41, 0)])
    assert openssl_code(leaf, [inter], root) == 80


def test_signature_algorithms_that_differ_inside_and_outside_are_78(pki):
    root, inter, built = pki.chain()
    ecdsa_sha384 = der_sequence(der_oid("1.2.840.10045.4.3.3"))  # the outer one stays ecdsa-with-SHA256
    leaf = pki.write("mismatch", resign(built.cert, inter.key, signature=ecdsa_sha384), built.key)
    # cryptography refuses to check a signature whose two algorithms differ, so no issuer signed it (7) and
    # the form rule says why (78); OpenSSL names 78 first.
    assert_error(leaf, [inter], root, [("signature_failure", 7, 0), ("signature_algorithm_mismatch", 78, 0)])
    assert openssl_code(leaf, [inter], root) == 78


@pytest.mark.parametrize("field, code", [("notBefore", 13), ("notAfter", 14)])
def test_generalized_time_before_2050_is_13_or_14(pki, field, code):
    root, inter, built = pki.chain()
    validity = der_validity(built.cert, generalized_before=field == "notBefore", generalized_after=field == "notAfter")
    leaf = pki.write("gentime", resign(built.cert, inter.key, validity=validity), built.key)
    assert_error(leaf, [inter], root, [("validity_encoding", code, 0)])
    # RFC 5280 4.1.2.5 requires UTCTime through 2049; OpenSSL 3.0 reads either encoding without a word.
    assert openssl_code(leaf, [inter], root) == 0


def test_an_empty_issuer_name_is_83(pki):
    root = pki.issue("nameless", x509.Name([]), None, ca=True)
    leaf = pki.issue("leaf", "www.example.test", root, ca=False)
    # The leaf names the nameless root as its issuer, and the root (a trust anchor) names itself: RFC 5280
    # 4.1.2.4 wants a non-empty issuer in both, as `cryptography` does.
    assert_error(leaf, [], root, [("issuer_empty", 83, 0), ("issuer_empty", 83, 1)])
    assert openssl_code(leaf, [], root) == 83


def test_a_trust_anchor_is_judged_on_its_extensions(pki):
    lax = pki.root("Lax Root", basic_constraints=(x509.BasicConstraints(ca=True, path_length=None), False))
    leaf = pki.issue("leaf", "www.example.test", lax, ca=False)
    # The anchor signs the path through its basicConstraints and keyUsage: RFC 5280 4.2.1.9 and `cryptography`
    # judge them in a root as in any CA.
    assert_error(leaf, [], lax, [("ca_basic_constraints_not_critical", 89, 1)])
    assert openssl_code(leaf, [], lax) == 89


def test_a_trust_anchor_with_an_unknown_critical_extension_is_34(pki):
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55738.666.1"), b"")
    root = pki.root("Odd Root", extensions=[(odd, True)])
    leaf = pki.issue("leaf", "www.example.test", root, ca=False)
    assert_error(leaf, [], root, [("unknown_critical_extension", 34, 1)])
    assert openssl_code(leaf, [], root) == 34


def test_a_trust_anchor_is_not_judged_on_what_only_its_issuer_checks(pki):
    # A root's own signature algorithm and serial concern nobody who trusts its key (certifi ships roots
    # self-signed with SHA-1, and a root or two with serial 0); as a leaf's or an intermediate's they are findings.
    signed = pki.root("Old Root", hash_algorithm=hashes.SHA224())
    root = pki.write("old-root-0", resign(signed.cert, signed.key, serial_bytes=b"\x00"), signed.key)
    leaf = pki.issue("leaf", "www.example.test", signed, ca=False)
    run = chain(leaf, [], root, "--host", "www.example.test")
    assert run.returncode == 0, run.stdout + run.stderr
    assert openssl_code(leaf, [], root) == 0


def test_a_root_with_an_extended_key_usage_is_a_finding(pki):
    root = pki.root("Purposeful Root", extensions=[(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                                                    False)])
    leaf = pki.issue("leaf", "www.example.test", root, ca=False)
    strict = chain(leaf, [], root)
    assert strict.returncode == 1 and problems(strict) == [("root_eku", 1, 1)]
    lenient = chain(leaf, [], root, "--lenient")
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    # BR 7.1.2.1.2 forbids it; OpenSSL and `cryptography` take the root's serverAuth as allowing TLS servers.
    assert openssl_code(leaf, [], root) == 0


def test_a_version_1_leaf_is_a_finding(pki):
    root, inter, built = pki.chain(cn="alice", sans=None, eku=None)
    leaf = pki.write("v1", resign(built.cert, inter.key, version_1=True), built.key)
    assert leaf.cert.version == x509.Version.v1
    strict = chain(leaf, [inter], root, "--purpose", "client")
    assert strict.returncode == 1 and problems(strict) == [("version_not_v3", 1, 0)]
    lenient = chain(leaf, [inter], root, "--purpose", "client", "--lenient")
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert [(f["level"], f["code"]) for f in lenient.json["findings"] if f["code"] == "version_not_v3"] == [
        ("warning", "version_not_v3")]
    # BR 7.1.1 asks for version 3; OpenSSL takes a v1 leaf without extensions, even with -x509_strict.
    assert openssl_code(leaf, [inter], root, "-purpose", "sslclient") == 0


def test_a_critical_authority_info_access_is_41(pki):
    aia = x509.AuthorityInformationAccess([x509.AccessDescription(
        AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier("http://127.0.0.1:9/int.der"))])
    root, inter, leaf = pki.chain(extensions=[(aia, True)])
    assert_error(leaf, [inter], root, [("authorityInfoAccess_critical", 41, 0)])
    # RFC 5280 4.2.2.1 forbids marking it critical; OpenSSL does not process AIA as a critical extension (34).
    assert openssl_code(leaf, [inter], root) == 34


# ------------------------------------------------------------------------------------ name constraints


def test_a_uri_name_constraint_is_51(pki):
    root = pki.root()
    inter = pki.issue("int", "URI CA", root, ca=True, extensions=[
        (x509.NameConstraints([x509.UniformResourceIdentifier(".example.test")], None), True)])
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False, sans=[
        x509.DNSName("www.example.test"), x509.UniformResourceIdentifier("https://www.example.test/")])
    assert_error(leaf, [inter], root, [("name_constraint_unsupported", 51, 0)])
    # OpenSSL evaluates URI constraints and finds the name within; tlskit refuses a constraint it cannot
    # evaluate rather than let it through (and cryptography's verifier refuses it too).
    assert openssl_code(leaf, [inter], root) == 0


def test_an_email_san_that_is_no_address_under_email_constraints_is_53(pki):
    root = pki.root()
    inter = pki.issue("int", "Mail CA", root, ca=True, extensions=[
        (x509.NameConstraints([x509.RFC822Name("example.test")], None), True)])
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False, sans=[
        x509.DNSName("www.example.test"), x509.RFC822Name("not-an-address")])
    assert_error(leaf, [inter], root, [("name_constraint_malformed", 53, 0)])
    assert openssl_code(leaf, [inter], root) == 53


# ------------------------------------------------------------------------------------ policies


@pytest.mark.parametrize("mapping", ["maps-any-policy", "malformed"])
def test_policy_mappings_that_map_any_policy_or_do_not_parse_are_42(pki, mapping):
    # policyMappings: SEQUENCE OF SEQUENCE {issuerDomainPolicy, subjectDomainPolicy}; "malformed" has one OID only.
    pair = der_oid(ANY_POLICY) + der_oid("1.3.6.1.4.1.99999.7") if mapping == "maps-any-policy" else der_oid("1.2.3")
    value = der_sequence(der_sequence(pair))
    policies = (x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(ANY_POLICY), None)]), False)
    root = pki.root()
    inter = pki.issue("int", "Mapping CA", root, ca=True, extensions=[
        policies, (x509.UnrecognizedExtension(x509.ObjectIdentifier("2.5.29.33"), value), True)])
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False, extensions=[policies])
    assert_error(leaf, [inter], root, [("policy_extension_invalid", 42, 1)])
    # tlskit processes policies on every path; OpenSSL only with -policy_check, and then says 42 too.
    assert openssl_code(leaf, [inter], root) == 0
    assert openssl_code(leaf, [inter], root, "-policy_check") == 42


# ------------------------------------------------------------------------------------ the second opinion


def test_what_only_cryptography_refuses_is_cryptography_refused(pki):
    # A dNSName constraint with a leading dot is not RFC 5280's form (that is for URIs and e-mail): tlskit's
    # own rules read it as "under example.test" and OpenSSL accepts it, but cryptography's verifier calls it
    # malformed. The second opinion's refusal stands, with the nearest OpenSSL number (47).
    root = pki.root()
    inter = pki.issue("int", "Dot CA", root, ca=True, extensions=[
        (x509.NameConstraints([x509.DNSName(".example.test")], None), True)])
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False)
    assert_error(leaf, [inter], root, [("cryptography_refused", 47, 0)])
    run = chain(leaf, [inter], root)
    assert "malformed DNS name constraint" in run.json["problems"][0]["detail"]
    assert openssl_code(leaf, [inter], root) == 0
