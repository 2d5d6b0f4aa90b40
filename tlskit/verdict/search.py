"""Every candidate path from a leaf to a trust anchor, depth first, within fixed bounds.

A step up may have several candidates: certificates with the issuer's name (a re-issued CA, a
cross-sign, an intermediate both in the inputs and in the trust store). All are tried, so that one bad
candidate (expired, wrong constraints, an untrusted root) never hides a good path. Any certificate
of the trust store ends a path: a trust anchor need not be self-signed.

The order is fixed by the certificates alone, never by the order they were given in: at each step the
candidates whose key identifier matches come first (as in Go and `cryptography`), trusted before
untrusted, then those valid at the verification time, then the one valid longest, then by SHA-256
fingerprint. So the same set of certificates always gives the same paths in the same order.

The bounds, against loops and against piles built to make a verifier work forever:

- a path holds at most :data:`MAX_PATH_LENGTH` certificates (leaf and anchor included);
- no certificate, and no subject+key pair, appears twice in a path (cross-signed CAs loop otherwise);
- at most :data:`MAX_SIGNATURE_CHECKS` signatures are checked in one search (each pair once);
- the caller evaluates at most :data:`MAX_CANDIDATES` complete candidate paths.

When a bound stops the search, :attr:`PathSearch.exhausted` says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tlskit.certificates import fingerprint, is_self_issued, issued_by, key_ids_match, valid_at

if TYPE_CHECKING:
    from cryptography import x509

    from tlskit.trust import TrustStore

MAX_PATH_LENGTH = 10
MAX_CANDIDATES = 16
MAX_SIGNATURE_CHECKS = 256

# How a candidate ends: at a trust anchor, or where the search could go no further.
ANCHOR, UNTRUSTED_ROOT, MISSING_ISSUER, BAD_SIGNATURE, TOO_LONG = (
    "anchor", "untrusted_root", "missing_issuer", "bad_signature", "too_long")

# Fetches the certificates a certificate's AIA caIssuers URLs serve: [(certificate, url)].
IssuerFetcher = Callable[["x509.Certificate"], list[tuple["x509.Certificate", str]]]


@dataclass(frozen=True)
class Candidate:
    """A path leaf first; ``end`` says whether its top is a trust anchor or why it stops there."""

    certs: tuple[x509.Certificate, ...]
    end: str

    @property
    def anchored(self) -> bool:
        return self.end == ANCHOR


@dataclass
class PathSearch:
    """One search over ``pool`` (untrusted certificates) and ``trust``; ``fetcher`` fills gaps (AIA)."""

    pool: list[x509.Certificate]
    trust: TrustStore | None
    at: dt.datetime
    fetcher: IssuerFetcher | None = None
    signature_checks: int = 0
    exhausted: bool = False
    fetched: dict[x509.Certificate, str] = field(default_factory=dict)
    _by_subject: dict[x509.Name, list[x509.Certificate]] = field(default_factory=dict, init=False)
    _signed: dict[tuple[x509.Certificate, x509.Certificate], bool] = field(default_factory=dict, init=False)
    _fetched_for: set[x509.Certificate] = field(default_factory=set, init=False)
    _order: dict[x509.Certificate, str] = field(default_factory=dict, init=False)
    _spkis: dict[x509.Certificate, bytes] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for cert in self.pool:
            self._add(cert)

    def _add(self, cert: x509.Certificate) -> None:
        same = self._by_subject.setdefault(cert.subject, [])
        if cert not in same:
            same.append(cert)

    def trusted(self, cert: x509.Certificate) -> bool:
        return self.trust is not None and self.trust.holds(cert)

    def signs(self, issuer: x509.Certificate, cert: x509.Certificate) -> bool:
        key = (issuer, cert)
        if key not in self._signed:
            if self.signature_checks >= MAX_SIGNATURE_CHECKS:
                self.exhausted = True
                return False
            self.signature_checks += 1
            self._signed[key] = issued_by(cert, issuer)
        return self._signed[key]

    def candidates(self, leaf: x509.Certificate) -> Iterator[Candidate]:
        if self.trusted(leaf):
            yield Candidate((leaf,), ANCHOR)
            return
        yield from self._extend([leaf])

    def _extend(self, path: list[x509.Certificate]) -> Iterator[Candidate]:
        current = path[-1]
        if is_self_issued(current) and self.signs(current, current):
            yield Candidate(tuple(path), UNTRUSTED_ROOT)  # a root nobody here trusts (the leaf itself, or above it)
            return
        if len(path) >= MAX_PATH_LENGTH:
            yield Candidate(tuple(path), TOO_LONG)
            return
        named, issuers = self._issuers(current, path)
        if not issuers and self.fetcher is not None and current not in self._fetched_for:
            self._fetched_for.add(current)
            for cert, url in self.fetcher(current):
                if not self.trusted(cert):
                    self.fetched.setdefault(cert, url)
                    self._add(cert)
            named, issuers = self._issuers(current, path)
        if not issuers:
            yield Candidate(tuple(path), BAD_SIGNATURE if named and not self.exhausted else MISSING_ISSUER)
            return
        for issuer in issuers:
            if self.exhausted:
                return
            if self.trusted(issuer):
                yield Candidate((*path, issuer), ANCHOR)
            else:
                yield from self._extend([*path, issuer])

    def _issuers(self, cert: x509.Certificate, path: list[x509.Certificate]) -> tuple[bool, list[x509.Certificate]]:
        """Whether any certificate off the path carries ``cert``'s issuer name, and those that signed it, best first."""
        trusted = list(self.trust.named(cert.issuer)) if self.trust is not None else []
        untrusted = [c for c in self._by_subject.get(cert.issuer, []) if c not in trusted]
        on_path = {(c.subject, self._spki(c)) for c in path}
        ranked = []
        for candidate in trusted + untrusted:
            if candidate in path or (candidate.subject, self._spki(candidate)) in on_path:
                continue  # a loop: the path would come back to a CA it already passed
            ranked.append((self._rank(cert, candidate), candidate))
        ranked.sort(key=lambda item: item[0])
        return bool(ranked), [c for _, c in ranked if self.signs(c, cert)]

    def _rank(self, cert: x509.Certificate, candidate: x509.Certificate) -> tuple:
        same_key = key_ids_match(cert, candidate)
        if candidate not in self._order:
            self._order[candidate] = fingerprint(candidate)
        return ({True: 0, None: 1, False: 2}[same_key], 0 if self.trusted(candidate) else 1,
                0 if valid_at(candidate, self.at) else 1, -candidate.not_valid_after_utc.timestamp(),
                self._order[candidate])

    def _spki(self, cert: x509.Certificate) -> bytes:
        """The DER SubjectPublicKeyInfo: two certificates with the same subject and this are the same CA."""
        if cert not in self._spkis:
            from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

            try:
                self._spkis[cert] = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            except Exception:  # a key type cryptography cannot load: only the certificate itself is the same
                self._spkis[cert] = cert.tbs_certificate_bytes
        return self._spkis[cert]
