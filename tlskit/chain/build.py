"""Ordering the inputs into leaf -> intermediates (-> root): the leaf, the verified path, the gap, the findings."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from tlskit.aia import Fetcher, fetch_issuer_certificates
from tlskit.certificates import fingerprint, is_ca, is_expired, is_not_yet_valid, is_self_issued, is_self_signed, issued_by
from tlskit.chain.inputs import Input
from tlskit.chain.report import ChainError, ChainReport, Finding, Link
from tlskit.chain.verify import gap, raise_for, verdict_findings
from tlskit.errors import InputError, option
from tlskit.keys import key_matches_certificate
from tlskit.names import name_to_slash
from tlskit.verdict import SERVER, VerifyOptions, parse_host, verify
from tlskit.verdict.engine import issuer_fetcher
from tlskit.verdict.search import MAX_CANDIDATES, MAX_PATH_LENGTH, UNTRUSTED_ROOT, PathSearch

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from tlskit.trust import TrustStore

# A leaf this close to expiry deserves a warning: ACME clients renew 30 days ahead.
EXPIRY_WARNING_DAYS = 30
# Real chains are 2-4 certificates; anything deeper is a loop or a mistake.
MAX_DEPTH = MAX_PATH_LENGTH


def build_chain(
    inputs: list[Input],
    trust: TrustStore | None,
    *,
    host: str | None = None,
    fetch: bool = False,
    include_root: bool = False,
    key: PrivateKeyTypes | None = None,
    now: dt.datetime | None = None,
    fetcher: Fetcher | None = None,
    ignored_keys: int = 0,
    purpose: str = SERVER,
    lenient: bool = False,
    crls: tuple = (),
    ocsp: bool = False,
) -> ChainReport:
    """Order ``inputs`` into leaf -> intermediates (-> root), verify it, and collect findings.

    ``trust`` None skips verification (the order and every signature are still checked). ``key``
    picks the leaf when several domain certificates are given, and must match it. ``ignored_keys``
    counts private keys found among the inputs (from :func:`load_inputs`), to say they were skipped.
    ``now`` is the time the chain is verified for; ``purpose`` server or client; ``lenient`` turns the
    Web PKI findings into warnings; ``crls`` are (CRL, source) pairs; ``ocsp`` asks the responders.
    Raises ChainError (exit 1) for a gap, a failed verification or a wrong key; InputError when no
    leaf can be told apart.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    if host is not None and purpose != SERVER:
        raise InputError(f"{option('host')} names a server",
                         fix=f"drop {option('host')}, or drop {option('purpose')} client")
    parsed_host = parse_host(host) if host is not None else None  # bad input (exit 2), found before any work
    unique, duplicates = _deduplicate(inputs)
    leaf = _find_leaf(unique, key)
    report = ChainReport([Link(leaf.certificate, "leaf", leaf.source)], include_root, trust.name if trust else "none",
                         host, purpose=purpose)
    report.dropped += [(item, "duplicate") for item in duplicates]
    bottom_is_ca = is_ca(leaf.certificate)
    if bottom_is_ca:
        report.findings.append(Finding("info", "leaf_is_ca", f"no domain certificate in the inputs; the chain starts "
                                       f"at the CA {name_to_slash(leaf.certificate.subject)}",
                                       name_to_slash(leaf.certificate.subject)))
    sources: dict[x509.Certificate, str] = {}
    for item in unique:
        sources.setdefault(item.certificate, item.source)
    pool = [item.certificate for item in unique if item.certificate != leaf.certificate]
    download = fetcher or fetch_issuer_certificates
    if trust is None:
        _order_only(report, pool, sources, fetch, download, now)
    else:
        if is_self_signed(leaf.certificate):
            raise _self_signed_leaf_error(report, leaf.certificate)
        options = VerifyOptions(purpose=purpose, host=parsed_host, at=now, lenient=lenient, bottom_is_ca=bottom_is_ca,
                                crls=tuple(crls), fetch=fetch, ocsp=ocsp, fetch_issuers=download)
        verdict = verify(leaf.certificate, pool, trust, options)
        report.verdict = verdict
        _links_from(report, verdict.path, sources, verdict.fetched, trust)
        if verdict.anchored:
            _complete_above(report, pool, sources, trust, now)
        report.findings += verdict_findings(verdict)
        if not verdict.verified:
            raise raise_for(report, verdict, fetch, trust)
        report.verified = True
    used = {link.certificate for link in report.links}
    for item in unique:
        if item.certificate not in used:
            report.dropped.append((item, "unrelated"))
    _note_inputs(report, duplicates)
    if ignored_keys:
        report.findings.append(Finding("info", "keys_ignored", f"ignored {ignored_keys} private key(s) in the inputs "
                                       f"(pass a key with {option('key')} to check it)"))
    if key is not None and not key_matches_certificate(key, leaf.certificate):
        raise ChainError(f"the key does not match the leaf {name_to_slash(leaf.certificate.subject)}",
                         fix="pass the private key this certificate was issued for", report=report)
    report.findings += _warnings(report, now)
    return report


