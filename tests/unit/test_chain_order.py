"""Ordering a pile into a chain (tlskit.chain.build): the exact order, the certificate picked at each step,
what is dropped and said, on certificates built in-process."""

from __future__ import annotations

import random

import pytest
from cryptography import x509

from tlskit.certificates import fingerprint
from tlskit.chain.build import build_chain
from tlskit.chain.inputs import Input
from tlskit.chain.report import ChainError
from tlskit.errors import InputError, NetworkError
from tlskit.trust import TrustStore
from unit_pki import DAY, NOW, FastPki, role_key

# The findings' texts are checked as the CLI prints them.
pytestmark = pytest.mark.usefixtures("cli_spelling")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return FastPki(tmp_path_factory.mktemp("chain-order"))


@pytest.fixture(scope="module")
def four(pki):
    """root -> int1 -> int2 -> leaf, and an unrelated CA."""
    root = pki.issue("root", "Order Root", None, ca=True)
    int1 = pki.issue("int1", "Order Int 1", root, ca=True)
    int2 = pki.issue("int2", "Order Int 2", int1, ca=True)
    leaf = pki.issue("leaf", "www.example.test", int2, ca=False)
    other = pki.issue("other", "Other CA", None, ca=True)
    return root, int1, int2, leaf, other


def inputs(*issued):
    return [Input(i.cert, i.path.name) for i in issued]


def order(report):
    return [(link.certificate, link.role) for link in report.links]


def codes(report):
    return [f.code for f in report.findings]


def message(report, code):
    return next(f.message for f in report.findings if f.code == code)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_shuffled_pile_without_trust_store_is_ordered_leaf_to_root(four, seed):
    root, int1, int2, leaf, other = four
    pile = inputs(root, int1, int2, leaf, other, int1)
    random.Random(seed).shuffle(pile)
    report = build_chain(pile, None, now=NOW)
    assert order(report) == [(leaf.cert, "leaf"), (int2.cert, "intermediate"), (int1.cert, "intermediate"),
                             (root.cert, "root")]
    assert [link.source for link in report.links] == ["leaf.pem", "int2.pem", "int1.pem", "root.pem"]
    assert sorted((item.certificate.serial_number, why) for item, why in report.dropped) == sorted(
        [(int1.cert.serial_number, "duplicate"), (other.cert.serial_number, "unrelated")])
    assert codes(report) == ["duplicates_dropped", "unrelated_dropped", "root_left_out"]
    assert message(report, "duplicates_dropped") == "dropped 1 duplicate certificate"
    assert message(report, "unrelated_dropped") == "dropped 1 certificate not in the leaf's chain: /CN=Other CA"
    assert message(report, "root_left_out") == ("left out the root /CN=Order Root (clients carry their own roots; "
                                                "--include-root keeps it)")
    assert report.verified is False and report.trust == "none"


def test_include_root_keeps_it_and_says_nothing(four):
    root, int1, int2, leaf, _ = four
    report = build_chain(inputs(leaf, int1, int2, root), None, now=NOW, include_root=True)
    assert [c for c, _ in order(report)] == [leaf.cert, int2.cert, int1.cert, root.cert]
    assert codes(report) == []


def test_plural_counts_and_more(pki, four):
    root, int1, int2, leaf, _ = four
    unrelated = [pki.issue(f"unrelated{i}", f"Unrelated {i}", None, ca=True) for i in range(4)]
    report = build_chain(inputs(leaf, int2, int2, int1, int1, root, *unrelated), None, now=NOW, include_root=True)
    assert message(report, "duplicates_dropped") == "dropped 2 duplicate certificates"
    assert message(report, "unrelated_dropped") == ("dropped 4 certificates not in the leaf's chain: /CN=Unrelated 0, "
                                                    "/CN=Unrelated 1, /CN=Unrelated 2 and 1 more")
    three = build_chain(inputs(leaf, int2, int1, root, *unrelated[:3]), None, now=NOW, include_root=True)
    assert message(three, "unrelated_dropped").endswith("/CN=Unrelated 2")


def test_verified_chain_takes_the_root_from_the_trust_store(four):
    root, int1, int2, leaf, _ = four
    trust = TrustStore("test roots", [root.cert])
    report = build_chain(inputs(int1, leaf, int2), trust, now=NOW, host="www.example.test")
    assert report.verified is True and report.trust == "test roots"
    assert order(report) == [(leaf.cert, "leaf"), (int2.cert, "intermediate"), (int1.cert, "intermediate"),
                             (root.cert, "root")]
    assert [link.source for link in report.links] == ["leaf.pem", "int2.pem", "int1.pem", "test roots"]
    assert codes(report) == ["root_left_out"]


