"""The extension rules of leaves and CAs, one case each, next to `openssl verify -x509_strict` and `cryptography`.

Each case is refused by `cryptography`'s WebPKI verifier too, so they are errors, not findings: ``--lenient``
does not pass them. Where OpenSSL has an opinion, its first number is tlskit's first.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from peers_verdicts import SERVER_AUTH, Pki, name, openssl_verify
from tlskit.trust import TrustStore
from tlskit.verdict import VerifyOptions, parse_host, verify


def key_usage(**allowed: bool) -> x509.KeyUsage:
    flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                 key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)
    return x509.KeyUsage(**{**flags, **allowed})


def leaf_with(subject="www.example.test", **kwargs):
    return lambda pki, inter: pki.issue("leaf", subject, inter, ca=False, **kwargs)


# (rule case, how the intermediate differs, how the leaf differs, tlskit's problems, openssl's first number or None
# where -x509_strict has no opinion)
CASES = [
    ("leaf_key_cert_sign", {}, leaf_with(key_usage=key_usage(digital_signature=True, key_cert_sign=True)),
     [("leaf_key_cert_sign", 82, 0)], 82),
    ("leaf_name_constraints", {}, leaf_with(extensions=[(x509.NameConstraints([x509.DNSName("example.test")], None),
                                                         True)]),
     [("leaf_name_constraints", 41, 0)], None),
    ("san_critical", {}, leaf_with(sans=None, extensions=[
        (x509.SubjectAlternativeName([x509.DNSName("www.example.test")]), True)]), [("san_critical", 41, 0)], None),
    ("san_not_critical", {}, leaf_with(x509.Name([]), sans=[x509.DNSName("www.example.test")]),
     [("san_not_critical", 88, 0)], 88),
    ("leaf_san_missing", {}, leaf_with(sans=None), [("leaf_san_missing", 62, 0)], None),
    ("ca_key_usage_missing", {"key_usage": None}, leaf_with(), [("ca_key_usage_missing", 92, 1)], 92),
    ("ca_eku_critical", {"eku": (x509.ExtendedKeyUsage([SERVER_AUTH]), True)}, leaf_with(),
     [("ca_eku_critical", 41, 1)], None),
    ("key_cert_sign_missing", {"key_usage": key_usage(digital_signature=True, crl_sign=True)}, leaf_with(),
     [("issuer_not_ca", 79, 1), ("key_cert_sign_missing", 32, 1)], 79),
    ("issuer_not_ca", {"basic_constraints": (x509.BasicConstraints(ca=False, path_length=None), True)}, leaf_with(),
     [("issuer_not_ca", 79, 1)], 79),
]


@pytest.mark.parametrize("rule, inter_kwargs, make_leaf, expected, openssl_code", CASES, ids=[c[0] for c in CASES])
def test_extension_rules(tmp_path, rule, inter_kwargs, make_leaf, expected, openssl_code):
    pki = Pki(tmp_path / "pki")
    root = pki.root()
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True, **inter_kwargs)
    leaf = make_leaf(pki, inter)
    trust = TrustStore("test anchors", [root.cert])
    for lenient in (False, True):
        verdict = verify(leaf.cert, [inter.cert], trust, VerifyOptions(host=parse_host("www.example.test"),
                                                                       lenient=lenient))
        assert [(p.rule, p.code, p.depth) for p in verdict.problems] == expected
    code = openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path])[0]
    assert code == (openssl_code or 0)
    verifier = PolicyBuilder().store(Store([root.cert])).build_server_verifier(x509.DNSName("www.example.test"))
    with pytest.raises(VerificationError):
        verifier.verify(leaf.cert, [inter.cert])


def test_critical_key_identifiers_are_90_and_91(tmp_path):
    pki = Pki(tmp_path / "pki")
    root = pki.root()
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(inter.key.public_key())
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False, aki=False, ski=False, extensions=[
        (aki, True), (x509.SubjectKeyIdentifier(b"\x02" * 20), True)])
    verdict = verify(leaf.cert, [inter.cert], TrustStore("t", [root.cert]), VerifyOptions())
    assert [(p.rule, p.code) for p in verdict.problems] == [("authorityKeyIdentifier_critical", 90),
                                                            ("subjectKeyIdentifier_critical", 91)]
    # OpenSSL says 34 first: it does not count AKI and SKI among the extensions it processes when critical,
    # so it stops before its own -x509_strict check (90/91). tlskit names the precise fault.
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path])[0] == 34


def test_a_ca_aki_with_issuer_and_serial(tmp_path):
    pki = Pki(tmp_path / "pki")
    root = pki.root()
    inter = pki.issue("int", "Verdict Intermediate", root, ca=True, aki=False, extensions=[(x509.AuthorityKeyIdentifier(
        None, [x509.DirectoryName(name("Verdict Root"))], root.cert.serial_number), False)])
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False)
    verdict = verify(leaf.cert, [inter.cert], TrustStore("t", [root.cert]), VerifyOptions())
    assert [(p.rule, p.code, p.depth) for p in verdict.problems] == [("ca_aki_form", 41, 1), ("aki_missing", 85, 1)]
    assert openssl_verify(leaf, trusted=[root.path], untrusted=[inter.path])[0] == 85
