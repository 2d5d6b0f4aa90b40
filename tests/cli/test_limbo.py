"""x509-limbo's path-validation vectors (a curated subset, fixtures/limbo/) through tlskit's verdict and
`cryptography`'s verifier.

Every case must get limbo's expected result from tlskit, except the few in the table below, each
with its reason; and wherever `cryptography` gets a case right, tlskit does too, or refuses only for
its Web PKI findings (and gets it right with ``--lenient``, which makes them warnings).
"""

from __future__ import annotations

import pytest

from peers_limbo import FAILURE, SUCCESS, case, cases, cryptography_verdict, tlskit_verdict
from tlskit.verdict import FINDINGS

# limbo says SUCCESS, tlskit refuses on purpose: the exact rules that fail.
STRICTER = {
    "pathlen::validation-ignores-pathlen-in-leaf": (
        ("leaf_is_ca", "cn_not_in_sans"),
        "the 'leaf' is a CA certificate, which no server should present (cryptography refuses it too), and its "
        "CN is none of its SANs"),
    "rfc5280::ca-nameconstraints-permitted-dns-match-more": (
        ("cn_not_in_sans",), "the CN example.com is not one of the SANs (CA/B BR 7.1.4.3), a Web PKI finding"),
    "rfc5280::ca-nameconstraints-permitted-ip-match": (
        ("cn_not_in_sans",), "the CN example.com is not one of the SANs (an IP address): a Web PKI finding"),
    "webpki::leftmost-wildcard-san": (
        ("cn_not_in_sans",), "the CN example.com is not one of the SANs (*.example.com): a Web PKI finding"),
    "rfc5280::ca-nameconstraints-permitted-dn-match": (
        ("hostname_mismatch", "cn_not_in_sans"),
        "limbo asks for example.com from a leaf whose only SAN is a directoryName; cryptography refuses it too"),
}

IDS = [c["id"] for c in cases()]


@pytest.mark.parametrize("case_id", IDS)
def test_tlskit_gives_limbos_verdict(case_id):
    limbo = case(case_id)
    verdict = tlskit_verdict(limbo)
    if case_id in STRICTER:
        assert limbo["expected_result"] == SUCCESS
        assert verdict.result == FAILURE and verdict.rules == STRICTER[case_id][0], verdict
    else:
        assert verdict.result == limbo["expected_result"], verdict


@pytest.mark.parametrize("case_id", IDS)
def test_tlskit_is_right_wherever_cryptography_is(case_id):
    limbo = case(case_id)
    verdict = tlskit_verdict(limbo)
    if verdict.result != limbo["expected_result"] and cryptography_verdict(limbo).result == limbo["expected_result"]:
        assert set(verdict.rules) <= FINDINGS, verdict
        assert tlskit_verdict(limbo, lenient=True).result == limbo["expected_result"]


def test_the_stricter_verdicts_are_findings_or_cryptographys_too():
    for case_id, (rules, _why) in STRICTER.items():
        if not set(rules) <= FINDINGS:
            assert cryptography_verdict(case(case_id)).result == FAILURE, case_id


def test_the_fixture_is_the_transcription_that_was_checked():
    # A mistyped character in a PEM makes it unparsable or breaks a signature; every certificate but a
    # trusted cross-signed intermediate (whose issuer limbo leaves out) is signed by one of its case.
    import warnings

    from cryptography import x509

    assert len(IDS) == len(set(IDS)) == 65
    for limbo in cases():
        pems = limbo["trusted_certs"] + limbo["untrusted_intermediates"] + [limbo["peer_certificate"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rfc5280::serial-number-zero
            certs = [x509.load_pem_x509_certificate(pem.encode()) for pem in pems]
        for cert in certs[len(limbo["trusted_certs"]):]:
            assert any(_signed_by(cert, issuer) for issuer in certs), (limbo["id"], cert.subject)


def _signed_by(cert, issuer) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except Exception:
        return False
    return True