def test_issuer_above_an_anchor_must_have_signed_it(pki):
    # The trust anchor is an intermediate; above it the fullchain carries the root that signed it, never a
    # certificate that merely has the root's name (a re-keyed or forged "root" that would sort first:
    # trusted, or valid longer).
    root = pki.issue("sig-root", "Sig Root", None, ca=True)
    forged_trusted = pki.issue("sig-forged-trusted", "Sig Root", None, ca=True, not_after=NOW + 390 * DAY)
    forged_pooled = pki.issue("sig-forged-pooled", "Sig Root", None, ca=True, not_after=NOW + 380 * DAY)
    inter = pki.issue("sig-int", "Sig Int", root, ca=True)
    leaf = pki.issue("sig-leaf", "www.example.test", inter, ca=False)
    report = build_chain(inputs(leaf, forged_pooled, root), TrustStore("anchors", [inter.cert, forged_trusted.cert]),
                         now=NOW)
    assert order(report) == [(leaf.cert, "leaf"), (inter.cert, "intermediate"), (root.cert, "root")]
    assert report.links[2].source == "sig-root.pem"
    # Only impostors above the anchor: the chain ends at the anchor.
    alone = build_chain(inputs(leaf, forged_pooled), TrustStore("anchors", [inter.cert, forged_trusted.cert]), now=NOW)
    assert order(alone) == [(leaf.cert, "leaf"), (inter.cert, "intermediate")]
    assert [item.certificate for item, why in alone.dropped] == [forged_pooled.cert]


def test_above_an_anchor_trusted_first_then_valid_longest_then_fingerprint(pki):
    key = role_key("rank-root")
    short = pki.issue("rank-short", "Rank Root", None, ca=True, key=key, not_after=NOW + 40 * DAY)
    long_ = pki.issue("rank-long", "Rank Root", None, ca=True, key=key, not_after=NOW + 60 * DAY)
    twin_a = pki.issue("rank-twin-a", "Rank Root", None, ca=True, key=key, not_after=NOW + 50 * DAY)
    twin_b = pki.issue("rank-twin-b", "Rank Root", None, ca=True, key=key, not_after=NOW + 50 * DAY)
    inter = pki.issue("rank-int", "Rank Int", short, ca=True)
    leaf = pki.issue("rank-leaf", "www.example.test", inter, ca=False)

    def top(pool, anchors):
        report = build_chain(inputs(leaf, *pool), TrustStore("anchors", [inter.cert, *(a.cert for a in anchors)]), now=NOW)
        return report.links[-1]

    link = top([long_], [short])
    assert (link.certificate, link.role, link.source) == (short.cert, "root", "anchors")  # trusted before longer
    assert top([short, long_], []).certificate == long_.cert  # valid longest
    expected = min((twin_a, twin_b), key=lambda t: fingerprint(t.cert)).cert
    assert top([twin_a, twin_b], []).certificate == expected
    assert top([twin_b, twin_a], []).certificate == expected


def test_above_an_anchor_at_most_max_depth_certificates(pki):
    cas = [pki.issue("deep0", "Deep 0", None, ca=True)]
    for i in range(1, 12):
        cas.append(pki.issue(f"deep{i}", f"Deep {i}", cas[-1], ca=True))
    leaf = pki.issue("deep-leaf", "www.example.test", cas[-1], ca=False)
    report = build_chain(inputs(leaf, *cas[:-1]), TrustStore("anchors", [cas[-1].cert]), now=NOW)
    assert [link.certificate for link in report.links] == [leaf.cert, *[c.cert for c in reversed(cas[3:])]]


def test_without_trust_store_the_path_to_a_root_wins_then_the_longest(pki):
    root = pki.issue("pref-root", "Pref Root", None, ca=True)
    key = role_key("pref-int")
    # Two intermediates with the same name and key: one under the root, one under a CA whose issuer is absent.
    rooted = pki.issue("pref-int-rooted", "Pref Int", root, ca=True, key=key, not_after=NOW + 300 * DAY)
    lost_top = pki.issue("pref-mid", "Pref Mid", pki.issue("pref-absent", "Pref Absent", None, ca=True), ca=True)
    lost = pki.issue("pref-int-lost", "Pref Int", lost_top, ca=True, key=key, not_after=NOW + 325 * DAY)
    leaf = pki.issue("pref-leaf", "www.example.test", rooted, ca=False)
    # The search tries the one valid longer first; the path to a root still wins.
    report = build_chain(inputs(leaf, lost, lost_top, rooted, root), None, now=NOW)
    assert [c for c, _ in order(report)] == [leaf.cert, rooted.cert, root.cert]
    # Without the root: the longest path, which ends below an issuer not in the inputs.
    report = build_chain(inputs(leaf, rooted, lost, lost_top), None, now=NOW)
    assert [c for c, _ in order(report)] == [leaf.cert, lost.cert, lost_top.cert]
    assert codes(report) == ["unverified_top", "unrelated_dropped"]
    assert message(report, "unverified_top") == ("the chain ends below /CN=Pref Absent, which is not in the inputs; "
                                                 "it was not verified")
    assert [f.level for f in report.findings] == ["warning", "info"]


