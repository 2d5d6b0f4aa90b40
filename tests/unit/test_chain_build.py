"""What tlskit.chain.build says about a chain: each finding whole (level, code, message, subject), each error's
what, why and fix with the report built so far, the options handed on to the verifier, the weak-signature
warning and the CAs completed above a trust anchor, on certificates built in-process."""

from __future__ import annotations

import pytest
from cryptography import x509

from peers_verdicts import make_crl
from tlskit.chain.build import build_chain
from tlskit.chain.inputs import Input
from tlskit.chain.report import ChainError, Finding
from tlskit.errors import InputError
from tlskit.revocation.status import RevocationStatus
from tlskit.trust import TrustStore
from unit_pki import DAY, NOW, FastPki, role_key, rsa_role_key, weak_signed

# The findings' texts are checked as the CLI prints them.
pytestmark = pytest.mark.usefixtures("cli_spelling")

CA_ISSUERS_URL = "http://ca.test/build-int.der"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return FastPki(tmp_path_factory.mktemp("chain-build"))


@pytest.fixture(scope="module")
def four(pki):
    """root -> int1 -> int2 -> leaf (www.example.test)."""
    root = pki.issue("root", "Build Root", None, ca=True)
    int1 = pki.issue("int1", "Build Int 1", root, ca=True)
    int2 = pki.issue("int2", "Build Int 2", int1, ca=True)
    leaf = pki.issue("leaf", "www.example.test", int2, ca=False)
    return root, int1, int2, leaf


@pytest.fixture(scope="module")
def aia_leaf(pki, four):
    """A leaf under int2 whose AIA names where int2 can be downloaded."""
    aia = x509.AuthorityInformationAccess([x509.AccessDescription(
        x509.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(CA_ISSUERS_URL))])
    return pki.issue("aia-leaf", "www.example.test", four[2], ca=False, extensions=[(aia, False)])


def inputs(*issued):
    return [Input(i.cert, i.path.name) for i in issued]


def said(error):
    """What the user is told: the error's what, why and fix."""
    return error.what, error.why, error.fix


def links(report):
    return [(link.certificate, link.role, link.source) for link in report.links]


class Downloads:
    """A fetcher that serves ``certs`` for every URL and remembers the URLs asked for."""

    def __init__(self, *certs: x509.Certificate) -> None:
        self.certs = list(certs)
        self.asked: list[str] = []

    def __call__(self, url: str) -> list[x509.Certificate]:
        self.asked.append(url)
        return self.certs


# ------------------------------------------------------------------------------------------- findings


def test_a_pile_of_cas_says_where_it_starts_and_what_it_dropped(four):
    root, int1, int2, _ = four
    report = build_chain(inputs(int1, root, int2, int1), None, now=NOW)
    assert report.findings == [
        Finding("info", "leaf_is_ca", "no domain certificate in the inputs; the chain starts at the CA /CN=Build Int 2",
                "/CN=Build Int 2"),
        Finding("info", "duplicates_dropped", "dropped 1 duplicate certificate"),
        Finding("info", "root_left_out", "left out the root /CN=Build Root (clients carry their own roots; "
                                         "--include-root keeps it)", "/CN=Build Root"),
    ]


def test_a_chain_that_ends_below_an_absent_ca_names_that_ca(four):
    _, int1, int2, leaf = four
    report = build_chain(inputs(leaf, int2, int1), None, now=NOW)
    assert links(report) == [(leaf.cert, "leaf", "leaf.pem"), (int2.cert, "intermediate", "int2.pem"),
                             (int1.cert, "intermediate", "int1.pem")]
    assert report.findings == [Finding("warning", "unverified_top", "the chain ends below /CN=Build Root, which is not "
                                       "in the inputs; it was not verified", "/CN=Build Root")]


def test_an_input_without_a_name_is_shown_as_from_the_inputs(four):
    root, int1, int2, leaf = four
    report = build_chain([*inputs(leaf, int1, root), Input(int2.cert, "")], None, now=NOW)
    assert [link.source for link in report.links] == ["leaf.pem", "inputs", "int1.pem", "root.pem"]


