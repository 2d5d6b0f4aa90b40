"""The path search (tlskit.verdict.search) on its own: every candidate path in its exact order, why each one
stops, the bounds (path length, signature checks) and what is fetched, on certificates built in-process."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from tlskit.certificates import fingerprint
from tlskit.trust import TrustStore
from tlskit.verdict.search import (
    ANCHOR,
    BAD_SIGNATURE,
    MAX_PATH_LENGTH,
    MAX_SIGNATURE_CHECKS,
    MISSING_ISSUER,
    TOO_LONG,
    UNTRUSTED_ROOT,
    Candidate,
    PathSearch,
)
from unit_pki import DAY, NOW, FastPki, role_key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return FastPki(tmp_path_factory.mktemp("verdict-search"))


@pytest.fixture(scope="module")
def three(pki):
    """root -> int -> leaf."""
    root = pki.issue("root", "Search Root", None, ca=True)
    inter = pki.issue("int", "Search Int", root, ca=True)
    leaf = pki.issue("leaf", "www.example.test", inter, ca=False)
    return root.cert, inter.cert, leaf.cert


@pytest.fixture(scope="module")
def impostors(pki, three):
    """One more than the signature budget: CAs named like the intermediate, none with its key."""
    return [pki.issue(f"impostor{i}", "Search Int", None, ca=True, key=role_key("impostor")).cert
            for i in range(MAX_SIGNATURE_CHECKS + 1)]


def found(search: PathSearch, leaf: x509.Certificate) -> list[Candidate]:
    return list(search.candidates(leaf))


def test_a_trusted_leaf_is_its_own_anchor(three):
    _, inter, leaf = three
    search = PathSearch([inter], TrustStore("roots", [leaf]), NOW)
    assert found(search, leaf) == [Candidate((leaf,), ANCHOR)]
    assert search.signature_checks == 0


def test_each_signature_is_checked_once_and_only_a_self_issued_ca_is_checked_against_itself(three):
    root, inter, leaf = three
    search = PathSearch([root, inter], None, NOW)
    assert found(search, leaf) == [Candidate((leaf, inter, root), UNTRUSTED_ROOT)]
    assert search.signature_checks == 3  # int signed leaf, root signed int, root signed itself
    assert found(search, leaf) == [Candidate((leaf, inter, root), UNTRUSTED_ROOT)]
    assert search.signature_checks == 3 and search.exhausted is False


def test_the_signature_budget(three, impostors):
    root, inter, leaf = three
    search = PathSearch([], None, NOW)
    assert search.signs(inter, leaf) is True
    assert search.signs(impostors[0], leaf) is False  # each pair is its own answer
    for impostor in impostors[1:MAX_SIGNATURE_CHECKS - 1]:
        assert search.signs(impostor, leaf) is False
    assert (search.signature_checks, search.exhausted) == (MAX_SIGNATURE_CHECKS, False)
    assert search.signs(inter, leaf) is True  # answered before: no check, no budget
    assert search.signature_checks == MAX_SIGNATURE_CHECKS
    assert search.signs(root, inter) is False  # a good signature, but no check is left
    assert (search.signature_checks, search.exhausted) == (MAX_SIGNATURE_CHECKS, True)


def test_a_name_without_a_signer_is_a_bad_signature_unless_the_budget_ran_out(three, impostors):
    _, inter, leaf = three
    assert found(PathSearch([], None, NOW), leaf) == [Candidate((leaf,), MISSING_ISSUER)]
    search = PathSearch(impostors[:3], None, NOW)
    assert found(search, leaf) == [Candidate((leaf,), BAD_SIGNATURE)]
    assert (search.signature_checks, search.exhausted) == (3, False)
    # Past the budget the rest of the pile is unknown, so the names are no proof of a bad signature.
    search = PathSearch(impostors, None, NOW)
    assert found(search, leaf) == [Candidate((leaf,), MISSING_ISSUER)]
    assert (search.signature_checks, search.exhausted) == (MAX_SIGNATURE_CHECKS, True)


def test_a_path_stops_at_max_path_length(pki):
    cas = [pki.issue("long0", "Long 0", None, ca=True)]
    for i in range(1, MAX_PATH_LENGTH + 1):
        cas.append(pki.issue(f"long{i}", f"Long {i}", cas[-1], ca=True))
    leaf = pki.issue("long-leaf", "www.example.test", cas[-1], ca=False).cert
    path = (leaf, *[ca.cert for ca in reversed(cas)][:MAX_PATH_LENGTH - 1])
    assert found(PathSearch([ca.cert for ca in cas], None, NOW), leaf) == [Candidate(path, TOO_LONG)]
    # A root at exactly the limit still ends the path as a root.
    shorter = pki.issue("long-leaf-short", "www.example.test", cas[-3], ca=False).cert
    path = (shorter, *[ca.cert for ca in reversed(cas[:-2])])
    assert len(path) == MAX_PATH_LENGTH
    assert found(PathSearch([ca.cert for ca in cas], None, NOW), shorter) == [Candidate(path, UNTRUSTED_ROOT)]


def test_fetching_fills_a_gap_once_per_certificate_and_keeps_what_is_not_trusted(pki):
    root = pki.issue("fetch-root", "Fetch Root", None, ca=True)
    top = pki.issue("fetch-top", "Fetch Top", root, ca=True)
    key = role_key("fetch-int")
    # Two versions of one intermediate: both paths reach Fetch Top, whose issuer is fetched for only once.
    first = pki.issue("fetch-int-a", "Fetch Int", top, ca=True, key=key, not_after=NOW + 300 * DAY)
    second = pki.issue("fetch-int-b", "Fetch Int", top, ca=True, key=key, not_after=NOW + 250 * DAY)
    leaf = pki.issue("fetch-leaf", "www.example.test", first, ca=False).cert
    asked = []

    def nothing(cert):
        asked.append(cert)
        return []

    search = PathSearch([second.cert, top.cert, first.cert], None, NOW, fetcher=nothing)
    assert found(search, leaf) == [Candidate((leaf, first.cert, top.cert), MISSING_ISSUER),
                                   Candidate((leaf, second.cert, top.cert), MISSING_ISSUER)]
    assert asked == [top.cert] and search.fetched == {}

    def both(cert):
        asked.append(cert)
        return [(first.cert, "http://ca.test/int.der"), (root.cert, "http://ca.test/root.der")]

    asked.clear()
    search = PathSearch([top.cert], TrustStore("roots", [root.cert]), NOW, fetcher=both)
    assert found(search, leaf) == [Candidate((leaf, first.cert, top.cert, root.cert), ANCHOR)]
    assert asked == [leaf]
    assert search.fetched == {first.cert: "http://ca.test/int.der"}  # the trusted root is no download


def test_cross_signed_cas_never_come_back_to_a_ca_already_on_the_path(pki):
    # X A and X B each signed the other. X A is there twice (two certificates, one key): once on the path,
    # the other is the same CA and no way up either. X A's re-keyed root signed neither.
    a_key, b_key = role_key("x-a"), role_key("x-b")
    a_root = pki.issue("x-a-root", "X A", None, ca=True, key=a_key)
    b_root = pki.issue("x-b-root", "X B", None, ca=True, key=b_key)
    a1 = pki.issue("x-a1", "X A", b_root, ca=True, key=a_key, not_after=NOW + 300 * DAY).cert
    a2 = pki.issue("x-a2", "X A", b_root, ca=True, key=a_key, not_after=NOW + 250 * DAY).cert
    b1 = pki.issue("x-b1", "X B", a_root, ca=True, key=b_key).cert
    rekeyed = pki.issue("x-a-rekeyed", "X A", None, ca=True, key=role_key("x-a-new")).cert
    leaf = pki.issue("x-leaf", "www.example.test", a_root, ca=False).cert
    assert found(PathSearch([a1, a2, b1, rekeyed], None, NOW), leaf) == [
        Candidate((leaf, a1, b1), BAD_SIGNATURE), Candidate((leaf, a2, b1), BAD_SIGNATURE)]


def test_matching_key_identifiers_come_first(pki):
    absent = pki.issue("kid-absent", "Kid Absent", None, ca=True)
    key = role_key("kid-int")
    match = pki.issue("kid-match", "Kid Int", absent, ca=True, key=key, not_after=NOW + 100 * DAY).cert
    unknown = pki.issue("kid-unknown", "Kid Int", absent, ca=True, key=key, ski=False, not_after=NOW + 200 * DAY).cert
    other = pki.issue("kid-other", "Kid Int", absent, ca=True, key=key, ski=False, not_after=NOW + 300 * DAY,
                      extensions=[(x509.SubjectKeyIdentifier(b"\x01" * 20), False)]).cert
    leaf = pki.issue("kid-leaf", "www.example.test", pki.issue("kid-signer", "Kid Int", None, ca=True, key=key),
                     ca=False).cert
    # All three have the key that signed the leaf; the one whose SKI contradicts the leaf's AKI comes last.
    assert [c.certs[1] for c in found(PathSearch([other, unknown, match], None, NOW), leaf)] == [match, unknown, other]


def test_trusted_first_then_valid_at_the_time_then_valid_longest_then_fingerprint(pki):
    absent = pki.issue("rank-absent", "Rank Absent", None, ca=True)
    key = role_key("rank-int")

    def inter(file, **validity):
        return pki.issue(file, "Rank Int", absent, ca=True, key=key, **validity).cert

    trusted = inter("rank-trusted", not_after=NOW + 100 * DAY)
    longer = inter("rank-longer", not_after=NOW + 200 * DAY)
    later = inter("rank-later", not_before=NOW + 10 * DAY, not_after=NOW + 400 * DAY)
    twin_a, twin_b = inter("rank-twin-a", not_after=NOW + 150 * DAY), inter("rank-twin-b", not_after=NOW + 150 * DAY)
    twins = sorted([twin_a, twin_b], key=fingerprint)
    leaf = pki.issue("rank-leaf", "www.example.test", pki.issue("rank-signer", "Rank Int", None, ca=True, key=key),
                     ca=False).cert

    def order(pool, trust=(), at=NOW):
        return [(c.certs[1], c.end) for c in PathSearch(pool, TrustStore("roots", list(trust)), at).candidates(leaf)]

    assert order([longer], [trusted]) == [(trusted, ANCHOR), (longer, MISSING_ISSUER)]
    assert order([later, longer]) == [(longer, MISSING_ISSUER), (later, MISSING_ISSUER)]
    assert order([longer, later], at=NOW + 20 * DAY) == [(later, MISSING_ISSUER), (longer, MISSING_ISSUER)]
    assert [c for c, _ in order([twin_a, twin_b])] == twins
    assert [c for c, _ in order([twin_b, twin_a])] == twins


def test_certificates_with_keys_cryptography_cannot_read_are_never_taken_for_one_ca(pki):
    def unreadable(file):
        der = pki.issue(file, "Odd CA", None, ca=True).cert.public_bytes(serialization.Encoding.DER)
        ec_public_key, unknown = bytes.fromhex("06072a8648ce3d0201"), bytes.fromhex("06072a8648ce3d0209")
        return x509.load_der_x509_certificate(der.replace(ec_public_key, unknown))

    first, second = unreadable("odd-1"), unreadable("odd-2")
    with pytest.raises(UnsupportedAlgorithm):
        first.public_key()
    # Neither can sign anything that can be checked, but the other one is there: a bad signature, no gap.
    assert found(PathSearch([second], None, NOW), first) == [Candidate((first,), BAD_SIGNATURE)]


def test_a_root_listed_twice_in_the_trust_store_is_one_candidate(three):
    root, inter, leaf = three
    search = PathSearch([inter], TrustStore("bundle", [root, root]), NOW)
    assert found(search, leaf) == [Candidate((leaf, inter, root), ANCHOR)]
