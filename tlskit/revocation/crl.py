"""Certificate revocation lists (RFC 5280 5, 6.3): read, fetched from distribution points, and applied.

A CRL counts for a certificate when it comes from the certificate's issuer (same name, signed by the
issuer's key, which keyUsage allows to sign CRLs), is valid at the verification time, and covers the
certificate's kind (an issuingDistributionPoint may limit it to end-entity or CA certificates). Delta
CRLs and indirect CRLs are not used; a CRL with another critical extension is refused (36).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from tlskit.certificates import validation_time
from tlskit.errors import InputError, option
from tlskit.names import name_to_slash
from tlskit.revocation.status import RevocationStatus
from tlskit.verdict.problems import Problem

if TYPE_CHECKING:
    from cryptography import x509

# CRLs of big CAs run to megabytes; a distribution point is not allowed to make tlskit read more.
FETCH_LIMIT = 20 << 20
FETCH_TIMEOUT = 15.0

_UNDERSTOOD = {"2.5.29.20", "2.5.29.35", "2.5.29.28", "2.5.29.46"}  # CRL number, AKI, IDP, freshest CRL


# What to do about a CRL tlskit cannot rely on. OCSP asks the CA about the one certificate instead.
# Functions, not constants: the settings are spelled when the message is made (see tlskit.errors.option).
def fix_malformed() -> str:
    return ("get the CRL again (tlskit ca crl, or the distribution point); if it is the same, the CA must "
            f"reissue it with each extension once (RFC 5280 5.2), or check with {option('ocsp')} instead of "
            f"{option('crl')}")


def fix_critical_extension() -> str:
    return ("pass a CRL without that critical extension (ask the CA for its complete CRL), or check "
            f"with {option('ocsp')} instead of {option('crl')}")


def fix_entry_extension() -> str:
    return ("ask the CA for a CRL whose entries carry no critical extension but the reason and "
            f"invalidity date, or check with {option('ocsp')} instead of {option('crl')}")


def parse_crls(data: bytes, source: str) -> list[x509.CertificateRevocationList]:
    """The CRLs of a file: one DER CRL, or any number of PEM ``X509 CRL`` blocks."""
    import re

    from cryptography import x509

    blocks = re.findall(rb"-----BEGIN X509 CRL-----.*?-----END X509 CRL-----", data, re.DOTALL)
    try:
        if blocks:
            return [x509.load_pem_x509_crl(block) for block in blocks]
        return [x509.load_der_x509_crl(data)]
    except ValueError as exc:
        raise InputError(f"{source} is not a CRL", str(exc).split("\n")[0],
                         "give a PEM or DER CRL, e.g. from tlskit ca crl or the CA's distribution point") from None


def load_crls(paths: list[str | os.PathLike[str]]) -> list[tuple[x509.CertificateRevocationList, str]]:
    """The CRLs of ``paths`` (each PEM or DER), with the file each came from."""
    from tlskit.files import read_bytes

    crls = []
    for path in paths:
        crls += [(crl, str(path)) for crl in parse_crls(read_bytes(path, "CRL file"), str(path))]
    return crls


def crl_urls(cert: x509.Certificate) -> list[str]:
    """The http URLs of the certificate's CRL distribution points (RFC 5280 4.2.1.13)."""
    from cryptography import x509

    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return []
    return [name.value for point in points for name in (point.full_name or [])
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith("http://")]


def fetch_crl(url: str) -> list[x509.CertificateRevocationList]:
    from tlskit.fetching import http_request

    data = http_request(url, "a CRL", limit=FETCH_LIMIT, timeout=FETCH_TIMEOUT,
                        fix=f"check the network, or pass the CRL with {option('crl')}")
    from tlskit.errors import NetworkError

    try:
        return parse_crls(data, url)
    except InputError:
        raise NetworkError(f"{url} did not serve a CRL", "neither DER nor PEM",
                           f"pass the CRL with {option('crl')}") from None


