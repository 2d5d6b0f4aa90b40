"""Ordering the inputs into leaf -> intermediates (-> root): the leaf, each issuer, the gap, the findings."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from tlskit.aia import Fetcher, ca_issuer_urls, fetch_issuer_certificates, find_issuer
from tlskit.certificates import is_ca, is_expired, is_not_yet_valid, is_self_issued, is_self_signed, issued_by, key_ids_match
from tlskit.chain.inputs import Input
from tlskit.chain.report import ChainError, ChainReport, Finding, Link
from tlskit.chain.verify import host_name, verify_report
from tlskit.errors import InputError
from tlskit.keys import key_matches_certificate
from tlskit.names import name_to_slash

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

    from tlskit.trust import TrustStore

# A leaf this close to expiry deserves a warning: ACME clients renew 30 days ahead.
EXPIRY_WARNING_DAYS = 30
# Real chains are 2-4 certificates; anything deeper is a loop or a mistake.
MAX_DEPTH = 10


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
) -> ChainReport:
    """Order ``inputs`` into leaf -> intermediates (-> root), verify it, and collect findings.

    ``trust`` None skips verification (the order and every signature are still checked). ``key``
    picks the leaf when several domain certificates are given, and must match it. ``ignored_keys``
    counts private keys found among the inputs (from :func:`load_inputs`), to say they were skipped.
    Raises ChainError (exit 1) for a gap, a failed verification or a wrong key; InputError when no
    leaf can be told apart.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    if host is not None:
        host_name(host)  # a malformed --host is bad input (exit 2), found before any work
    unique, duplicates = _deduplicate(inputs)
    leaf = _find_leaf(unique, key)
    report = ChainReport([Link(leaf.certificate, "leaf", leaf.source)], include_root, trust.name if trust else "none",
                         host)
    report.dropped += [(item, "duplicate") for item in duplicates]
    if is_ca(leaf.certificate):
        report.findings.append(Finding("info", "leaf_is_ca", f"no domain certificate in the inputs; the chain starts "
                                       f"at the CA {name_to_slash(leaf.certificate.subject)}",
                                       name_to_slash(leaf.certificate.subject)))

    used = _walk_up(report, unique, trust, fetch, fetcher or fetch_issuer_certificates)
    for item in unique:
        if item.certificate not in used:
            report.dropped.append((item, "unrelated"))
    _note_inputs(report, duplicates)
    if ignored_keys:
        report.findings.append(Finding("info", "keys_ignored", f"ignored {ignored_keys} private key(s) in the inputs "
                                       "(pass a key with --key to check it)"))
    if key is not None and not key_matches_certificate(key, leaf.certificate):
        raise ChainError(f"the key does not match the leaf {name_to_slash(leaf.certificate.subject)}",
                         fix="pass the private key this certificate was issued for", report=report)
    _check_validity(report, now)
    report.findings += _warnings(report, now)
    if trust is not None:
        verify_report(report, trust, now)
    return report


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
                         fix="give one site's certificate at a time, or pass --key to pick the one for that key")
    return candidates[0]


