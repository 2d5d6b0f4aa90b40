"""One test per verdict rule, on certificates built for it, each compared with `openssl verify -x509_strict`
(and `cryptography`'s own verifier where tlskit decides differently from it).

The numbers in the comments are OpenSSL's verify codes; the strings are tlskit's stable rule codes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from conftest import assert_one_line_error, run_tlskit
from peers_verdicts import CLIENT_AUTH, DAY, NOW, SERVER_AUTH, Pki, name, openssl_verify, resign
from tlskit.trust import TrustStore
from tlskit.verdict import VerifyOptions, parse_host, verify


def judge(leaf, pool=(), anchors=(), **options):
    trust = TrustStore("test anchors", [a.cert for a in anchors])
    return verify(leaf.cert, [p.cert for p in pool], trust, VerifyOptions(**options))


def rules(verdict) -> list[str]:
    return [p.rule for p in verdict.problems]


def cryptography_says(leaf, pool, anchors, host="www.example.test", at=None) -> str | None:
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    verifier = (PolicyBuilder().store(Store([a.cert for a in anchors])).time(at or NOW)
                .build_server_verifier(x509.DNSName(host)))
    try:
        verifier.verify(leaf.cert, [p.cert for p in pool])
    except VerificationError as exc:
        return str(exc)
    return None


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "pki")


# ------------------------------------------------------------------------------------ path building


def test_a_good_chain_verifies_as_openssl_and_cryptography_say(pki):
    root, inter, leaf = pki.chain()
    verdict = judge(leaf, [inter], [root], host=parse_host("www.example.test"))
    assert verdict.verified, verdict.problems
    assert [c.subject for c in verdict.path] == [leaf.cert.subject, inter.cert.subject, root.cert.subject]
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path])[0] == 0
    assert cryptography_says(leaf, [inter], [root]) is None


def test_every_candidate_issuer_is_tried_in_any_order(pki):
    # Three CAs with the intermediate's name and key identifier: one expired, one whose name constraints
    # exclude the leaf, and the good one. Whatever the order, the good path is found; openssl, which
    # takes the first plausible issuer, does not always find it.
    root = pki.root()
    key = ec.generate_private_key(ec.SECP256R1())
    expired = pki.issue("expired", "Shared CA", root, ca=True, key=key, not_before=NOW - 90 * DAY,
                        not_after=NOW - 10 * DAY)
    excluded = pki.issue("excluded", "Shared CA", root, ca=True, key=key, extensions=[(x509.NameConstraints(
        permitted_subtrees=None, excluded_subtrees=[x509.DNSName("example.test")]), True)])
    good = pki.issue("good", "Shared CA", root, ca=True, key=key, not_after=NOW + 20 * DAY)
    leaf = pki.issue("leaf", "www.example.test", good, ca=False)
    seen = set()
    for seed in range(6):
        pool = [expired, excluded, good]
        random.Random(seed).shuffle(pool)
        verdict = judge(leaf, pool, [root], host=parse_host("www.example.test"))
        assert verdict.verified, verdict.problems
        seen.add(verdict.path[1])
    assert seen == {good.cert}
    for bad in (expired, excluded):
        alone = judge(leaf, [bad], [root], host=parse_host("www.example.test"))
        assert rules(alone) == ["expired" if bad is expired else "name_constraints_excluded"]
        assert openssl_verify(leaf, trusted=[root.path], untrusted=[bad.path])[0] in (10, 48)


def test_trust_store_order_never_changes_the_verdict(pki):
    root_key = ec.generate_private_key(ec.SECP256R1())
    old_root = pki.issue("old-root", "Same Root", None, ca=True, key=root_key, not_before=NOW - 900 * DAY,
                         not_after=NOW - 30 * DAY)
    new_root = pki.issue("new-root", "Same Root", None, ca=True, key=root_key)
    inter = pki.issue("int", "Inter", new_root, ca=True)
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False)
    for anchors in ([old_root, new_root], [new_root, old_root]):
        verdict = judge(leaf, [inter], anchors)
        assert verdict.verified, verdict.problems
        assert verdict.path[-1] == new_root.cert


def test_a_self_issued_intermediate_does_not_count_against_path_length(pki):
    # root -> CA (pathlen 1) -> the same CA re-keyed (self-issued, pathlen 1) -> issuing CA (pathlen 0) -> leaf:
    # RFC 5280 6.1.4 (l) leaves the self-issued certificate out of the count, so the CA has one below it.
    root = pki.root("Rollover Root")
    old = pki.issue("old", "Rollover CA", root, ca=True, path_length=1)
    new = pki.issue("new", "Rollover CA", old, ca=True, path_length=1)
    issuing = pki.issue("issuing", "Issuing CA", new, ca=True, path_length=0)
    leaf = pki.issue("leaf", "www.example.test", issuing, ca=False)
    verdict = judge(leaf, [old, new, issuing], [root], host=parse_host("www.example.test"))
    assert verdict.verified, verdict.problems
    assert verdict.path == [leaf.cert, issuing.cert, new.cert, old.cert, root.cert]
    # `cryptography` counts the self-issued certificate and finds no path; OpenSSL follows RFC 5280.
    assert cryptography_says(leaf, [old, new, issuing], [root]) is not None
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[old.path, new.path, issuing.path])[0] == 0


def test_cross_signed_loop_ends_within_the_bounds(pki):
    # A and B cross-sign each other and neither is trusted: the search ends (no path repeats a
    # subject+key) and says the issuer is missing.
    key_a, key_b = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    seed_a = pki.issue("seed-a", "CA A", None, ca=True, key=key_a)
    seed_b = pki.issue("seed-b", "CA B", None, ca=True, key=key_b)
    a_by_b = pki.issue("a-by-b", "CA A", seed_b, ca=True, key=key_a)
    b_by_a = pki.issue("b-by-a", "CA B", seed_a, ca=True, key=key_b)
    leaf = pki.issue("leaf", "www.example.test", a_by_b, ca=False)
    other_root = pki.root("Unrelated Root")
    verdict = judge(leaf, [a_by_b, b_by_a], [other_root])
    assert not verdict.verified and verdict.problems[0].code == 20
    assert verdict.candidates <= 16


def test_many_decoys_are_bounded(pki):
    # 40 certificates with the intermediate's name, none of them its signer: the signature budget stops
    # the search and the verdict says so, instead of working forever.
    root, inter, leaf = pki.chain()
    decoys = [pki.issue(f"decoy{i}", "Verdict Intermediate", root, ca=True) for i in range(40)]
    verdict = judge(leaf, [*decoys, inter], [root])
    assert verdict.verified  # the real issuer is still found: it is the one whose key identifier matches
    no_real = judge(leaf, decoys, [root])
    assert not no_real.verified and no_real.problems[0].rule == "signature_failure" and no_real.problems[0].code == 7


# ------------------------------------------------------------------------------------ trust anchors


def test_an_intermediate_in_the_trust_store_is_an_anchor(pki):
    root, inter, leaf = pki.chain()
    verdict = judge(leaf, [], [inter])
    assert verdict.verified and verdict.path == [leaf.cert, inter.cert]
    # openssl needs -partial_chain to accept an intermediate as an anchor; without it, 2.
    assert openssl_verify(leaf, trusted=[inter.path])[0] == 2
    assert openssl_verify(leaf, trusted=[inter.path], extra=("-partial_chain",))[0] == 0


def test_a_v1_root_is_an_anchor_although_cryptography_refuses_it(tmp_path):
    from peers_chain import v1_pki

    v1 = v1_pki(tmp_path / "v1")
    root = x509.load_pem_x509_certificate(v1.root.read_bytes())
    leaf = x509.load_pem_x509_certificate(v1.leaf.read_bytes())
    strict = verify(leaf, [], TrustStore("v1", [root]), VerifyOptions(host=parse_host("www.example.test")))
    # The leaf openssl signed under a v1 root cannot name the root's key (it has none to name): a finding,
    # which `openssl verify -x509_strict` reports too (85).
    assert [p.rule for p in strict.problems] == ["aki_missing"]
    verdict = verify(leaf, [], TrustStore("v1", [root]), VerifyOptions(host=parse_host("www.example.test"), lenient=True))
    assert verdict.verified, verdict.problems
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    with pytest.raises(VerificationError, match="X509v3"):
        PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName("www.example.test")).verify(leaf, [])
    assert openssl_verify(v1.leaf, trusted=[v1.root])[0] == 85
    from conftest import openssl

    assert openssl("verify", "-CAfile", str(v1.root), str(v1.leaf), check=False).returncode == 0


# ------------------------------------------------------------------------------------ host names


@pytest.mark.parametrize("host, why", [
    ("foo_bar.example.com", "underscore"), ("a..b.example", "empty label"), ("xn--zz.example", "A-label"),
    ("ab--cd.example", "A-label"), ("-x.example", "letters, digits"), ("x" * 64 + ".example", "63"),
    ("example.123", "all digits"),
])
def test_host_names_no_certificate_can_match_are_one_line_input_errors(tmp_path, pki, host, why):
    root, inter, leaf = pki.chain()
    run = run_tlskit("chain", str(leaf.path), str(inter.path), "--ca-file", str(root.path), "--host", host, cwd=tmp_path)
    assert_one_line_error(run, 2, why)
    probe = run_tlskit("probe", "127.0.0.1:1", "--servername", host, cwd=tmp_path)
    assert_one_line_error(probe, 2, why)


def test_idn_host_names_are_matched_as_a_labels(pki):
    root, inter, leaf = pki.chain(cn="xn--bcher-kva.example", sans=[x509.DNSName("xn--bcher-kva.example")])
    assert judge(leaf, [inter], [root], host=parse_host("Bücher.example")).verified
    assert parse_host("BÜCHER.example.").text == "xn--bcher-kva.example"


# ------------------------------------------------------------------------------------ time


def test_not_after_is_inclusive_and_fractions_are_ignored(pki):
    root, inter, leaf = pki.chain(not_after=NOW + 5 * DAY)
    end = leaf.cert.not_valid_after_utc
    assert judge(leaf, [inter], [root], at=end).verified
    assert judge(leaf, [inter], [root], at=end + dt.timedelta(microseconds=999_999)).verified
    assert rules(judge(leaf, [inter], [root], at=end + dt.timedelta(seconds=1))) == ["expired"]
    start = leaf.cert.not_valid_before_utc
    assert judge(leaf, [inter], [root], at=start).verified
    early = judge(leaf, [inter], [root], at=start - dt.timedelta(seconds=1))
    assert early.problems[0].rule == "not_yet_valid" and {p.rule for p in early.problems} == {"not_yet_valid"}
    # cryptography agrees; openssl's X509_cmp_time counts notAfter itself as expired, one second early.
    assert cryptography_says(leaf, [inter], [root], at=end) is None
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path],
                          extra=("-attime", str(int(end.timestamp()) - 1)))[0] == 0
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path],
                          extra=("-attime", str(int(end.timestamp()))))[0] == 10


def test_chain_at_verifies_at_the_given_time(tmp_path, pki):
    root = pki.issue("root", "Verdict Root", None, ca=True, not_before=NOW - 900 * DAY)
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True, not_before=NOW - 800 * DAY)
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False, not_before=NOW - 400 * DAY, not_after=NOW - 100 * DAY)
    files = [str(leaf.path), str(inter.path), "--ca-file", str(root.path)]
    past = (NOW - 200 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert run_tlskit("chain", *files, "--at", past, cwd=tmp_path).returncode == 0
    assert_one_line_error(run_tlskit("chain", *files, cwd=tmp_path), 1, "expired on")
    assert_one_line_error(run_tlskit("chain", *files, "--at", "yesterday", cwd=tmp_path), 2, "--at")


# ------------------------------------------------------------------------------------ the real reason


def test_a_ca_certificate_used_as_a_leaf_is_named(pki):
    root = pki.root()
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True)
    ca_leaf = pki.issue("leaf", "www.example.test", inter, ca=True, sans=[x509.DNSName("www.example.test")])
    verdict = judge(ca_leaf, [inter], [root], host=parse_host("www.example.test"))
    assert verdict.problems[0].rule == "leaf_is_ca" and "is a CA certificate" in verdict.problems[0].detail
    assert "basicConstraints.cA must not be asserted" in cryptography_says(ca_leaf, [inter], [root])
    assert openssl_verify(ca_leaf, trusted=[root.path], untrusted=[inter.path])[0] == 0  # openssl accepts it


@pytest.mark.parametrize("host", [None, "www.example.test"])
def test_a_client_only_leaf_fails_for_a_server_with_or_without_host(pki, host):
    root, inter, leaf = pki.chain(eku=(x509.ExtendedKeyUsage([CLIENT_AUTH]), False))
    verdict = judge(leaf, [inter], [root], host=parse_host(host) if host else None)
    assert rules(verdict) == ["leaf_eku_wrong_purpose"]
    assert "allows clientAuth, not serverAuth" in verdict.problems[0].detail
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path], extra=("-purpose", "sslserver"))[0] == 26
    assert judge(leaf, [inter], [root], purpose="client").verified
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path], extra=("-purpose", "sslclient"))[0] == 0


def test_a_ca_without_critical_basic_constraints(pki):
    root = pki.root()
    inter = pki.issue("int", "Soft CA", root, ca=True,
                      basic_constraints=(x509.BasicConstraints(ca=True, path_length=None), False))
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False)
    assert rules(judge(leaf, [inter], [root])) == ["ca_basic_constraints_not_critical"]
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path])[0] == 89


def test_path_length_is_counted_as_rfc_5280_says(pki):
    root = pki.root(path_length=0)
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True)
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False)
    verdict = judge(leaf, [inter], [root])
    assert rules(verdict) == ["path_length_exceeded"] and verdict.problems[0].code == 25
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path])[0] == 25


def test_unknown_critical_extension(pki):
    root = pki.root()
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True, extensions=[(odd, True)])
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False)
    verdict = judge(leaf, [inter], [root])
    assert rules(verdict) == ["unknown_critical_extension"] and verdict.problems[0].code == 34
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path])[0] == 34


# ------------------------------------------------------------------------------------ Web PKI findings


def test_cn_must_be_one_of_the_sans(pki):
    root, inter, leaf = pki.chain(sans=[x509.DNSName("other.example.test")])
    verdict = judge(leaf, [inter], [root])
    assert rules(verdict) == ["cn_not_in_sans"]
    lenient = judge(leaf, [inter], [root], lenient=True)
    assert lenient.verified and [w.rule for w in lenient.warnings] == ["cn_not_in_sans"]
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path])[0] == 0  # no opinion


def test_aki_missing_ski_missing_and_mismatched(pki):
    root = pki.root()
    no_ski = pki.issue("int", "Verdict Intermediate", root, ca=True, ski=False)
    leaf = pki.issue("leaf", "www.example.test", no_ski, ca=False)
    assert rules(judge(leaf, [no_ski], [root])) == ["ski_missing"]
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[no_ski.path])[0] == 86
    good = pki.issue("int2", "Good Intermediate", root, ca=True, aki=False)
    leaf2 = pki.issue("leaf2", "www.example.test", good, ca=False)
    assert rules(judge(leaf2, [good], [root])) == ["aki_missing"]
    assert openssl_verify(leaf2, trusted=[root.path], untrusted=[good.path])[0] == 85
    other = ec.generate_private_key(ec.SECP256R1())
    proper = pki.issue("int3", "Proper Intermediate", root, ca=True)
    wrong_aki = pki.issue("leaf3", "www.example.test", proper, ca=False, aki=False, extensions=[
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(other.public_key()), False)])
    verdict = judge(wrong_aki, [proper], [root])
    assert rules(verdict) == ["aki_ski_mismatch"]
    # openssl takes a key identifier that does not match as "not the issuer": 20.
    assert openssl_verify(wrong_aki, trusted=[root.path], untrusted=[proper.path])[0] == 20


def test_a_root_whose_aki_names_another_key(pki):
    other = ec.generate_private_key(ec.SECP256R1())
    root = pki.root(extensions=[(x509.AuthorityKeyIdentifier.from_issuer_public_key(other.public_key()), False)])
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True)
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False)
    assert rules(judge(leaf, [inter], [root])) == ["root_aki_other_key"]


@pytest.mark.parametrize("make_key, rule, openssl_code", [
    (lambda: rsa.generate_private_key(65537, 1024), "rsa_key_too_small", 66),
    (lambda: rsa.generate_private_key(65537, 2052), "rsa_key_size_not_multiple_of_8", 0),
    (lambda: dsa.generate_private_key(2048), "key_algorithm_not_allowed", 0),
    (lambda: ec.generate_private_key(ec.SECP192R1()), "ec_curve_not_allowed", 66),
    (lambda: ed25519.Ed25519PrivateKey.generate(), "key_algorithm_not_allowed", 0),
])
def test_leaf_keys_outside_the_web_pki(pki, make_key, rule, openssl_code):
    root, inter = pki.root(), None
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True)
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False, key=make_key())
    assert rules(judge(leaf, [inter], [root])) == [rule]
    assert cryptography_says(leaf, [inter], [root]) is None  # cryptography does not check the leaf's key
    # openssl checks key sizes only at an auth level (2: 112-bit security, what Debian's TLS default asks).
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path], extra=("-auth_level", "2"))[0] == openssl_code


def test_an_intermediate_with_a_weak_rsa_key_fails_even_lenient(pki):
    root = pki.root()
    inter = pki.issue("int", "Weak CA", root, ca=True, key=rsa.generate_private_key(65537, 1024))
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False)
    assert rules(judge(leaf, [inter], [root])) == ["rsa_key_too_small"]
    assert judge(leaf, [inter], [root]).problems[0].code == 67
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path], extra=("-auth_level", "2"))[0] == 67
    # Lenient, tlskit lets it pass as a warning: cryptography's own refusal of that key is set aside
    # and the rest of the path is still checked by it.
    lenient = judge(leaf, [inter], [root], lenient=True)
    assert lenient.verified and [w.rule for w in lenient.warnings] == ["rsa_key_too_small"]


@pytest.mark.parametrize("serial, rule", [(b"\x00", "serial_zero"), (b"\xff\x01", "serial_negative"),
                                          (b"\x01" * 21, "serial_too_long")])
def test_serial_numbers(pki, serial, rule):
    root, inter, leaf = pki.chain()
    edited = pki.write("edited", resign(leaf.cert, inter.key, serial_bytes=serial), leaf.key)
    verdict = judge(edited, [inter], [root])
    assert rules(verdict) == [rule]
    lenient = judge(edited, [inter], [root], lenient=True)
    assert lenient.verified, lenient.problems  # cryptography's refusal of the serial is set aside too


@pytest.mark.parametrize("wildcard, flagged", [("*.com", True), ("*.co.uk", True), ("*.example.co.uk", False),
                                               ("*.github.io", False)])
def test_wildcards_under_a_public_suffix(pki, wildcard, flagged):
    root, inter, leaf = pki.chain(cn=wildcard, sans=[x509.DNSName(wildcard)])
    assert rules(judge(leaf, [inter], [root])) == (["wildcard_public_suffix"] if flagged else [])
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path])[0] == 0  # no opinion


def test_any_eku_and_critical_eku_in_a_leaf(pki):
    root, inter, any_leaf = pki.chain(eku=(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]),
                                           False))
    assert rules(judge(any_leaf, [inter], [root])) == ["leaf_any_eku"]
    assert openssl_verify(any_leaf, trusted=[root.path], untrusted=[inter.path], extra=("-purpose", "sslserver"))[0] == 26
    assert judge(any_leaf, [inter], [root], lenient=True).verified
    critical = pki.issue("crit", "www.example.test", inter, ca=False, eku=(x509.ExtendedKeyUsage([SERVER_AUTH]), True))
    assert rules(judge(critical, [inter], [root])) == ["leaf_eku_critical"]
    assert openssl_verify(critical, trusted=[root.path], untrusted=[inter.path])[0] == 0
    assert judge(critical, [inter], [root], lenient=True).verified


def test_a_ca_whose_eku_excludes_server_auth(pki):
    root = pki.root()
    inter = pki.issue("int", "Mail CA", root, ca=True,
                      extensions=[(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)])
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False)
    assert rules(judge(leaf, [inter], [root])) == ["ca_eku_excludes_purpose"]
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path], extra=("-purpose", "sslserver"))[0] == 26


def test_an_ed25519_ca_is_outside_the_web_pki_but_lenient_passes(pki):
    root = pki.root()
    inter = pki.issue("int", "Edwards CA", root, ca=True, key=ed25519.Ed25519PrivateKey.generate())
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False, hash_algorithm=None)
    assert set(rules(judge(leaf, [inter], [root]))) == {"key_algorithm_not_allowed", "signature_algorithm_not_allowed"}
    assert cryptography_says(leaf, [inter], [root]) is not None
    assert judge(leaf, [inter], [root], lenient=True).verified
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path])[0] == 0


def test_sha1_signatures_are_errors_not_findings(tmp_path):
    # cryptography no longer signs with SHA-1, so the openssl binary makes this PKI.
    from peers_chain import LEAF_NAME, openssl_pki

    sha1 = openssl_pki(tmp_path / "sha1", levels=3, digest="sha1")
    load = lambda p: x509.load_pem_x509_certificate(p.read_bytes())  # noqa: E731
    verdict = verify(load(sha1.leaf), [load(sha1.intermediates[0])], TrustStore("sha1", [load(sha1.root)]),
                     VerifyOptions(host=parse_host(LEAF_NAME), lenient=True))
    assert [(p.rule, p.code) for p in verdict.problems] == [("weak_signature", 68), ("weak_signature", 68)]


# ------------------------------------------------------------------------------------ policies and names


def _policies(*oids):
    return x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(o), None) for o in oids])


def test_require_explicit_policy(pki):
    root = pki.root()
    inter = pki.issue("int", "Policy CA", root, ca=True, extensions=[
        (x509.PolicyConstraints(require_explicit_policy=0, inhibit_policy_mapping=None), True),
        (_policies("1.3.6.1.4.1.99999.7"), False)])
    bare = pki.issue("bare", "www.example.test", inter, ca=False)
    verdict = judge(bare, [inter], [root])
    assert rules(verdict) == ["no_explicit_policy"] and verdict.problems[0].code == 43
    policy_check = ("-policy_check", "-policy", "2.5.29.32.0")  # a TLS client accepts any policy
    assert openssl_verify(bare, trusted=[root.path], untrusted=[inter.path], extra=policy_check)[0] == 43
    good = pki.issue("good", "www.example.test", inter, ca=False, extensions=[(_policies("1.3.6.1.4.1.99999.7"), False)])
    assert judge(good, [inter], [root]).verified
    assert openssl_verify(good, trusted=[root.path], untrusted=[inter.path], extra=policy_check)[0] == 0
    # cryptography refuses the critical policyConstraints outright, good leaf or not.
    assert "critical" in cryptography_says(good, [inter], [root])


def test_inhibit_any_policy(pki):
    root = pki.root()
    inter = pki.issue("int", "Policy CA", root, ca=True, extensions=[
        (x509.PolicyConstraints(require_explicit_policy=0, inhibit_policy_mapping=None), True),
        (x509.InhibitAnyPolicy(0), True), (_policies("2.5.29.32.0"), False)])
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False, extensions=[(_policies("2.5.29.32.0"), False)])
    assert rules(judge(leaf, [inter], [root])) == ["no_explicit_policy"]
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path],
                          extra=("-policy_check", "-policy", "2.5.29.32.0"))[0] == 43


def test_directory_name_constraints_apply_to_the_subject(pki):
    root = pki.root()
    allowed = x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Good Org")])
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True, extensions=[
        (x509.NameConstraints(permitted_subtrees=[x509.DirectoryName(allowed)], excluded_subtrees=None), True)])
    bad = pki.issue("bad", name("www.example.test", ORGANIZATION_NAME="Bad Org"), inter, ca=False)
    verdict = judge(bad, [inter], [root])
    assert rules(verdict) == ["name_constraints_not_permitted"] and verdict.problems[0].code == 47
    # cryptography refuses any critical directoryName constraint, the good leaf's too (below).
    assert "unsupported directoryName constraint" in cryptography_says(bad, [inter], [root])
    assert openssl_verify(bad, trusted=[root.path], untrusted=[inter.path])[0] == 47
    good = pki.issue("good", name("www.example.test", ORGANIZATION_NAME="Good Org"), inter, ca=False)
    assert judge(good, [inter], [root]).verified
    assert "unsupported directoryName constraint" in cryptography_says(good, [inter], [root])
    assert openssl_verify(good, trusted=[root.path], untrusted=[inter.path])[0] == 0


def test_directory_name_san_within_a_permitted_subtree(pki):
    root = pki.root()
    allowed = x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Good Org")])
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True, extensions=[
        (x509.NameConstraints(permitted_subtrees=[x509.DirectoryName(allowed), x509.DNSName("example.test")],
                              excluded_subtrees=None), True)])
    dir_san = x509.DirectoryName(x509.Name([*allowed, x509.NameAttribute(x509.NameOID.COMMON_NAME, "svc")]))
    leaf = pki.issue("leaf", name("www.example.test", ORGANIZATION_NAME="Good Org"), inter, ca=False,
                     sans=[x509.DNSName("www.example.test"), dir_san])
    assert judge(leaf, [inter], [root], host=parse_host("www.example.test")).verified
    assert "directoryName" in cryptography_says(leaf, [inter], [root])
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path])[0] == 0


def test_dns_and_ip_name_constraints(pki):
    root = pki.root()
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True, extensions=[(x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("example.test"), x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))],
        excluded_subtrees=[x509.DNSName("secret.example.test")]), True)])
    ok = pki.issue("ok", "www.example.test", inter, ca=False,
                   sans=[x509.DNSName("www.example.test"), x509.IPAddress(ipaddress.ip_address("10.1.2.3"))])
    assert judge(ok, [inter], [root]).verified
    excluded = pki.issue("ex", "db.secret.example.test", inter, ca=False)
    assert rules(judge(excluded, [inter], [root])) == ["name_constraints_excluded"]
    assert openssl_verify(excluded, trusted=[root.path], untrusted=[inter.path])[0] == 48
    outside_ip = pki.issue("ip", "www.example.test", inter, ca=False,
                           sans=[x509.DNSName("www.example.test"), x509.IPAddress(ipaddress.ip_address("192.0.2.1"))])
    assert rules(judge(outside_ip, [inter], [root])) == ["name_constraints_not_permitted"]
    assert openssl_verify(outside_ip, trusted=[root.path], untrusted=[inter.path])[0] == 47


# ------------------------------------------------------------------------------------ the CLI


def test_findings_in_chain_json_and_lenient(tmp_path, pki):
    root, inter, leaf = pki.chain(sans=[x509.DNSName("other.example.test")])
    args = ["chain", str(leaf.path), str(inter.path), "--ca-file", str(root.path), "--json"]
    failed = run_tlskit(*args, cwd=tmp_path)
    assert failed.returncode == 1
    doc = failed.json
    assert doc["ok"] is False and [p["rule"] for p in doc["problems"]] == ["cn_not_in_sans"]
    assert {"level": "error", "code": "cn_not_in_sans"}.items() <= doc["findings"][0].items()
    assert "not one of its SANs" in doc["error"]
    lenient = run_tlskit(*args, "--lenient", cwd=tmp_path)
    assert lenient.returncode == 0, lenient.stderr
    assert "cn_not_in_sans" in [f["code"] for f in lenient.json["findings"] if f["level"] == "warning"]
    text = run_tlskit(*args[:-1], "--lenient", cwd=tmp_path)
    assert "warning: the subject CN 'www.example.test'" in text.stderr


def test_chain_purpose_client(tmp_path, pki):
    root, inter, leaf = pki.chain(cn="alice", sans=None, eku=(x509.ExtendedKeyUsage([CLIENT_AUTH]), False))
    files = [str(leaf.path), str(inter.path), "--ca-file", str(root.path)]
    run = run_tlskit("chain", *files, "--purpose", "client", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.json["purpose"] == "client"
    assert_one_line_error(run_tlskit("chain", *files, cwd=tmp_path), 1, "clientAuth, not serverAuth")
    assert_one_line_error(run_tlskit("chain", *files, "--purpose", "client", "--host", "x.example", cwd=tmp_path), 2,
                          "--host")
    assert_one_line_error(run_tlskit("chain", *files, "--purpose", "robot", cwd=tmp_path), 2, "--purpose")
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path], extra=("-purpose", "sslclient"))[0] == 0


def test_verify_client_chain_for_the_server(pki):
    from tlskit.verdict import verify_client_chain

    root, inter, leaf = pki.chain(cn="bob", sans=None, eku=(x509.ExtendedKeyUsage([CLIENT_AUTH]), False))
    assert verify_client_chain([leaf.cert, inter.cert], root.path).verified
    server_only = pki.issue("srv", "bob", inter, ca=False)
    assert [p.rule for p in verify_client_chain([server_only.cert, inter.cert], root.path).problems] == [
        "leaf_eku_wrong_purpose"]
    expired = pki.issue("old", "bob", inter, ca=False, sans=None, eku=(x509.ExtendedKeyUsage([CLIENT_AUTH]), False),
                        not_before=NOW - 9 * DAY, not_after=NOW - DAY / 2)
    assert [p.rule for p in verify_client_chain([expired.cert, inter.cert], root.path).problems] == ["expired"]
    assert verify_client_chain([expired.cert, inter.cert], root.path, at=NOW - DAY * 3 / 4).verified