def check(path: list[x509.Certificate], crls: list[tuple[x509.CertificateRevocationList, str]], at: dt.datetime,
          label,
          required: Callable[[int], bool]) -> tuple[list[Problem], list[RevocationStatus]]:
    """Apply ``crls`` ((CRL, where it came from)) to each certificate of ``path`` below its top.

    ``required(depth)`` says whether a certificate without any CRL fails (3) or is left unchecked.
    """
    at = validation_time(at)
    problems: list[Problem] = []
    statuses: list[RevocationStatus] = []
    for depth in range(len(path) - 1):
        cert, issuer = path[depth], path[depth + 1]
        subject = name_to_slash(cert.subject)
        faults: list[Problem] = []
        usable = []
        for crl, source in ((c, w) for c, w in crls if c.issuer == cert.issuer):
            fault = _judge_crl(crl, cert, issuer, depth, at, label)
            if fault is None:
                usable.append((crl, source))
            elif fault.code:
                faults.append(fault)
        if not usable:
            if faults:
                problems.append(faults[0])
            elif required(depth):
                problems.append(Problem("crl_missing", 3, depth, f"no CRL from {name_to_slash(cert.issuer)} was given "
                                        f"for {label(depth)}", f"pass the issuer's CRL with {option('crl')}, or "
                                        f"{option('fetch')} to download it from the distribution point", subject))
            continue
        first = usable[0][0]
        status = RevocationStatus(depth, subject, "crl", "good", usable[0][1], first.last_update_utc.isoformat(),
                                  first.next_update_utc.isoformat() if first.next_update_utc else None)
        for crl, source in usable:
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is None:
                continue
            reason = _entry_reason(entry)
            if reason == "remove_from_crl":
                continue
            critical = [e.oid.dotted_string for e in entry.extensions if e.critical and
                        e.oid.dotted_string not in ("2.5.29.21", "2.5.29.24")]
            if critical:
                problems.append(Problem("crl_entry_extension", 36, depth, f"the CRL entry for {label(depth)} has a "
                                        f"critical extension tlskit does not process ({', '.join(critical)})",
                                        fix_entry_extension(), subject))
                continue
            revoked_at = entry.revocation_date_utc
            if revoked_at > at:
                continue  # revoked after the time the path is verified for
            status.status, status.revoked_at, status.reason = "revoked", revoked_at.isoformat(), reason
            status.source = source
            problems.append(Problem("revoked", 23, depth, f"{label(depth)} was revoked on {revoked_at:%Y-%m-%d %H:%M} "
                                    f"UTC{f' ({reason})' if reason else ''}, says the CRL of {name_to_slash(crl.issuer)}",
                                    "the issuer revoked this certificate: install a new one", subject))
            break
        statuses.append(status)
    return problems, statuses


def _entry_reason(entry) -> str | None:
    from cryptography import x509

    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
    except (x509.ExtensionNotFound, ValueError):
        return None


def _judge_crl(crl, cert, issuer, depth, at, label) -> Problem | None:
    """None when ``crl`` can be relied on for ``cert``; a Problem with code 0 when it simply does not cover it."""
    from cryptography import x509

    subject = name_to_slash(cert.subject)
    where = f"the CRL of {name_to_slash(crl.issuer)}"
    try:
        extensions = list(crl.extensions)
    except (x509.DuplicateExtension, ValueError):
        return Problem("crl_malformed", 36, depth, f"{where} has extensions that cannot be parsed", fix_malformed(),
                       subject)
    for ext in extensions:
        if ext.oid.dotted_string == "2.5.29.27":  # a delta CRL is no complete list
            return Problem("crl_delta", 0, depth, "", None, subject)
        if ext.critical and ext.oid.dotted_string not in _UNDERSTOOD:
            return Problem("crl_critical_extension", 36, depth, f"{where} has a critical extension "
                           f"{ext.oid.dotted_string} that tlskit does not process", fix_critical_extension(), subject)
        if isinstance(ext.value, x509.IssuingDistributionPoint):
            idp = ext.value
            if idp.indirect_crl or idp.only_some_reasons or idp.only_contains_attribute_certs:
                return Problem("crl_scope_unsupported", 36, depth, f"{where} is an indirect or partial CRL, which "
                               "tlskit does not use", "pass the issuer's complete CRL", subject)
            from tlskit.certificates import is_ca

            if (idp.only_contains_user_certs and is_ca(cert)) or (idp.only_contains_ca_certs and not is_ca(cert)):
                return Problem("crl_scope", 0, depth, "", None, subject)
    try:
        key_usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        if not key_usage.crl_sign:
            return Problem("crl_sign_missing", 35, depth, f"{name_to_slash(issuer.subject)} may not sign CRLs (its "
                           f"keyUsage lacks cRLSign), yet {where} claims it", None, subject)
    except x509.ExtensionNotFound:
        pass
    try:
        signed = crl.is_signature_valid(issuer.public_key())
    except Exception:
        signed = False
    if not signed:
        return Problem("crl_signature", 8, depth, f"the signature of {where} does not verify with the key of "
                       f"{name_to_slash(issuer.subject)}", "get the CRL from the issuer again", subject)
    if crl.last_update_utc > at:
        return Problem("crl_not_yet_valid", 11, depth, f"{where} is not valid before {crl.last_update_utc:%Y-%m-%d %H:%M} "
                       "UTC", f"check the clock (or {option('at')})", subject)
    if crl.next_update_utc is not None and crl.next_update_utc < at:
        return Problem("crl_expired", 12, depth, f"{where} expired on {crl.next_update_utc:%Y-%m-%d %H:%M} UTC "
                       f"(nextUpdate), so it cannot say whether {label(depth)} is revoked",
                       "get a current CRL (tlskit ca crl, or the distribution point)", subject)
    return None
