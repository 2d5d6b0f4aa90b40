"""Describing certificates, CSRs and keys as plain data, for text and JSON output alike.

The JSON keys here are a contract: scripts read them. Add keys; never rename or remove one.
``self_signed`` is a historical name: it says the certificate is self-issued (subject == issuer, RFC
5280 3.2), without checking the signature; ``signed_by_own_key`` says whether its own key made it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from tlskit.certificates import certificate_sans, fingerprint, is_ca, is_expired, is_self_issued, is_self_signed
from tlskit.csr import csr_sans
from tlskit.keys import KeySummary, public_key_der
from tlskit.names import name_to_slash, san_to_text

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

    from tlskit.files import Bundle


def describe_certificate(cert: x509.Certificate, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or dt.datetime.now(dt.timezone.utc)
    not_after = cert.not_valid_after_utc
    return {
        "type": "certificate",
        "subject": name_to_slash(cert.subject),
        "issuer": name_to_slash(cert.issuer),
        "serial": format(cert.serial_number, "x"),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": _days_left(not_after, now),
        "expired": is_expired(cert, now),
        "self_signed": is_self_issued(cert),
        "signed_by_own_key": is_self_signed(cert),
        "is_ca": is_ca(cert),
        "sans": [san_to_text(n) for n in certificate_sans(cert)],
        "key": KeySummary.of(cert.public_key()).as_dict(),
        "signature_algorithm": _signature_name(cert),
        "fingerprints": {
            "sha256": fingerprint(cert),
            "sha1": fingerprint(cert, "sha1"),
        },
        **_extensions_of(cert),
    }


def describe_csr(csr: x509.CertificateSigningRequest) -> dict[str, Any]:
    try:
        signature_valid = csr.is_signature_valid
    except Exception:
        signature_valid = False
    return {
        "type": "csr",
        "subject": name_to_slash(csr.subject),
        "sans": [san_to_text(n) for n in csr_sans(csr)],
        "key": KeySummary.of(csr.public_key()).as_dict(),
        "signature_algorithm": _signature_name(csr),
        "signature_valid": signature_valid,
        **_extensions_of(csr),
    }


def describe_private_key(key: PrivateKeyTypes) -> dict[str, Any]:
    info = describe_public_key(key.public_key())
    info["type"] = "private_key"
    return info


def describe_public_key(public_key: PublicKeyTypes) -> dict[str, Any]:
    import hashlib

    return {
        "type": "public_key",
        "key": KeySummary.of(public_key).as_dict(),
        # The SPKI hash is what HPKP-style pins and `openssl pkey -pubout | sha256sum` compare.
        "spki_sha256": hashlib.sha256(public_key_der(public_key)).hexdigest(),
    }


def describe_bundle(bundle: Bundle) -> list[dict[str, Any]]:
    items = [describe_certificate(c) for c in bundle.certificates]
    items += [describe_csr(c) for c in bundle.csrs]
    items += [describe_private_key(k) for k in bundle.private_keys]
    items += [describe_public_key(k) for k in bundle.public_keys]
    return items


def _extensions_of(item: x509.Certificate | x509.CertificateSigningRequest) -> dict[str, Any]:
    """``extensions`` and, when they cannot be parsed (an extension twice, a value that is not DER),
    ``extensions_error`` saying why: the rest of the item is still worth showing."""
    from cryptography import x509

    try:
        return {"extensions": describe_extensions(item.extensions), "extensions_error": None}
    except (x509.DuplicateExtension, ValueError) as exc:
        return {"extensions": [], "extensions_error": str(exc)}


def describe_extensions(extensions: x509.Extensions) -> list[dict[str, Any]]:
    return [
        {"name": _extension_name(ext), "oid": ext.oid.dotted_string, "critical": ext.critical,
         "value": _extension_value(ext.value)}
        for ext in extensions
    ]


def _extension_name(ext) -> str:
    name = ext.oid._name
    return name if name and name != "Unknown OID" else ext.oid.dotted_string


def _extension_value(value) -> str:
    from cryptography import x509

    if isinstance(value, x509.BasicConstraints):
        text = f"CA:{'TRUE' if value.ca else 'FALSE'}"
        return text + (f", pathlen:{value.path_length}" if value.path_length is not None else "")
    if isinstance(value, x509.KeyUsage):
        flags = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                 "key_agreement", "key_cert_sign", "crl_sign"]
        used = [f for f in flags if getattr(value, f)]
        if value.key_agreement:
            used += [f for f in ("encipher_only", "decipher_only") if getattr(value, f)]
        return ", ".join(used)
    if isinstance(value, x509.ExtendedKeyUsage):
        return ", ".join(oid._name for oid in value)
    if isinstance(value, x509.SubjectAlternativeName):
        return ", ".join(san_to_text(n) for n in value)
    if isinstance(value, x509.SubjectKeyIdentifier):
        return value.digest.hex(":").upper()
    if isinstance(value, x509.AuthorityKeyIdentifier):
        return value.key_identifier.hex(":").upper() if value.key_identifier else "(issuer and serial)"
    if isinstance(value, x509.AuthorityInformationAccess):
        return ", ".join(f"{d.access_method._name}: {d.access_location.value}" for d in value)
    if isinstance(value, x509.CRLDistributionPoints):
        return ", ".join(str(n.value) for p in value for n in (p.full_name or []))
    if isinstance(value, x509.NameConstraints):
        from tlskit.constraints import NameConstraintsSpec

        return ", ".join(NameConstraintsSpec.from_extension(value).describe())
    if isinstance(value, x509.CertificatePolicies):
        return ", ".join(p.policy_identifier.dotted_string for p in value)
    return type(value).__name__


def _signature_name(obj) -> str:
    oid = obj.signature_algorithm_oid
    return oid._name if oid._name != "Unknown OID" else oid.dotted_string


def _days_left(not_after: dt.datetime, now: dt.datetime) -> int:
    return int((not_after - now).total_seconds() // 86400)
