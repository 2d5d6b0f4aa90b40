"""The rules on one certificate's own form and key: signature algorithm, serial, validity encoding,
critical extensions, key identifiers, key strength (RFC 5280 4.1-4.2, CA/B Forum BR 6.1.5 and 7.1).

Of a trust anchor only the extensions are judged (:mod:`.rules` decides which certificates these apply
to): its own signature, serial and time encoding concern its issuer, not the paths it anchors (certifi
ships roots self-signed with SHA-1). Its key strength is, since a weak anchor key weakens every path
through it.
"""

from __future__ import annotations

from tlskit.certificates import is_self_issued
from tlskit.verdict.der import GENERALIZED_TIME, signature_algorithms_match, validity_time_tags
from tlskit.verdict.problems import Problem, cert_problem

# What a certificate's extensions may carry as critical and still be understood here.
_UNDERSTOOD = {
    "2.5.29.19", "2.5.29.15", "2.5.29.37", "2.5.29.17", "2.5.29.30", "2.5.29.32", "2.5.29.36", "2.5.29.54",
    "2.5.29.33", "2.5.29.35", "2.5.29.14", "1.3.6.1.5.5.7.1.1",
}

_ALLOWED_SIGNATURES = {
    "1.2.840.113549.1.1.11", "1.2.840.113549.1.1.12", "1.2.840.113549.1.1.13",  # RSA PKCS#1 v1.5 SHA-256/384/512
    "1.2.840.10045.4.3.2", "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4",        # ECDSA SHA-256/384/512
    "1.2.840.113549.1.1.10",                                                    # RSA-PSS (parameters checked below)
}
_WEAK_SIGNATURES = {"1.2.840.113549.1.1.5": "SHA-1", "1.2.840.113549.1.1.4": "MD5", "1.2.840.10045.4.1": "SHA-1",
                    "1.2.840.10040.4.3": "SHA-1", "1.3.14.3.2.29": "SHA-1", "1.2.840.113549.1.1.2": "MD2"}


def form_rules(cert, exts, depth, label, acts_as_ca: bool, is_anchor: bool = False) -> list[Problem]:
    """The certificate's own form; of a trust anchor, its names and extensions only."""
    me = label(depth)
    problems = [] if is_anchor else _issued_form(cert, depth, label)
    if len(cert.issuer) == 0:
        problems.append(cert_problem("issuer_empty", 83, depth, label, cert, f"{me} has an empty issuer name"))
    problems += _extension_form(cert, exts, depth, label)
    return problems


def _issued_form(cert, depth, label) -> list[Problem]:
    """What the issuer of ``cert`` put in it and signed: the signature algorithm, serial and validity encoding."""
    me = label(depth)
    problems = []
    signature = cert.signature_algorithm_oid.dotted_string
    if signature in _WEAK_SIGNATURES:
        problems.append(cert_problem("weak_signature", 68, depth, label, cert,
                                 f"{me} is signed with {_WEAK_SIGNATURES[signature]}, which verifiers refuse",
                                 "the issuer signed with SHA-1 or MD5, which clients refuse: reissue the certificates "
                                 "with SHA-256"))
    elif signature not in _ALLOWED_SIGNATURES or not _pss_allowed(cert):
        problems.append(cert_problem("signature_algorithm_not_allowed", 1, depth, label, cert,
                                 f"{me} is signed with {_signature_name(cert)}, which the Web PKI does not allow "
                                 "(CA/B BR 7.1.3.2: RSA or ECDSA with SHA-256/384/512)",
                                 "reissue it with RSA or ECDSA and SHA-256"))
    if not signature_algorithms_match(cert):
        problems.append(cert_problem("signature_algorithm_mismatch", 78, depth, label, cert,
                                 f"{me} names different signature algorithms inside and outside its signed part "
                                 "(RFC 5280 4.1.1.2)"))
    serial = cert.serial_number
    if serial == 0:
        problems.append(cert_problem("serial_zero", 1, depth, label, cert,
                                 f"{me} has serial number 0; RFC 5280 4.1.2.2 requires a positive integer"))
    elif serial < 0:
        problems.append(cert_problem("serial_negative", 1, depth, label, cert,
                                 f"{me} has a negative serial number; RFC 5280 4.1.2.2 requires a positive integer"))
    elif (serial.bit_length() + 8) // 8 > 20:
        problems.append(cert_problem("serial_too_long", 1, depth, label, cert,
                                 f"{me} has a serial number of {(serial.bit_length() + 8) // 8} octets; "
                                 "RFC 5280 4.1.2.2 allows at most 20"))
    tags = validity_time_tags(cert)
    if tags is not None:
        for index, (tag, when) in enumerate(zip(tags, (cert.not_valid_before_utc, cert.not_valid_after_utc))):
            if tag == GENERALIZED_TIME and 1950 <= when.year < 2050:
                problems.append(cert_problem("validity_encoding", 13 + index, depth, label, cert,
                                         f"{me} encodes {'notBefore' if index == 0 else 'notAfter'} as "
                                         "GeneralizedTime before 2050, where RFC 5280 4.1.2.5 requires UTCTime"))
    return problems


