"""One verdict: search the candidate paths, check each, cross-check with `cryptography`, then revocation.

The first candidate that passes wins (candidates come in a fixed order, see :mod:`.search`); when none
does, the verdict is the best failure: a path that reaches a trust anchor before one that does not,
then the one with the fewest problems, then the first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tlskit.certificates import validation_time
from tlskit.errors import NetworkError, option
from tlskit.names import name_to_slash
from tlskit.revocation.status import RevocationStatus
from tlskit.verdict import crosscheck
from tlskit.verdict.hosts import HostName
from tlskit.verdict.problems import Problem
from tlskit.verdict.rules import PURPOSES, SERVER, PathContext, check_path, label_for
from tlskit.verdict.search import (ANCHOR, BAD_SIGNATURE, MAX_CANDIDATES, MISSING_ISSUER, TOO_LONG, UNTRUSTED_ROOT,
                                   PathSearch)

if TYPE_CHECKING:
    from cryptography import x509

    from tlskit.trust import TrustStore

# Downloads what one caIssuers URL serves (tests pass their own).
UrlFetcher = Callable[[str], list["x509.Certificate"]]


@dataclass(frozen=True)
class VerifyOptions:
    """How to verify. ``at`` None is now; ``crls`` are (CRL, source) pairs; ``fetch`` follows AIA caIssuers
    for missing issuers and CRL distribution points; ``ocsp`` asks each certificate's OCSP responder;
    ``staple`` is the DER OCSP response a server stapled for its leaf."""

    purpose: str = SERVER
    host: HostName | None = None
    at: dt.datetime | None = None
    lenient: bool = False
    bottom_is_ca: bool = False
    crls: tuple = ()
    fetch: bool = False
    ocsp: bool = False
    staple: bytes | None = None
    fetch_issuers: UrlFetcher | None = None

    def __post_init__(self) -> None:
        if self.purpose not in PURPOSES:
            from tlskit.errors import InputError

            raise InputError(f"{option('purpose')} {self.purpose!r} is not known", fix="give server or client")


@dataclass
class Verdict:
    """The path chosen (leaf first), why it fails (``problems``, empty when verified) and what else was found."""

    path: list[x509.Certificate]
    end: str
    problems: list[Problem]
    warnings: list[Problem]
    trust: str
    at: dt.datetime
    candidates: int = 0
    exhausted: bool = False
    fetched: dict[x509.Certificate, str] = field(default_factory=dict)
    revocation: list[RevocationStatus] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return not self.problems

    @property
    def anchored(self) -> bool:
        return self.end == ANCHOR

    def as_dict(self) -> dict[str, Any]:
        return {
            "verified": self.verified, "path": [name_to_slash(c.subject) for c in self.path],
            "anchored": self.anchored, "problems": [p.as_dict() for p in self.problems],
            "warnings": [p.as_dict() for p in self.warnings], "candidates": self.candidates,
            "search_exhausted": self.exhausted, "at": self.at.isoformat(),
            "revocation": [r.as_dict() for r in self.revocation],
        }


def verify(leaf: x509.Certificate, untrusted: list[x509.Certificate], trust: TrustStore,
           options: VerifyOptions = VerifyOptions()) -> Verdict:
    """The verdict on ``leaf`` with ``untrusted`` as the pool of possible intermediates.

    Raises NetworkError (exit 3) only when a download the options asked for failed and no path verified
    without it.
    """
    from tlskit.certificates import quiet_parsing

    with quiet_parsing():  # a serial of 0 is a finding to report, not a Python warning to print
        return _verify(leaf, untrusted, trust, options)


def _verify(leaf: x509.Certificate, untrusted: list[x509.Certificate], trust: TrustStore,
            options: VerifyOptions) -> Verdict:
    at = validation_time(options.at or dt.datetime.now(dt.timezone.utc))
    context = PathContext(options.purpose, options.host, at, options.bottom_is_ca)
    network_errors: list[NetworkError] = []
    search = PathSearch(list(untrusted), trust, at,
                        fetcher=issuer_fetcher(options.fetch_issuers, network_errors) if options.fetch else None)
    best: Verdict | None = None
    best_rank: tuple | None = None
    tried = 0
    for index, candidate in enumerate(search.candidates(leaf)):
        tried = index + 1
        verdict = _evaluate(list(candidate.certs), candidate.end, context, options, trust, network_errors)
        if verdict.verified:
            best = verdict
            break
        rank = (0 if verdict.anchored else 1, len(verdict.problems), index)
        if best_rank is None or rank < best_rank:
            best, best_rank = verdict, rank
        if tried >= MAX_CANDIDATES:
            search.exhausted = True
            break
    assert best is not None  # the search yields at least the leaf itself
    best.candidates = tried  # the paths tried, not the position of the one reported
    best.exhausted = search.exhausted
    best.fetched = dict(search.fetched)
    if not best.verified and network_errors:
        raise network_errors[0]
    if not best.verified and search.exhausted:
        best.problems.append(Problem("path_search_bounded", 1, None,
                                     f"gave up after {best.candidates} candidate paths and {search.signature_checks} "
                                     "signature checks (tlskit's bounds)", "give only the certificates of one chain"))
    return best


def issuer_fetcher(download: UrlFetcher | None, errors: list[NetworkError]):
    """What :class:`PathSearch` calls at a dead end: the certificates the caIssuers URLs serve, each URL once.

    A failed download is kept in ``errors`` and counts only if no path verifies without it.
    """
    from tlskit.aia import ca_issuer_urls, fetch_issuer_certificates

    download = download or fetch_issuer_certificates
    seen: dict[str, list] = {}

    def fetch(cert):
        found = []
        for url in ca_issuer_urls(cert):
            if url not in seen:
                try:
                    seen[url] = download(url)
                except NetworkError as exc:
                    errors.append(exc)
                    seen[url] = []
            found += [(c, url) for c in seen[url]]
        return found

    return fetch


def _evaluate(path, end: str, context: PathContext, options: VerifyOptions, trust: TrustStore,
              network_errors: list[NetworkError]) -> Verdict:
    label = label_for(path, end == ANCHOR, context.bottom_is_ca)
    problems = _building(path, end, label, trust) + check_path(path, end == ANCHOR, context)
    failing = [p for p in problems if not (options.lenient and p.is_finding)]
    warnings = [p for p in problems if options.lenient and p.is_finding]
    verdict = Verdict(path, end, failing, warnings, trust.name, context.at)
    if end != ANCHOR or failing:
        return verdict
    refusal = crosscheck.disagreement(path, context, {p.depth for p in warnings if p.depth is not None})
    if refusal is not None:
        verdict.problems.append(refusal)
        return verdict
    _revocation(verdict, label, options, network_errors)
    return verdict


def _building(path, end: str, label, trust: TrustStore) -> list[Problem]:
    top = len(path) - 1
    cert = path[top]
    subject = name_to_slash(cert.subject)
    if end == UNTRUSTED_ROOT:
        if top == 0:
            return [Problem("self_signed_leaf", 18, 0, f"{subject} is self-signed and not trusted",
                            f"the server uses a self-signed certificate: pass it with {option('ca_file')} to trust it "
                            "on purpose",
                            subject)]
        return [Problem("untrusted_root", 19, top, f"{label(top)} is self-signed and not trusted by {trust.name}",
                        f"the chain ends in a root nobody trusts: pass that root with {option('ca_file')} if it is "
                        "your own CA",
                        subject)]
    if end == MISSING_ISSUER:
        return [Problem("missing_issuer", 21 if top == 0 else 20, top,
                        f"issuer {name_to_slash(cert.issuer)} of {label(top)} is neither among the certificates "
                        f"given nor trusted by {trust.name}",
                        "the server sent no intermediate: serve the full chain (fullchain.pem), or pass the issuer "
                        f"with {option('ca_file')}" if top == 0 else
                        f"the chain's issuer is not trusted: pass your CA with {option('ca_file')}, or fix the server's "
                        "chain",
                        subject)]
    if end == BAD_SIGNATURE:
        return [Problem("signature_failure", 7, top, f"the signature of {label(top)} does not verify with the key "
                        f"of any certificate named {name_to_slash(cert.issuer)}",
                        "a CA of that name was re-keyed: get the certificate that matches the issuer", subject)]
    if end == TOO_LONG:
        return [Problem("chain_too_long", 22, top, f"the path is longer than {len(path)} certificates",
                        "give only the certificates of one chain", subject)]
    return []


def _revocation(verdict: Verdict, label, options: VerifyOptions, network_errors: list[NetworkError]) -> None:
    path = verdict.path
    crls = list(options.crls)
    top = len(path) - 1
    if options.fetch:
        from tlskit.revocation.crl import crl_urls, fetch_crl

        for depth in range(top):
            for url in crl_urls(path[depth]):
                crls += [(crl, url) for crl in fetch_crl(url)]
    if crls:
        from tlskit.revocation import crl

        given = bool(options.crls)
        problems, statuses = crl.check(
            path, crls, verdict.at, label,
            required=lambda depth: (given and depth == 0) or (options.fetch and bool(crl.crl_urls(path[depth]))))
        verdict.problems += problems
        verdict.revocation += statuses
    if options.staple:
        _staple(verdict, label, options.staple)
    if options.ocsp:
        _ocsp(verdict, label)


def _staple(verdict: Verdict, label, staple: bytes) -> None:
    from tlskit.revocation.ocsp import judge_response

    path = verdict.path
    if len(path) < 2:
        return
    now = validation_time(dt.datetime.now(dt.timezone.utc))
    answer = judge_response(staple, path[0], path[1], now)
    if answer.fault is None and answer.status == "revoked" and (answer.revoked_at is None
                                                                 or answer.revoked_at <= verdict.at):
        when = f" on {answer.revoked_at:%Y-%m-%d %H:%M} UTC" if answer.revoked_at else ""
        verdict.problems.append(Problem("revoked", 23, 0, f"the stapled OCSP response says {label(0)} was revoked{when}",
                                        "the issuer revoked this certificate: install a new one",
                                        name_to_slash(path[0].subject)))
    verdict.revocation.append(_status(0, path[0], "staple", answer, "stapled"))


def _ocsp(verdict: Verdict, label) -> None:
    from tlskit.revocation.ocsp import ask, ocsp_urls

    path = verdict.path
    now = validation_time(dt.datetime.now(dt.timezone.utc))
    for depth in range(len(path) - 1):
        cert = path[depth]
        urls = ocsp_urls(cert)
        subject = name_to_slash(cert.subject)
        if not urls:
            verdict.revocation.append(RevocationStatus(depth, subject, "ocsp", "unchecked", None))
            continue
        answer = ask(cert, path[depth + 1], urls[0], now)
        verdict.revocation.append(_status(depth, cert, "ocsp", answer, urls[0]))
        if answer.fault is not None:
            verdict.problems.append(Problem("ocsp_unreliable", 74, depth, f"the OCSP answer from {urls[0]} for "
                                            f"{label(depth)} cannot be relied on: {answer.fault}",
                                            f"check the responder, or leave out {option('ocsp')}", subject))
        elif answer.status == "revoked" and (answer.revoked_at is None or answer.revoked_at <= verdict.at):
            when = f" on {answer.revoked_at:%Y-%m-%d %H:%M} UTC" if answer.revoked_at else ""
            why = f" ({answer.reason})" if answer.reason else ""
            verdict.problems.append(Problem("revoked", 23, depth, f"{label(depth)} was revoked{when}{why}, says the "
                                            f"OCSP responder {urls[0]}", "the issuer revoked this certificate: "
                                            "install a new one", subject))
        elif answer.status == "unknown":
            verdict.problems.append(Problem("ocsp_unknown", 75, depth, f"the OCSP responder {urls[0]} does not know "
                                            f"{label(depth)}", "ask the CA: its responder should know every "
                                            "certificate it issued", subject))


def _status(depth: int, cert, method: str, answer, source: str) -> RevocationStatus:
    return RevocationStatus(
        depth, name_to_slash(cert.subject), method, answer.status or "unknown" if answer.fault is None else "unreliable",
        source, answer.this_update.isoformat() if answer.this_update else None,
        answer.next_update.isoformat() if answer.next_update else None,
        answer.revoked_at.isoformat() if answer.revoked_at else None, answer.reason, answer.nonce)