def _self_signed_leaf_error(report: ChainReport, cert: x509.Certificate) -> ChainError:
    return ChainError(f"the leaf {name_to_slash(cert.subject)} is self-signed",
                      "a self-signed certificate has no chain; clients trust it only where it is installed",
                      "have it signed by a CA (tlskit ca sign), or install it on the clients", report=report)


def _links_from(report: ChainReport, path, sources, fetched, trust: TrustStore | None) -> None:
    """The path (leaf first) as links; the last one is the root when it is self-signed."""
    for depth, cert in enumerate(path[1:], start=1):
        role = "root" if depth == len(path) - 1 and is_self_signed(cert) else "intermediate"
        source = sources.get(cert) or fetched.get(cert) or (trust.name if trust is not None else "inputs")
        if cert in fetched and cert not in sources:
            report.findings.append(Finding("info", "fetched", f"fetched {name_to_slash(cert.subject)} from "
                                           f"{fetched[cert]}", name_to_slash(cert.subject)))
        report.links.append(Link(cert, role, source))


def _complete_above(report: ChainReport, pool, sources, trust: TrustStore, now: dt.datetime) -> None:
    """Above a trust anchor that is not a root, the fullchain still carries the CAs up to a root where they are
    known (the clients may trust only the root): from the trust store first, then from the inputs."""
    top = report.links[-1].certificate
    used = {link.certificate for link in report.links}
    while len(report.links) < MAX_PATH_LENGTH and not is_self_signed(top):
        candidates = [c for c in [*trust.named(top.issuer), *(p for p in pool if p.subject == top.issuer)]
                      if c not in used and issued_by(top, c)]
        if not candidates:
            return
        candidates.sort(key=lambda c: (0 if trust.holds(c) else 1, is_expired(c, now), -c.not_valid_after_utc.timestamp(),
                                       fingerprint(c)))
        top = candidates[0]
        used.add(top)
        report.links.append(Link(top, "root" if is_self_signed(top) else "intermediate", sources.get(top) or trust.name))


def _order_only(report: ChainReport, pool, sources, fetch: bool, download: Fetcher, now: dt.datetime) -> None:
    """Without a trust store: the longest path the inputs give, preferring one that reaches a root."""
    errors: list = []
    search = PathSearch(pool, None, now, fetcher=issuer_fetcher(download, errors) if fetch else None)
    best = None
    for index, candidate in enumerate(search.candidates(report.leaf)):
        rank = (0 if candidate.end == UNTRUSTED_ROOT else 1, -len(candidate.certs), index)
        if best is None or rank < best[0]:
            best = (rank, candidate)
        if index + 1 >= MAX_CANDIDATES:
            break
    candidate = best[1]
    path = list(candidate.certs)
    if len(path) == 1 and candidate.end == UNTRUSTED_ROOT:
        raise _self_signed_leaf_error(report, report.leaf)
    _links_from(report, path, sources, search.fetched, None)
    if candidate.end != UNTRUSTED_ROOT:
        if len(path) == 1:
            if errors:
                raise errors[0]
            raise gap(report, path[-1], fetch, None)
        # Without a trust store there is no telling whether the issuer is a root the clients carry;
        # the chain ends where the inputs end.
        report.findings.append(Finding("warning", "unverified_top",
                                       f"the chain ends below {name_to_slash(path[-1].issuer)}, which is not in "
                                       "the inputs; it was not verified", name_to_slash(path[-1].issuer)))
    _check_validity(report, now)


def _deduplicate(inputs: list[Input]) -> tuple[list[Input], list[Input]]:
    seen: set[x509.Certificate] = set()
    unique, duplicates = [], []
    for item in inputs:
        if item.certificate in seen:  # equality and hash are over the DER bytes
            duplicates.append(item)
        else:
            seen.add(item.certificate)
            unique.append(item)
    return unique, duplicates