def test_expiry_warnings_name_the_certificate(pki):
    root = pki.issue("exp-root", "Exp Root", None, ca=True, not_after=NOW + 400 * DAY)
    inter = pki.issue("exp-int", "Exp Int", root, ca=True, not_after=NOW + 20 * DAY)
    leaf = pki.issue("exp-leaf", "www.example.test", inter, ca=False, not_after=NOW + 25 * DAY)
    report = build_chain(inputs(leaf, inter, root), None, now=NOW, include_root=True)
    assert report.findings == [
        Finding("warning", "leaf_expires_soon",
                f"the leaf expires in 25 days ({leaf.cert.not_valid_after_utc:%Y-%m-%d}); renew it",
                "/CN=www.example.test"),
        Finding("warning", "intermediate_expires_before_leaf",
                f"the intermediate /CN=Exp Int expires on {inter.cert.not_valid_after_utc:%Y-%m-%d}, before the leaf "
                f"({leaf.cert.not_valid_after_utc:%Y-%m-%d}); the chain stops verifying then", "/CN=Exp Int"),
    ]


def test_weak_signatures_are_named_below_the_root(pki):
    # An EC root that signs its own certificate and an RSA intermediate with SHA-1; the intermediate signs
    # the leaf with MD5. The root's own SHA-1 is no finding: clients never check a root's self-signature.
    root = pki.issue("weak-root", "Weak Root", None, ca=True)
    root.cert = weak_signed(root.cert, root.key, "sha1")
    rsa_key = rsa_role_key("weak-int")
    inter = pki.issue("weak-int", "Weak Int", root, ca=True, key=rsa_key)
    inter.cert = weak_signed(inter.cert, root.key, "sha1")
    leaf = pki.issue("weak-leaf", "www.example.test", inter, ca=False)
    leaf.cert = weak_signed(leaf.cert, rsa_key, "md5")
    report = build_chain(inputs(root, leaf, inter), None, now=NOW, include_root=True)
    assert [(c, role) for c, role, _ in links(report)] == [(leaf.cert, "leaf"), (inter.cert, "intermediate"),
                                                           (root.cert, "root")]
    assert report.findings == [
        Finding("warning", "weak_signature", "the leaf /CN=www.example.test is signed with MD5, which browsers reject; "
                                             "reissue it with SHA-256", "/CN=www.example.test"),
        Finding("warning", "weak_signature", "the intermediate /CN=Weak Int is signed with SHA-1, which browsers "
                                             "reject; reissue it with SHA-256", "/CN=Weak Int"),
    ]


# --------------------------------------------------------------------------------------------- errors


def test_a_self_signed_leaf_says_why_and_what_to_do(pki):
    leaf = pki.issue("build-selfsigned", "self.example.test", None, ca=False)
    for trust in (None, TrustStore("roots", [])):
        with pytest.raises(ChainError) as caught:
            build_chain(inputs(leaf), trust, now=NOW)
        assert said(caught.value) == (
            "the leaf /CN=self.example.test is self-signed",
            "a self-signed certificate has no chain; clients trust it only where it is installed",
            "have it signed by a CA (tlskit ca sign), or install it on the clients")
        assert links(caught.value.report) == [(leaf.cert, "leaf", "build-selfsigned.pem")]


def test_cas_only_with_no_bottom_says_what_to_add(pki, four):
    root, int1, _, _ = four
    sibling = pki.issue("build-sibling", "Build Sibling", root, ca=True)
    with pytest.raises(InputError) as caught:
        build_chain(inputs(int1, sibling, root), None, now=NOW)
    assert said(caught.value) == (
        "no domain (end-entity) certificate among the 3 input certificates", "they are all CA certificates",
        "add the domain's certificate")


def test_two_leaves_without_a_key_are_both_named(pki, four):
    _, _, int2, leaf = four
    other = pki.issue("build-leaf-b", "b.example.test", int2, ca=False)
    with pytest.raises(InputError) as caught:
        build_chain(inputs(leaf, other, int2), None, now=NOW)
    assert said(caught.value) == (
        "2 domain certificates in the inputs: /CN=www.example.test (leaf.pem), /CN=b.example.test (build-leaf-b.pem)",
        None, "give one site's certificate at a time, or pass --key to pick the one for that key")


