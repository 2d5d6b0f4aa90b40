"""The OCSP response a server staples into the handshake: decoded, and its signature checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tlskit.certificates import issued_by, signature_valid

if TYPE_CHECKING:
    from cryptography import x509


@dataclass
class OcspStaple:
    """The OCSP response the server stapled, decoded (never fetched by us)."""

    response_status: str
    certificate_status: str | None = None
    produced_at: str | None = None
    this_update: str | None = None
    next_update: str | None = None
    revocation_time: str | None = None
    revocation_reason: str | None = None
    matches_leaf: bool | None = None
    signature_valid: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def decode_staple(data: bytes, chain: list[x509.Certificate]) -> OcspStaple | None:
    """Decode a stapled OCSP response and check that the leaf's issuer (or its delegated responder) signed it.

    A staple is only as good as its signature: anyone can staple bytes. ``signature_valid`` is None when
    the issuer was not sent, so there is nothing to check it against.
    """
    if not data:
        return None
    from cryptography.x509 import ocsp

    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        return OcspStaple(response_status="unparseable")
    status = response.response_status.name.lower()
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return OcspStaple(response_status=status)
    leaf = chain[0]
    single = next((r for r in response.responses if r.serial_number == leaf.serial_number), None)
    matches = single is not None
    single = single or next(iter(response.responses))
    return OcspStaple(
        response_status=status,
        certificate_status=single.certificate_status.name.lower(),
        produced_at=response.produced_at_utc.isoformat(),
        this_update=single.this_update_utc.isoformat(),
        next_update=single.next_update_utc.isoformat() if single.next_update_utc else None,
        revocation_time=single.revocation_time_utc.isoformat() if single.revocation_time_utc else None,
        revocation_reason=single.revocation_reason.name if single.revocation_reason else None,
        matches_leaf=matches,
        signature_valid=_staple_signed_by_issuer(response, chain),
    )


def _staple_signed_by_issuer(response, chain: list[x509.Certificate]) -> bool | None:
    issuer = next((c for c in chain[1:] if issued_by(chain[0], c)), None)
    if issuer is None:
        return None
    # RFC 6960 4.2.2.2: signed by the issuer itself, or by a responder certificate the issuer issued.
    signers = [issuer] + [c for c in response.certificates if issued_by(c, issuer)]
    return any(signature_valid(s.public_key(), response.signature, response.tbs_response_bytes,
                               response.signature_hash_algorithm) for s in signers)