def test_equal_paths_keep_the_search_order(pki):
    key = role_key("tie-int")
    absent = pki.issue("tie-absent", "Tie Absent", None, ca=True)
    first = pki.issue("tie-int-a", "Tie Int", absent, ca=True, key=key, not_after=NOW + 340 * DAY)
    second = pki.issue("tie-int-b", "Tie Int", absent, ca=True, key=key, not_after=NOW + 335 * DAY)
    leaf = pki.issue("tie-leaf", "www.example.test", first, ca=False)
    for pile in ([leaf, second, first], [leaf, first, second]):
        assert [c for c, _ in order(build_chain(inputs(*pile), None, now=NOW))] == [leaf.cert, first.cert]


def test_at_most_max_candidates_paths_are_compared(pki):
    # 16 intermediates with the issuer's name and key come first in the search (valid longer), each ending
    # below an absent CA; the 17th, under a root, is never looked at.
    key = role_key("many-int")
    absent = pki.issue("many-absent", "Many Absent", None, ca=True)
    root = pki.issue("many-root", "Many Root", None, ca=True)
    dead = [pki.issue(f"many-dead{i}", "Many Int", absent, ca=True, key=key, not_after=NOW + (350 + i) * DAY)
            for i in range(16)]
    rooted = pki.issue("many-rooted", "Many Int", root, ca=True, key=key, not_after=NOW + 340 * DAY)
    leaf = pki.issue("many-leaf", "www.example.test", rooted, ca=False)
    report = build_chain(inputs(leaf, rooted, root, *dead), None, now=NOW)
    assert [c for c, _ in order(report)] == [leaf.cert, dead[-1].cert]
    fifteen = build_chain(inputs(leaf, rooted, root, *dead[1:]), None, now=NOW)
    assert [c for c, _ in order(fifteen)] == [leaf.cert, rooted.cert, root.cert]


def test_a_leaf_without_issuer_is_a_gap(four):
    _, _, _, leaf, other = four
    with pytest.raises(ChainError) as caught:
        build_chain(inputs(leaf, other), None, now=NOW)
    assert str(caught.value).startswith("missing intermediate: no certificate for /CN=Order Int 2")


def test_fetch_fills_the_gap_and_a_failed_download_is_the_error(pki):
    from cryptography import x509

    root = pki.issue("aia-root", "AIA Root", None, ca=True)
    inter = pki.issue("aia-int", "AIA Int", root, ca=True)
    aia = x509.AuthorityInformationAccess([x509.AccessDescription(
        x509.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier("http://ca.test/int.der"))])
    leaf = pki.issue("aia-leaf", "www.example.test", inter, ca=False, extensions=[(aia, False)])
    asked = []

    def serve(url):
        asked.append(url)
        return [inter.cert]

    report = build_chain(inputs(leaf, root), None, now=NOW, fetch=True, fetcher=serve)
    assert [c for c, _ in order(report)] == [leaf.cert, inter.cert, root.cert]
    assert report.links[1].source == "http://ca.test/int.der" and asked == ["http://ca.test/int.der"]
    assert message(report, "fetched") == "fetched /CN=AIA Int from http://ca.test/int.der"
    with pytest.raises(ChainError, match="^missing intermediate"):
        build_chain(inputs(leaf, root), None, now=NOW, fetch=False, fetcher=serve)

    def fail(url):
        raise NetworkError("the issuer certificate: connection refused")

    with pytest.raises(NetworkError, match="connection refused"):
        build_chain(inputs(leaf, root), None, now=NOW, fetch=True, fetcher=fail)


def test_self_signed_leaf_has_no_chain(pki):
    leaf = pki.issue("selfsigned", "www.example.test", None, ca=False)
    for trust in (None, TrustStore("roots", [])):
        with pytest.raises(ChainError, match=r"^the leaf /CN=www.example.test is self-signed"):
            build_chain(inputs(leaf), trust, now=NOW)