def test_an_expired_certificate_says_to_renew_it(pki, four):
    root = four[0]
    old = pki.issue("build-old-int", "Build Old Int", root, ca=True, not_before=NOW - 90 * DAY, not_after=NOW - DAY)
    leaf = pki.issue("build-old-leaf", "www.example.test", old, ca=False)
    with pytest.raises(ChainError) as caught:
        build_chain(inputs(leaf, old, root), None, now=NOW)
    assert said(caught.value) == (
        f"the intermediate /CN=Build Old Int expired on {old.cert.not_valid_after_utc:%Y-%m-%d}", None,
        "renew it, or get the current certificate from your CA")
    assert [c for c, _, _ in links(caught.value.report)] == [leaf.cert, old.cert, root.cert]


def test_a_certificate_not_yet_valid_asks_about_the_clock(pki, four):
    root, int1, _, _ = four
    future = pki.issue("build-future", "www.example.test", int1, ca=False, not_before=NOW + 2 * DAY)
    with pytest.raises(ChainError) as caught:
        build_chain(inputs(future, int1, root), None, now=NOW)
    assert said(caught.value) == (
        f"the leaf /CN=www.example.test is not valid before {future.cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
        "is this machine's clock right?", "check the clock, or wait")
    assert [c for c, _, _ in links(caught.value.report)] == [future.cert, int1.cert, root.cert]


def test_without_trust_store_a_gap_after_fetching_says_there_is_nothing_to_fetch(four):
    _, _, _, leaf = four
    downloads = Downloads()
    with pytest.raises(ChainError) as caught:
        build_chain(inputs(leaf), None, now=NOW, fetch=True, fetcher=downloads)
    assert said(caught.value) == (
        "missing intermediate: no certificate for /CN=Build Int 2",
        "the issuer of /CN=www.example.test is neither in the inputs nor a root of the trust store",
        "add it to the inputs (your CA's intermediate or chain file); the certificate has no AIA caIssuers URL to "
        "fetch it from")
    assert links(caught.value.report) == [(leaf.cert, "leaf", "leaf.pem")] and downloads.asked == []


# ---------------------------------------------------------------------------- what the verifier is given


def test_the_host_is_kept_in_the_report(four):
    root, int1, int2, leaf = four
    report = build_chain(inputs(leaf, int2, int1), TrustStore("test roots", [root.cert]), now=NOW,
                         host="www.example.test")
    assert report.verified and report.host == "www.example.test"


def test_nothing_is_downloaded_unless_fetch_is_asked_for(four, aia_leaf):
    root, int1, int2, _ = four
    for trust in (None, TrustStore("test roots", [root.cert])):
        downloads = Downloads(int2.cert)
        with pytest.raises(ChainError) as caught:
            build_chain(inputs(aia_leaf, int1, root), trust, now=NOW, fetcher=downloads)
        assert caught.value.what == "missing intermediate: no certificate for /CN=Build Int 2"
        assert caught.value.fix == ("add it to the inputs (your CA's intermediate or chain file), or pass --fetch to "
                                    f"download it from {CA_ISSUERS_URL}")
        assert downloads.asked == []


def test_with_a_trust_store_fetch_downloads_the_missing_intermediate(four, aia_leaf):
    root, int1, int2, _ = four
    downloads = Downloads(int2.cert)
    report = build_chain(inputs(aia_leaf, int1), TrustStore("test roots", [root.cert]), now=NOW, fetch=True,
                         fetcher=downloads)
    assert report.verified and downloads.asked == [CA_ISSUERS_URL]
    assert links(report) == [(aia_leaf.cert, "leaf", "aia-leaf.pem"), (int2.cert, "intermediate", CA_ISSUERS_URL),
                             (int1.cert, "intermediate", "int1.pem"), (root.cert, "root", "test roots")]
    assert report.findings == [
        Finding("info", "fetched", f"fetched /CN=Build Int 2 from {CA_ISSUERS_URL}", "/CN=Build Int 2"),
        Finding("info", "root_left_out", "left out the root /CN=Build Root (clients carry their own roots; "
                                         "--include-root keeps it)", "/CN=Build Root"),
    ]


