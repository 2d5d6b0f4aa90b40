"""OCSP (RFC 6960): asking a certificate's responder, and judging any response, stapled or fetched.

A response is relied on only when it is successful, names this certificate (serial, issuer name and key
hashes), is signed by the issuer itself or by a responder certificate the issuer issued for OCSP
signing (id-kp-OCSPSigning, RFC 6960 4.2.2.2), echoes the nonce that was sent (when it carries one:
responders that pre-sign answers, as the big public CAs do, leave it out), and is fresh: thisUpdate not
in the future and nextUpdate not past (5 minutes of clock skew), or thisUpdate within 7 days when there
is no nextUpdate.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tlskit.certificates import issued_by, signature_valid, valid_at
from tlskit.errors import option

if TYPE_CHECKING:
    from cryptography import x509

FETCH_LIMIT = 1 << 20
FETCH_TIMEOUT = 10.0
SKEW = dt.timedelta(minutes=5)
MAX_AGE_WITHOUT_NEXT_UPDATE = dt.timedelta(days=7)
_OCSP_SIGNING = "1.3.6.1.5.5.7.3.9"


@dataclass
class OcspAnswer:
    """What one response says about one certificate; ``fault`` is why it cannot be relied on (None: it can)."""

    status: str | None          # good, revoked, unknown (None when the response is unusable)
    fault: str | None = None
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    reason: str | None = None
    nonce: str = "not sent"
    response_status: str = "successful"
    matches: bool = False
    signed: bool | None = None


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    """The http OCSP responder URLs of the certificate's AIA (RFC 5280 4.2.2.1)."""
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID

    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return []
    return [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)
            and d.access_location.value.lower().startswith("http://")]


def ask(cert: x509.Certificate, issuer: x509.Certificate, url: str, now: dt.datetime) -> OcspAnswer:
    """POST a request with a fresh nonce to ``url`` and judge the answer. Network faults raise NetworkError."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    from tlskit.fetching import http_request

    nonce = os.urandom(16)
    request = (ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
               .add_extension(x509.OCSPNonce(nonce), critical=False).build())
    data = http_request(url, "an OCSP response", limit=FETCH_LIMIT, timeout=FETCH_TIMEOUT,
                        body=request.public_bytes(serialization.Encoding.DER), content_type="application/ocsp-request",
                        fix=f"check the network and the responder, or leave out {option('ocsp')}")
    return judge_response(data, cert, issuer, now, nonce)


def judge_response(data: bytes, cert: x509.Certificate, issuer: x509.Certificate | None, now: dt.datetime,
                   nonce: bytes | None = None) -> OcspAnswer:
    """Decode a DER OCSP response about ``cert`` and say whether, and what, it can be relied on for."""
    from cryptography import x509
    from cryptography.x509 import ocsp

    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        return OcspAnswer(None, "the response does not parse", response_status="unparseable")
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        name = response.response_status.name.lower()
        return OcspAnswer(None, f"the responder answered {name}", response_status=name)
    single = None
    for candidate in response.responses:
        if candidate.serial_number != cert.serial_number:
            continue
        if issuer is None:
            single = candidate
            break
        try:
            expected = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, candidate.hash_algorithm).build()
        except (ValueError, TypeError):
            continue
        if (candidate.issuer_key_hash, candidate.issuer_name_hash) == (expected.issuer_key_hash,
                                                                       expected.issuer_name_hash):
            single = candidate
            break
    answer = OcspAnswer(None, response_status="successful")
    if single is None:
        answer.fault = "the response is about another certificate"
        single = next(iter(response.responses), None)
        if single is None:
            return answer
    else:
        answer.matches = True
    answer.this_update, answer.next_update = single.this_update_utc, single.next_update_utc
    answer.status = single.certificate_status.name.lower()
    answer.revoked_at = single.revocation_time_utc
    answer.reason = single.revocation_reason.name if single.revocation_reason else None
    answer.signed = _signed_by_issuer(response, issuer, now) if issuer is not None else None
    if answer.fault:
        return answer
    if answer.signed is False:
        answer.fault = "it is signed neither by the issuer nor by a responder the issuer authorized for OCSP"
    elif nonce is not None:
        try:
            echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            echoed = None
        if echoed is None:
            answer.nonce = "absent"
        elif echoed != nonce:
            answer.nonce, answer.fault = "wrong", "it carries another nonce than the one sent (a replayed answer?)"
        else:
            answer.nonce = "echoed"
    if answer.fault is None:
        answer.fault = _staleness(single, now)
    return answer


def _staleness(single, now: dt.datetime) -> str | None:
    if single.this_update_utc > now + SKEW:
        return f"it is dated {single.this_update_utc:%Y-%m-%d %H:%M} UTC, in the future"
    if single.next_update_utc is not None and single.next_update_utc < now - SKEW:
        return f"it is stale: its nextUpdate {single.next_update_utc:%Y-%m-%d %H:%M} UTC has passed"
    if single.next_update_utc is None and single.this_update_utc < now - MAX_AGE_WITHOUT_NEXT_UPDATE:
        return f"it is stale: dated {single.this_update_utc:%Y-%m-%d} without a nextUpdate"
    return None


def _signed_by_issuer(response, issuer: x509.Certificate, now: dt.datetime) -> bool:
    """RFC 6960 4.2.2.2: the issuer's own key, or a certificate it issued with the OCSPSigning EKU."""
    from cryptography import x509

    signers = [issuer]
    for cert in response.certificates:
        if not issued_by(cert, issuer) or not valid_at(cert, now):
            continue
        try:
            ekus = [oid.dotted_string for oid in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value]
        except (x509.ExtensionNotFound, ValueError):
            continue
        if _OCSP_SIGNING in ekus:
            signers.append(cert)
    return any(_names_signer(response, s) and signature_valid(s.public_key(), response.signature,
                                                                 response.tbs_response_bytes,
                                                                 response.signature_hash_algorithm) for s in signers)


def _names_signer(response, signer: x509.Certificate) -> bool:
    """The response's ResponderID (by name, or by SHA-1 of the key) is ``signer``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if response.responder_name is not None:
        return response.responder_name == signer.subject
    spki = signer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA1())
    digest.update(_subject_public_key_bits(spki))
    return digest.finalize() == response.responder_key_hash


def _subject_public_key_bits(spki: bytes) -> bytes:
    """The BIT STRING contents of a SubjectPublicKeyInfo (what responder key hashes are taken over)."""
    from tlskit.verdict.der import _children, _read

    _, start, end = _read(spki, 0)
    _, _, bits_start, bits_end = _children(spki, start, end)[1]
    return spki[bits_start + 1:bits_end]  # the first content byte counts unused bits


