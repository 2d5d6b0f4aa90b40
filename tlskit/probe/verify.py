"""Verifying the chain a server sent, and naming each fault with OpenSSL's verify number and words.

The verdict is :mod:`tlskit.verdict`'s (shared with `tlskit chain`); a failure reads
``21 unable to verify the first certificate``, searchable and comparable with what `openssl s_client`
and `openssl verify` print, with tlskit's rule code next to it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tlskit.certificates import certificate_sans, is_self_signed, issued_by
from tlskit.names import name_to_slash
from tlskit.verdict.codes import VERIFY_REASONS
from tlskit.verdict.hosts import HostName, leaf_matches
from tlskit.verdict.problems import Problem

if TYPE_CHECKING:
    from cryptography import x509

    from tlskit.trust import TrustStore
    from tlskit.verdict import Verdict

@dataclass
class Verification:
    """The verdict. ``code`` is OpenSSL's verify number (0 when verified), ``problems`` every fault found."""

    verified: bool
    code: int
    reason: str
    trust: str
    hostname: str
    hostname_ok: bool | None
    problems: list[Problem] = field(default_factory=list)
    fix: str | None = None
    path: list[str] = field(default_factory=list)  # subjects from the leaf to the trust anchor, when built
    verdict: Verdict | None = None

    @property
    def warnings(self) -> list[Problem]:
        return self.verdict.warnings if self.verdict else []

    def as_dict(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "verified": self.verified, "code": self.code, "reason": self.reason, "trust": self.trust,
            "hostname": self.hostname, "hostname_ok": self.hostname_ok,
            "problems": [p.as_dict() for p in self.problems], "fix": self.fix, "path": self.path,
            "warnings": [p.as_dict() for p in self.warnings],
            "anchored": verdict.anchored if verdict else None,
            "at": verdict.at.isoformat() if verdict else None,
            "candidates": verdict.candidates if verdict else 0,
            "revocation": [r.as_dict() for r in verdict.revocation] if verdict else [],
        }


def chain_in_order(chain: list[x509.Certificate]) -> bool:
    """Each certificate the server sent is issued by the next one, as RFC 8446 4.4.2 asks."""
    return all(issued_by(chain[i], chain[i + 1]) for i in range(len(chain) - 1))


def chain_has_root(chain: list[x509.Certificate]) -> bool:
    """The server also sent a self-signed root (harmless but useless: clients must already have it)."""
    return any(is_self_signed(c) for c in chain[1:])


# ----------------------------------------------------------------------------------------------- verify


def verify_chain(
    chain: list[x509.Certificate],
    hostname: str | HostName,
    trust: TrustStore,
    now: dt.datetime | None = None,
    staple: bytes | None = None,
    *,
    lenient: bool = False,
    crls: tuple = (),
    fetch: bool = False,
    ocsp: bool = False,
) -> Verification:
    """Verify the chain a server sent for ``hostname`` and name each fault with OpenSSL's number.

    The verdict is :func:`tlskit.verdict.verify`'s: every candidate path through what the server sent
    and the trust store, tlskit's rules, `cryptography`'s second opinion, and revocation (the DER
    ``staple`` the server stapled, ``crls``, and with ``fetch``/``ocsp`` the distribution points and
    responders). ``fetch`` also downloads an intermediate the server left out, as browsers do.
    """
    from tlskit.verdict import VerifyOptions, parse_host, verify

    host = hostname if isinstance(hostname, HostName) else parse_host(hostname, "the name to verify")
    verdict = verify(chain[0], list(chain[1:]), trust, VerifyOptions(
        host=host, at=now, lenient=lenient, crls=tuple(crls), fetch=fetch, ocsp=ocsp, staple=staple or None))
    path = [name_to_slash(c.subject) for c in verdict.path]
    name_ok = leaf_matches(certificate_sans(chain[0]), host)
    if verdict.verified:
        return Verification(True, 0, VERIFY_REASONS[0], trust.name, str(host), True, [], None, path, verdict)
    first = verdict.problems[0]
    return Verification(False, first.code, first.reason, trust.name, str(host), name_ok, verdict.problems,
                        first.fix, path, verdict)


def hostname_matches(leaf: x509.Certificate, hostname: str) -> bool:
    """RFC 6125 matching against the SANs only (the CN is ignored, as browsers and cryptography do)."""
    from tlskit.errors import InputError
    from tlskit.verdict import parse_host

    try:
        host = parse_host(hostname)
    except InputError:
        return False
    return leaf_matches(certificate_sans(leaf), host)
