"""What a revocation check found for one certificate of the path (for text and ``--json``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RevocationStatus:
    """``method`` is crl, ocsp or staple; ``status`` good, revoked, unknown or unchecked."""

    depth: int
    subject: str
    method: str
    status: str
    source: str | None = None
    this_update: str | None = None
    next_update: str | None = None
    revoked_at: str | None = None
    reason: str | None = None
    nonce: str | None = None  # OCSP: echoed, absent (the responder ignores nonces), or not sent

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