def _walk_up(report: ChainReport, unique: list[Input], trust: TrustStore | None, fetch: bool,
             fetcher: Fetcher) -> set[x509.Certificate]:
    """Append issuers to ``report.links`` until a self-signed root or a trusted issuer; raise on a gap."""
    by_subject: dict[x509.Name, list[Input]] = {}
    for item in unique:
        by_subject.setdefault(item.certificate.subject, []).append(item)
    used = {report.leaf}
    current = report.leaf
    while True:
        if is_self_signed(current):
            if len(report.links) == 1:
                raise ChainError(f"the leaf {name_to_slash(current.subject)} is self-signed",
                                 "a self-signed certificate has no chain; clients trust it only where it is installed",
                                 "have it signed by a CA (tlskit ca sign), or install it on the clients", report=report)
            report.links[-1].role = "root"
            return used
        if len(report.links) > MAX_DEPTH:
            raise ChainError(f"the chain is longer than {MAX_DEPTH} certificates", "a loop of cross-signed CAs?",
                             "give only the certificates of one chain", report=report)
        anchors = trust.issuers_of(current) if trust is not None else []
        roots = [a for a in anchors if is_self_issued(a)]
        if roots:
            # A trusted root signed it: the chain is complete. An input that would lead elsewhere
            # (a cross-signed copy of this root, as in Let's Encrypt's old chain) is not needed.
            same = [i for i in by_subject.get(roots[0].subject, []) if i.certificate == roots[0]]
            report.links.append(Link(roots[0], "root", same[0].source if same else trust.name))
            used.add(roots[0])
            return used
        issuer = _best_issuer(current, [i for i in by_subject.get(current.issuer, []) if i.certificate not in used],
                              trust)
        if issuer is not None:
            report.links.append(Link(issuer.certificate, "intermediate", issuer.source))
            used.add(issuer.certificate)
            current = issuer.certificate
            continue
        if anchors:
            # A CA file may hold intermediates too: they still belong in the fullchain, and the walk
            # goes on until a root.
            report.links.append(Link(anchors[0], "intermediate", trust.name))
            used.add(anchors[0])
            current = anchors[0]
            continue
        if fetch:
            found = find_issuer(current, fetcher)
            if found is not None:
                fetched, url = found
                report.links.append(Link(fetched, "intermediate", url))
                report.findings.append(Finding("info", "fetched", f"fetched {name_to_slash(fetched.subject)} from {url}",
                                               name_to_slash(fetched.subject)))
                used.add(fetched)
                current = fetched
                continue
        if trust is None and len(report.links) > 1:
            # Without a trust store there is no telling whether the issuer is a root the clients
            # carry; the chain ends where the inputs end.
            report.findings.append(Finding("warning", "unverified_top",
                                           f"the chain ends below {name_to_slash(current.issuer)}, which is not in "
                                           "the inputs; it was not verified", name_to_slash(current.issuer)))
            return used
        raise _gap(report, current, fetch, trust)


def _best_issuer(cert: x509.Certificate, candidates: list[Input], trust: TrustStore | None) -> Input | None:
    """Among certificates named like ``cert``'s issuer, the one that really signed it.

    A matching AKI/SKI is tried first; with several (a re-issued or cross-signed CA), one the trust
    store holds wins, then a self-signed one (it ends the chain), then the one valid longest.
    """
    ranked = []
    for item in candidates:
        same_key = key_ids_match(cert, item.certificate)
        if same_key is False:
            continue
        trusted = trust is not None and trust.holds(item.certificate)
        ranked.append((same_key is True, trusted, is_self_issued(item.certificate),
                       item.certificate.not_valid_after_utc, item))
    ranked.sort(key=lambda r: r[:4], reverse=True)
    for *_, item in ranked:
        if issued_by(cert, item.certificate):
            return item
    return None


def _gap(report: ChainReport, cert: x509.Certificate, fetched: bool, trust: TrustStore | None) -> ChainError:
    missing = name_to_slash(cert.issuer)
    urls = ca_issuer_urls(cert)
    where = f" from {urls[0]}" if urls else ""
    if fetched:
        fix = ("add it to the inputs (your CA's intermediate or chain file)"
               + ("; the certificate has no AIA caIssuers URL to fetch it from" if not urls else ""))
    elif urls:
        fix = f"add it to the inputs (your CA's intermediate or chain file), or pass --fetch to download it{where}"
    else:
        fix = "add it to the inputs (your CA's intermediate or chain file, or --ca-file if it is your private root)"
    why = f"the issuer of {name_to_slash(cert.subject)} is neither in the inputs nor a root of {trust.name if trust else 'the trust store'}"
    return ChainError(f"missing intermediate: no certificate for {missing}", why, fix, report=report,
                      missing_issuer=missing)


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
                                       "(clients carry their own roots; --include-root keeps it)",
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
