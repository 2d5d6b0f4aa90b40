"""What building a chain found: the ordered links, the findings, and the error that carries them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tlskit.certificates import fingerprint, to_pem
from tlskit.errors import VerifyError
from tlskit.names import name_to_slash

if TYPE_CHECKING:
    from cryptography import x509

    from tlskit.chain.inputs import Input
    from tlskit.verdict import Verdict


@dataclass
class Link:
    """One certificate of the ordered chain: ``role`` is leaf, intermediate or root."""

    certificate: x509.Certificate
    role: str
    source: str

    def describe(self) -> dict[str, Any]:
        cert = self.certificate
        return {
            "role": self.role,
            "subject": name_to_slash(cert.subject),
            "issuer": name_to_slash(cert.issuer),
            "serial": format(cert.serial_number, "x"),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "fingerprint_sha256": fingerprint(cert),
            "source": self.source,
        }


@dataclass
class Finding:
    """Something the user should know: ``level`` is error (the chain fails), warning or info; ``code`` is stable
    for scripts. Verdict findings also carry the certificate's ``depth`` (0 = leaf) and OpenSSL's number."""

    level: str
    code: str
    message: str
    subject: str | None = None
    depth: int | None = None
    openssl_code: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "code": self.code, "message": self.message, "subject": self.subject,
                "depth": self.depth, "openssl_code": self.openssl_code}


@dataclass
class ChainReport:
    """The ordered chain (leaf first, root last when known) and everything found on the way."""

    links: list[Link]
    include_root: bool
    trust: str
    host: str | None = None
    verified: bool = False
    dropped: list[tuple[Input, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    purpose: str = "server"
    verdict: Verdict | None = None

    @property
    def leaf(self) -> x509.Certificate:
        return self.links[0].certificate

    @property
    def root(self) -> Link | None:
        return self.links[-1] if len(self.links) > 1 and self.links[-1].role == "root" else None

    @property
    def output_links(self) -> list[Link]:
        """What goes into fullchain.pem: the root only when asked for (clients carry their own)."""
        return [link for link in self.links if link.role != "root" or self.include_root]

    def fullchain(self) -> list[x509.Certificate]:
        return [link.certificate for link in self.output_links]

    def fullchain_pem(self) -> bytes:
        return to_pem(*self.fullchain())

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def as_dict(self) -> dict[str, Any]:
        root = self.root
        return {
            "verified": self.verified,
            "trust": self.trust,
            "host": self.host,
            "chain": [link.describe() for link in self.output_links],
            "root": root.describe() if root else None,
            "root_included": bool(root and self.include_root),
            "dropped": [
                {"subject": name_to_slash(item.certificate.subject), "reason": reason, "source": item.source,
                 "fingerprint_sha256": fingerprint(item.certificate)}
                for item, reason in self.dropped
            ],
            "findings": [f.as_dict() for f in self.findings],
            "purpose": self.purpose,
            "at": self.verdict.at.isoformat() if self.verdict else None,
            "problems": [p.as_dict() for p in self.verdict.problems] if self.verdict else [],
            "revocation": [r.as_dict() for r in self.verdict.revocation] if self.verdict else [],
            "candidates": self.verdict.candidates if self.verdict else 0,
        }


class ChainError(VerifyError):
    """The chain cannot be completed or does not verify (exit 1); carries the report built so far."""

    def __init__(self, what: str, why: str | None = None, fix: str | None = None,
                 report: ChainReport | None = None, missing_issuer: str | None = None) -> None:
        super().__init__(what, why, fix)
        self.report = report
        self.missing_issuer = missing_issuer