def _find_leaf(unique: list[Input], key: PrivateKeyTypes | None) -> Input:
    """The end-entity certificate; with several, the one ``key`` belongs to."""
    candidates = [item for item in unique if not is_ca(item.certificate)]
    if not candidates:
        # A chain that starts at a CA (an intermediate ordered for a sub-CA): the bottom of the pile,
        # the one certificate that issued none of the others.
        issuers = {item.certificate.issuer for item in unique}
        candidates = [item for item in unique
                      if item.certificate.subject not in issuers and not is_self_issued(item.certificate)]
        if len(candidates) != 1:
            raise InputError(f"no domain (end-entity) certificate among the {len(unique)} input certificates",
                             "they are all CA certificates", "add the domain's certificate")
    if len(candidates) > 1 and key is not None:
        matching = [item for item in candidates if key_matches_certificate(key, item.certificate)]
        if len(matching) == 1:
            return matching[0]
    if len(candidates) > 1:
        names = ", ".join(f"{name_to_slash(c.certificate.subject)} ({c.source})" for c in candidates[:4])
        more = f" and {len(candidates) - 4} more" if len(candidates) > 4 else ""
        raise InputError(f"{len(candidates)} domain certificates in the inputs: {names}{more}",
                         fix=f"give one site's certificate at a time, or pass {option('key')} to pick the one for that key")
    return candidates[0]


def _note_inputs(report: ChainReport, duplicates: list[Input]) -> None:
    if duplicates:
        report.findings.append(Finding("info", "duplicates_dropped", f"dropped {len(duplicates)} duplicate "
                                       f"certificate{'s' if len(duplicates) != 1 else ''}"))
    unrelated = [item for item, reason in report.dropped if reason == "unrelated"]
    if unrelated:
        shown = ", ".join(name_to_slash(i.certificate.subject) for i in unrelated[:3])
        more = f" and {len(unrelated) - 3} more" if len(unrelated) > 3 else ""
        report.findings.append(Finding("info", "unrelated_dropped",
                                       f"dropped {len(unrelated)} certificate{'s' if len(unrelated) != 1 else ''} "
                                       f"not in the leaf's chain: {shown}{more}"))
    root = report.root
    if root is not None and not report.include_root:
        report.findings.append(Finding("info", "root_left_out",
                                       f"left out the root {name_to_slash(root.certificate.subject)} "
                                       f"(clients carry their own roots; {option('include_root')} keeps it)",
                                       name_to_slash(root.certificate.subject)))


def _check_validity(report: ChainReport, now: dt.datetime) -> None:
    """Expired or not-yet-valid certificates, said plainly before the verifier's terse message."""
    for link in report.links:
        cert = link.certificate
        subject = name_to_slash(cert.subject)
        if is_expired(cert, now):
            raise ChainError(f"the {link.role} {subject} expired on {cert.not_valid_after_utc:%Y-%m-%d}",
                             fix="renew it, or get the current certificate from your CA", report=report)
        if is_not_yet_valid(cert, now):
            raise ChainError(f"the {link.role} {subject} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                             "is this machine's clock right?", "check the clock, or wait", report=report)


def _warnings(report: ChainReport, now: dt.datetime) -> list[Finding]:
    from cryptography.hazmat.primitives import hashes

    findings = []
    leaf = report.leaf
    days_left = (leaf.not_valid_after_utc - now).days
    if days_left <= EXPIRY_WARNING_DAYS:
        findings.append(Finding("warning", "leaf_expires_soon",
                                f"the leaf expires in {days_left} days ({leaf.not_valid_after_utc:%Y-%m-%d}); renew it",
                                name_to_slash(leaf.subject)))
    for link in report.links[1:]:
        cert = link.certificate
        if link.role == "intermediate" and cert.not_valid_after_utc < leaf.not_valid_after_utc:
            findings.append(Finding("warning", "intermediate_expires_before_leaf",
                                    f"the intermediate {name_to_slash(cert.subject)} expires on "
                                    f"{cert.not_valid_after_utc:%Y-%m-%d}, before the leaf "
                                    f"({leaf.not_valid_after_utc:%Y-%m-%d}); the chain stops verifying then",
                                    name_to_slash(cert.subject)))
    for link in report.links:
        if link.role == "root":
            continue  # a root's self-signature is never checked by clients
        try:
            algorithm = link.certificate.signature_hash_algorithm
        except Exception:
            continue
        if isinstance(algorithm, (hashes.SHA1, hashes.MD5)):
            findings.append(Finding("warning", "weak_signature",
                                    f"the {link.role} {name_to_slash(link.certificate.subject)} is signed with "
                                    f"{'SHA-1' if algorithm.name == 'sha1' else 'MD5'}, which browsers reject; reissue it with SHA-256",
                                    name_to_slash(link.certificate.subject)))
    return findings
