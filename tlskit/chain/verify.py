"""Turning a verdict into what `tlskit chain` says: the error that names the real reason, and the findings.

The verdict itself (path search, rules, `cryptography`'s second opinion, revocation) is
:func:`tlskit.verdict.verify`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tlskit.aia import ca_issuer_urls
from tlskit.chain.report import ChainError, ChainReport, Finding
from tlskit.errors import option
from tlskit.names import name_to_slash

if TYPE_CHECKING:
    from cryptography import x509

    from tlskit.trust import TrustStore
    from tlskit.verdict import Verdict


def verdict_findings(verdict: Verdict) -> list[Finding]:
    """Every problem and warning of the verdict as a finding: ``error`` fails, ``warning`` (``--lenient``) does not."""
    return ([Finding("error", p.rule, p.detail, p.subject, p.depth, p.code) for p in verdict.problems]
            + [Finding("warning", p.rule, p.detail, p.subject, p.depth, p.code) for p in verdict.warnings])


def raise_for(report: ChainReport, verdict: Verdict, fetched: bool, trust: TrustStore) -> ChainError:
    """The one-line error for a verdict that failed: its first problem, in the user's terms."""
    first = verdict.problems[0]
    top = verdict.path[-1]
    if first.rule == "missing_issuer":
        return gap(report, top, fetched, trust)
    if first.rule == "untrusted_root":
        return ChainError(f"the chain ends at the root {name_to_slash(top.subject)}, which {trust.name} does not trust",
                          fix=f"pass {option('ca_file')} with that root if it is your private CA (e.g. its ca.pem)",
                          report=report)
    others = [p.detail for p in verdict.problems[1:4]]
    more = len(verdict.problems) - 1 - len(others)
    why = f"OpenSSL {first.code}: {first.reason}"
    if others:
        why += "; also " + "; ".join(others) + (f"; and {more} more (see {option('json')})" if more > 0 else "")
    return ChainError(first.detail, why, first.fix or f"check the certificates against {trust.name}", report=report)


def gap(report: ChainReport, cert: x509.Certificate, fetched: bool, trust: TrustStore | None) -> ChainError:
    """The issuer of ``cert`` is nowhere: name it, and say where it might be found."""
    missing = name_to_slash(cert.issuer)
    urls = ca_issuer_urls(cert)
    where = f" from {urls[0]}" if urls else ""
    if fetched:
        fix = ("add it to the inputs (your CA's intermediate or chain file)"
               + ("; the certificate has no AIA caIssuers URL to fetch it from" if not urls else ""))
    elif urls:
        fix = f"add it to the inputs (your CA's intermediate or chain file), or pass {option('fetch')} to download it{where}"
    else:
        fix = f"add it to the inputs (your CA's intermediate or chain file, or {option('ca_file')} if it is your private root)"
    why = (f"the issuer of {name_to_slash(cert.subject)} is neither in the inputs nor a root of "
           f"{trust.name if trust else 'the trust store'}")
    return ChainError(f"missing intermediate: no certificate for {missing}", why, fix, report=report,
                      missing_issuer=missing)