def test_the_key_picks_the_leaf_and_must_match(pki, four):
    root, int1, int2, leaf, _ = four
    other_leaf = pki.issue("leaf-b", "b.example.test", int2, ca=False)
    pile = inputs(other_leaf, leaf, int2, int1, root)
    report = build_chain(pile, None, now=NOW, key=leaf.key)
    assert report.links[0].certificate == leaf.cert
    assert build_chain(pile, None, now=NOW, key=other_leaf.key).links[0].certificate == other_leaf.cert
    with pytest.raises(InputError) as caught:
        build_chain(pile, None, now=NOW)
    assert str(caught.value).startswith(
        "2 domain certificates in the inputs: /CN=b.example.test (leaf-b.pem), /CN=www.example.test (leaf.pem)")
    with pytest.raises(InputError):
        build_chain(pile, None, now=NOW, key=role_key("nobody"))
    with pytest.raises(ChainError, match=r"^the key does not match the leaf /CN=www.example.test"):
        build_chain(inputs(leaf, int2, int1, root), None, now=NOW, key=role_key("nobody"))


def test_five_leaves_are_named_four_and_more(pki, four):
    int2 = four[2]
    leaves = [pki.issue(f"five{i}", f"h{i}.example.test", int2, ca=False) for i in range(5)]
    with pytest.raises(InputError) as caught:
        build_chain(inputs(*leaves, int2), None, now=NOW)
    assert str(caught.value).startswith("5 domain certificates in the inputs: /CN=h0.example.test (five0.pem), ")
    assert "/CN=h3.example.test (five3.pem) and 1 more" in str(caught.value)
    with pytest.raises(InputError) as four_only:
        build_chain(inputs(*leaves[:4], int2), None, now=NOW)
    assert "more" not in str(four_only.value)


def test_a_pile_of_cas_starts_at_the_bottom_ca(pki, four):
    root, int1, int2, _, other = four
    report = build_chain(inputs(int1, root, int2), None, now=NOW)
    assert order(report) == [(int2.cert, "leaf"), (int1.cert, "intermediate"), (root.cert, "root")]
    assert report.findings[0].code == "leaf_is_ca" and report.findings[0].level == "info"
    assert report.findings[0].message == ("no domain certificate in the inputs; the chain starts at the CA "
                                          "/CN=Order Int 2")
    sibling = pki.issue("sibling", "Sibling Int", root, ca=True)
    with pytest.raises(InputError, match=r"^no domain \(end-entity\) certificate among the 4 input certificates"):
        build_chain(inputs(int2, sibling, int1, root), None, now=NOW)
    # A self-issued CA alone is no bottom either.
    with pytest.raises(InputError):
        build_chain(inputs(root), None, now=NOW)


def test_host_is_for_servers_only(four):
    root, int1, int2, leaf, _ = four
    with pytest.raises(InputError, match=r"^--host names a server"):
        build_chain(inputs(leaf), None, host="www.example.test", purpose="client")


def test_ignored_keys_are_counted(four):
    root, int1, int2, leaf, _ = four
    report = build_chain(inputs(leaf, int2, int1, root), None, now=NOW, ignored_keys=2, include_root=True)
    assert codes(report) == ["keys_ignored"]
    assert message(report, "keys_ignored") == ("ignored 2 private key(s) in the inputs (pass a key with --key to "
                                               "check it)")


def test_expired_or_not_yet_valid_certificates_are_named(pki, four):
    root, int1, _, _, _ = four
    old = pki.issue("old-int", "Old Int", root, ca=True, not_before=NOW - 90 * DAY, not_after=NOW - 10 * DAY)
    leaf = pki.issue("old-leaf", "www.example.test", old, ca=False)
    with pytest.raises(ChainError) as caught:
        build_chain(inputs(leaf, old, root), None, now=NOW)
    assert str(caught.value).startswith(f"the intermediate /CN=Old Int expired on {old.cert.not_valid_after_utc:%Y-%m-%d}")
    future = pki.issue("future-leaf", "www.example.test", int1, ca=False, not_before=NOW + 2 * DAY)
    with pytest.raises(ChainError) as caught:
        build_chain(inputs(future, int1, root), None, now=NOW)
    assert str(caught.value).startswith(
        f"the leaf /CN=www.example.test is not valid before {future.cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")


