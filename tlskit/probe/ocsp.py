"""The OCSP response a server staples into the handshake, decoded for display and judged like any OCSP answer."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tlskit.certificates import issued_by

if TYPE_CHECKING:
    from cryptography import x509


@dataclass
class OcspStaple:
    """The OCSP response the server stapled, decoded (never fetched by us).

    ``signature_valid`` is True only for a signature by the leaf's issuer or by a responder certificate
    the issuer issued for OCSP signing; ``fresh`` says whether thisUpdate/nextUpdate hold now.
    """

    response_status: str
    certificate_status: str | None = None
    produced_at: str | None = None
    this_update: str | None = None
    next_update: str | None = None
    revocation_time: str | None = None
    revocation_reason: str | None = None
    matches_leaf: bool | None = None
    signature_valid: bool | None = None
    fresh: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def decode_staple(data: bytes, chain: list[x509.Certificate]) -> OcspStaple | None:
    """Decode a stapled OCSP response and judge it against the leaf's issuer, when the server sent it.

    A staple is only as good as its signature: anyone can staple bytes. ``signature_valid`` is None when
    the issuer was not sent, so there is nothing to check it against.
    """
    if not data:
        return None
    from cryptography.x509 import ocsp

    from tlskit.revocation.ocsp import judge_response

    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        return OcspStaple(response_status="unparseable")
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return OcspStaple(response_status=response.response_status.name.lower())
    issuer = next((c for c in chain[1:] if issued_by(chain[0], c)), None)
    answer = judge_response(data, chain[0], issuer, dt.datetime.now(dt.timezone.utc))
    return OcspStaple(
        response_status="successful",
        certificate_status=answer.status,
        produced_at=response.produced_at_utc.isoformat(),
        this_update=answer.this_update.isoformat() if answer.this_update else None,
        next_update=answer.next_update.isoformat() if answer.next_update else None,
        revocation_time=answer.revoked_at.isoformat() if answer.revoked_at else None,
        revocation_reason=answer.reason,
        matches_leaf=answer.matches if issuer is not None else any(
            r.serial_number == chain[0].serial_number for r in response.responses),
        signature_valid=answer.signed,
        fresh=None if answer.this_update is None else "stale" not in (answer.fault or "") and "future" not in (answer.fault or ""),
    )