def _extension_form(cert, exts, depth, label) -> list[Problem]:
    me = label(depth)
    problems = []
    for oid, ext in exts.items():
        if ext.critical and oid not in _UNDERSTOOD:
            problems.append(cert_problem("unknown_critical_extension", 34, depth, label, cert,
                                     f"{me} has a critical extension {_extension_name(oid)} that tlskit does not "
                                     "process (RFC 5280 4.2: such a certificate must be refused)"))
    for oid, code, name in (("2.5.29.35", 90, "authorityKeyIdentifier"), ("2.5.29.14", 91, "subjectKeyIdentifier"),
                            ("1.3.6.1.5.5.7.1.1", 41, "authorityInfoAccess")):
        if oid in exts and exts[oid].critical:
            problems.append(cert_problem(f"{name}_critical", code, depth, label, cert,
                                     f"{me} marks its {name} critical, which RFC 5280 forbids"))
    from cryptography import x509

    # A v1 certificate has no extensions at all: its version is the fault (version_not_v3, issuer_not_ca).
    aki = exts.get("2.5.29.35")
    if not is_self_issued(cert) and cert.version == x509.Version.v3 and (aki is None or aki.value.key_identifier is None):
        what = "no authorityKeyIdentifier" if aki is None else "an authorityKeyIdentifier without keyIdentifier"
        problems.append(cert_problem("aki_missing", 85, depth, label, cert,
                                 f"{me} has {what}, so it does not name its issuer's key (RFC 5280 4.2.1.1)",
                                 "have it reissued (every CA tool adds it by default)"))
    return problems


def _pss_allowed(cert) -> bool:
    """RSA-PSS only with the BR's three parameter sets: the same SHA-2 for hash and MGF1, salt = digest size."""
    if cert.signature_algorithm_oid.dotted_string != "1.2.840.113549.1.1.10":
        return True
    try:
        params = cert.signature_algorithm_parameters
        hash_algorithm = cert.signature_hash_algorithm
        return (hash_algorithm.name in ("sha256", "sha384", "sha512") and params._mgf._algorithm.name == hash_algorithm.name
                and params._salt_length == hash_algorithm.digest_size)
    except Exception:
        return False


def _signature_name(cert) -> str:
    name = cert.signature_algorithm_oid._name
    return name if name != "Unknown OID" else cert.signature_algorithm_oid.dotted_string


def _extension_name(oid: str) -> str:
    from cryptography.x509 import ObjectIdentifier

    name = ObjectIdentifier(oid)._name
    return f"{name} ({oid})" if name != "Unknown OID" else oid


def key_rules(cert, depth, label, acts_as_ca: bool) -> list[Problem]:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

    me = label(depth)
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return [cert_problem("key_algorithm_not_allowed", 1, depth, label, cert,
                         f"{me} has a public key tlskit cannot read (unsupported algorithm or explicit curve "
                         "parameters)", "reissue it with an RSA or ECDSA P-256 key")]
    weak_code = 67 if acts_as_ca else 66
    if isinstance(key, rsa.RSAPublicKey):
        problems = []
        if key.key_size < 2048:
            problems.append(cert_problem("rsa_key_too_small", weak_code, depth, label, cert,
                                     f"{me} has an RSA key of {key.key_size} bits; the Web PKI requires at least "
                                     "2048 (CA/B BR 6.1.5)", "reissue it with an RSA 2048+ or ECDSA P-256 key"))
        if key.key_size % 8:
            problems.append(cert_problem("rsa_key_size_not_multiple_of_8", 1, depth, label, cert,
                                     f"{me} has an RSA key of {key.key_size} bits, not a multiple of 8 "
                                     "(CA/B BR 6.1.5)", "reissue it with an RSA 2048 or 3072 key"))
        return problems
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            return [cert_problem("ec_curve_not_allowed", weak_code if key.curve.key_size < 224 else 1, depth, label, cert,
                             f"{me} has an EC key on {key.curve.name}; the Web PKI allows P-256, P-384 and P-521 "
                             "(CA/B BR 6.1.5)", "reissue it with a P-256 key")]
        return []
    kind = "DSA" if isinstance(key, dsa.DSAPublicKey) else type(key).__name__.removesuffix("PublicKey").lstrip("_")
    return [cert_problem("key_algorithm_not_allowed", 1, depth, label, cert,
                     f"{me} has a {kind} key; the Web PKI allows RSA and ECDSA only (CA/B BR 6.1.5)",
                     "reissue it with an RSA 2048+ or ECDSA P-256 key")]