def test_with_a_trust_store_a_failed_fetch_is_a_gap_that_names_the_store(four, aia_leaf):
    root, int1, _, _ = four
    downloads = Downloads()
    with pytest.raises(ChainError) as caught:
        build_chain(inputs(aia_leaf, int1), TrustStore("test roots", [root.cert]), now=NOW, fetch=True,
                    fetcher=downloads)
    assert said(caught.value) == (
        "missing intermediate: no certificate for /CN=Build Int 2",
        "the issuer of /CN=www.example.test is neither in the inputs nor a root of test roots",
        "add it to the inputs (your CA's intermediate or chain file)")
    assert downloads.asked == [CA_ISSUERS_URL]


def test_ocsp_is_asked_only_when_wanted(four):
    # None of these certificates names a responder: asking records each as unchecked, without any network.
    root, int1, int2, leaf = four
    trust = TrustStore("test roots", [root.cert])
    assert build_chain(inputs(leaf, int2, int1), trust, now=NOW).verdict.revocation == []
    report = build_chain(inputs(leaf, int2, int1), trust, now=NOW, ocsp=True)
    assert report.verdict.revocation == [RevocationStatus(0, "/CN=www.example.test", "ocsp", "unchecked"),
                                         RevocationStatus(1, "/CN=Build Int 2", "ocsp", "unchecked"),
                                         RevocationStatus(2, "/CN=Build Int 1", "ocsp", "unchecked")]


def test_the_crls_given_are_checked(pki, four):
    root, int1, int2, leaf = four
    crl = x509.load_pem_x509_crl(make_crl(pki, "build-int2", int2, [leaf]).read_bytes())
    trust = TrustStore("test roots", [root.cert])
    with pytest.raises(ChainError) as caught:
        build_chain(inputs(leaf, int2, int1), trust, now=NOW, crls=[(crl, "int2.crl")])
    assert [(f.level, f.code, f.depth) for f in caught.value.report.findings] == [("error", "revoked", 0)]
    assert build_chain(inputs(leaf, int2, int1), trust, now=NOW).verified


# ----------------------------------------------------------------------------- above a trust anchor


def test_above_an_anchor_deeper_than_the_first_intermediate_the_root_is_added(four):
    root, int1, int2, leaf = four
    report = build_chain(inputs(leaf, int2, root), TrustStore("anchors", [int1.cert]), now=NOW, include_root=True)
    assert links(report) == [(leaf.cert, "leaf", "leaf.pem"), (int2.cert, "intermediate", "int2.pem"),
                             (int1.cert, "intermediate", "anchors"), (root.cert, "root", "root.pem")]


def test_above_an_anchor_cross_signed_cas_are_added_once(pki):
    # Loop A and Loop B each signed the other: above the anchor the chain takes each once, then stops.
    a_key, b_key = role_key("loop-a"), role_key("loop-b")
    a_root = pki.issue("loop-a-root", "Loop A", None, ca=True, key=a_key)
    b_root = pki.issue("loop-b-root", "Loop B", None, ca=True, key=b_key)
    a_by_b = pki.issue("loop-a-by-b", "Loop A", b_root, ca=True, key=a_key)
    b_by_a = pki.issue("loop-b-by-a", "Loop B", a_root, ca=True, key=b_key)
    inter = pki.issue("loop-int", "Loop Int", a_root, ca=True)
    leaf = pki.issue("loop-leaf", "www.example.test", inter, ca=False)
    report = build_chain(inputs(leaf, a_by_b, b_by_a), TrustStore("anchors", [inter.cert]), now=NOW)
    assert report.verified
    assert links(report) == [(leaf.cert, "leaf", "loop-leaf.pem"), (inter.cert, "intermediate", "anchors"),
                             (a_by_b.cert, "intermediate", "loop-a-by-b.pem"),
                             (b_by_a.cert, "intermediate", "loop-b-by-a.pem")]
    assert report.findings == [] and report.dropped == []