def test_expiry_warnings(pki):
    root = pki.issue("long-root", "Long Root", None, ca=True, not_after=NOW + 400 * DAY)
    inter = pki.issue("long-int", "Long Int", root, ca=True, not_after=NOW + 400 * DAY)
    leaf = pki.issue("soon-leaf", "www.example.test", inter, ca=False, not_after=NOW + 40 * DAY)
    at_30 = leaf.cert.not_valid_after_utc - 30 * DAY
    report = build_chain(inputs(leaf, inter, root), None, now=at_30, include_root=True)
    assert codes(report) == ["leaf_expires_soon"] and report.findings[0].level == "warning"
    assert message(report, "leaf_expires_soon") == (
        f"the leaf expires in 30 days ({leaf.cert.not_valid_after_utc:%Y-%m-%d}); renew it")
    assert codes(build_chain(inputs(leaf, inter, root), None, now=at_30 - DAY, include_root=True)) == []
    short_int = pki.issue("short-int", "Short Int", root, ca=True, not_after=NOW + 40 * DAY)
    for not_after, expected in ((NOW + 41 * DAY, ["intermediate_expires_before_leaf"]), (NOW + 40 * DAY, [])):
        later = pki.issue("later-leaf", "www.example.test", short_int, ca=False, not_after=not_after)
        report = build_chain(inputs(later, short_int, root), None, now=NOW, include_root=True)
        assert codes(report) == expected
    later = pki.issue("later-leaf", "www.example.test", short_int, ca=False, not_after=NOW + 41 * DAY)
    report = build_chain(inputs(later, short_int, root), None, now=NOW, include_root=True)
    assert report.findings[0].level == "warning"
    assert message(report, "intermediate_expires_before_leaf") == (
        f"the intermediate /CN=Short Int expires on {short_int.cert.not_valid_after_utc:%Y-%m-%d}, before the leaf "
        f"({later.cert.not_valid_after_utc:%Y-%m-%d}); the chain stops verifying then")


def test_verification_uses_the_host_purpose_time_and_leniency_asked_for(pki, four):
    root, int1, int2, leaf, _ = four
    trust = TrustStore("test roots", [root.cert])
    pile = inputs(leaf, int2, int1)
    with pytest.raises(ChainError) as caught:
        build_chain(pile, trust, now=NOW, host="www.other.test")
    assert caught.value.what == "the leaf is not valid for www.other.test: it names DNS:www.example.test"
    report = caught.value.report
    assert report.verdict is not None and report.verified is False
    assert [(f.level, f.code, f.openssl_code) for f in report.findings] == [("error", "hostname_mismatch", 62)]
    with pytest.raises(ChainError) as caught:
        build_chain(pile, trust, purpose="client")  # now: the current time
    assert [f.code for f in caught.value.report.findings] == ["leaf_eku_wrong_purpose"]
    assert caught.value.report.purpose == "client"
    with pytest.raises(ChainError) as caught:
        build_chain(pile, trust, now=NOW - 3 * DAY)
    assert [f.code for f in caught.value.report.findings] == ["not_yet_valid"] * 4
    # A Web PKI finding fails the chain unless lenient makes it a warning.
    odd = pki.issue("cn-leaf", "cn.example.test", int2, ca=False, sans=[x509.DNSName("www.example.test")])
    with pytest.raises(ChainError):
        build_chain(inputs(odd, int2, int1), trust, now=NOW)
    lenient = build_chain(inputs(odd, int2, int1), trust, now=NOW, lenient=True)
    assert lenient.verified and [(f.level, f.code) for f in lenient.findings] == [("warning", "cn_not_in_sans"),
                                                                                   ("info", "root_left_out")]


def test_a_pile_of_cas_verifies_as_a_ca_chain(four):
    root, int1, int2, _, _ = four
    report = build_chain(inputs(int2, int1), TrustStore("test roots", [root.cert]), now=NOW)
    assert report.verified and codes(report) == ["leaf_is_ca", "root_left_out"]


def test_errors_say_what_to_do(four):
    root, int1, int2, leaf, _ = four
    with pytest.raises(InputError) as caught:
        build_chain(inputs(leaf), None, host="www.example.test", purpose="client")
    assert caught.value.fix == "drop --host, or drop --purpose client"
    with pytest.raises(ChainError) as caught:
        build_chain(inputs(leaf, int2, int1, root), None, now=NOW, key=role_key("nobody"))
    assert caught.value.fix == "pass the private key this certificate was issued for"
    assert caught.value.report.links[0].certificate == leaf.cert
    report = build_chain(inputs(leaf, int2, int1, root), None, now=NOW, ignored_keys=1, include_root=True)
    assert [(f.level, f.code) for f in report.findings] == [("info", "keys_ignored")]
