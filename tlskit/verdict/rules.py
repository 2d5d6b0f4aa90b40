"""The checks of one candidate path, each a :class:`Problem` that names the certificate and the real reason.

They cover what `cryptography`'s WebPKI verifier checks (so that a refusal is explained in the user's
terms, not as "candidates exhausted"), what RFC 5280 asks beyond it (policies, directoryName
constraints, the anchor's own constraints), and the Web PKI findings of :mod:`.problems`.

A trust anchor's key is trusted as configured (RFC 5280 6.1.1 (d)), so what only its issuer would check
is not judged: its own signature, serial and time encoding. The extensions it signs the path with are
(basicConstraints, keyUsage, critical extensions, key identifiers), as `cryptography` judges them; an old
v1 root has none, and only what it imposes applies (validity, name constraints, path length, its key's
strength and the purposes its EKU allows).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tlskit.certificates import (authority_key_id, certificate_sans, is_ca, is_expired, is_not_yet_valid,
                                 is_self_issued, subject_key_id)
from tlskit.errors import option
from tlskit.names import name_to_slash, san_to_text
from tlskit.verdict import constraints, policies
from tlskit.verdict.hosts import HostName, leaf_matches
from tlskit.verdict.form import form_rules, key_rules
from tlskit.verdict.problems import Problem, cert_problem

if TYPE_CHECKING:
    from cryptography import x509

SERVER, CLIENT = "server", "client"
PURPOSES = (SERVER, CLIENT)

_ANY_EKU = "2.5.29.37.0"
_EKU = {SERVER: "1.3.6.1.5.5.7.3.1", CLIENT: "1.3.6.1.5.5.7.3.2"}
_EKU_NAME = {SERVER: "serverAuth", CLIENT: "clientAuth"}


@dataclass(frozen=True)
class PathContext:
    """What a path is checked for. ``bottom_is_ca``: the path starts at a CA (a sub-CA's own chain)."""

    purpose: str
    host: HostName | None
    at: dt.datetime
    bottom_is_ca: bool = False


def label_for(path: list[x509.Certificate], anchored: bool, bottom_is_ca: bool = False) -> Callable[[int], str]:
    """``label(depth)``: "the leaf /CN=...", "the intermediate /CN=...", "the root /CN=..."."""
    top = len(path) - 1

    def label(depth: int) -> str:
        cert = path[depth]
        if depth == 0:
            role = "CA" if bottom_is_ca else "leaf"
        elif depth == top and is_self_issued(cert):
            role = "root"
        elif depth == top and anchored:
            role = "trust anchor"
        else:
            role = "intermediate"
        return f"the {role} {name_to_slash(cert.subject)}"

    return label


def check_path(path: list[x509.Certificate], anchored: bool, context: PathContext) -> list[Problem]:
    """Every problem of ``path`` (leaf first), in OpenSSL's order: extensions, key strength, names, time, policy."""
    label = label_for(path, anchored, context.bottom_is_ca)
    top = len(path) - 1
    problems: list[Problem] = []
    for depth, cert in enumerate(path):
        is_anchor = anchored and depth == top
        # An untrusted root above the path fails as untrusted (18/19) whatever it looks like, and a v1
        # anchor has no extensions to judge.
        judged = not (depth == top and (is_anchor and cert.version.name == "v1"
                                        or not anchored and depth > 0 and is_self_issued(cert)))
        exts = _extensions(cert)
        if exts is None:
            problems.append(cert_problem("extensions_malformed", 41, depth, label, cert,
                                     f"{label(depth)} has extensions that cannot be parsed (duplicated or malformed)",
                                     "have it reissued"))
            continue
        acts_as_ca = depth > 0 or context.bottom_is_ca
        if depth == 0 and not context.bottom_is_ca and not (is_anchor and top == 0 and is_ca(cert)):
            problems += _leaf_rules(cert, exts, depth, label, context, is_anchor)
        if acts_as_ca:
            problems += _ca_rules(path, depth, exts, label, context, judged, is_anchor)
        if judged:
            problems += form_rules(cert, exts, depth, label, acts_as_ca, is_anchor)
        problems += key_rules(cert, depth, label, acts_as_ca)
        if depth < top:
            problems += _link_rules(cert, path[depth + 1], depth, label)
        elif is_self_issued(cert):
            problems += _root_rules(cert, depth, label)
    problems += constraints.check(path, label)
    if anchored:
        problems += policies.check(path, label)
    problems += _time_rules(path, label, context.at)
    if context.host is not None and not context.bottom_is_ca:
        problems += _host_rules(path[0], context.host, label)
    return sorted(problems, key=_openssl_order)


# OpenSSL's verify_chain order: chain extensions and constraints, then key and digest strength, then the
# host name, then validity times, then policies; tlskit's findings without an OpenSSL number come last.
_GROUP = {code: 1 for code in (79, 32, 25, 26, 37, 82, 34, 41, 47, 48, 51, 53, 80, 85, 86, 30, 88, 89, 90, 91, 92, 78,
                               83, 93)}
_GROUP.update({66: 2, 67: 2, 68: 2, 62: 3, 64: 3, 9: 4, 10: 4, 13: 4, 14: 4, 42: 5, 43: 5})


def _openssl_order(problem: Problem) -> tuple[int, int]:
    return _GROUP.get(problem.code, 6), problem.depth if problem.depth is not None else 99


def _extensions(cert: x509.Certificate) -> dict[str, x509.Extension] | None:
    from cryptography import x509

    try:
        return {ext.oid.dotted_string: ext for ext in cert.extensions}
    except (x509.DuplicateExtension, ValueError):
        return None


def _ekus(exts) -> list[str] | None:
    ext = exts.get("2.5.29.37")
    return None if ext is None else [oid.dotted_string for oid in ext.value]


# ------------------------------------------------------------------------------------------- the leaf


def _leaf_rules(cert, exts, depth, label, context: PathContext, is_anchor: bool) -> list[Problem]:
    problems = []
    me = label(depth)
    bc = exts.get("2.5.29.19")
    if bc is not None and bc.value.ca:
        problems.append(cert_problem("leaf_is_ca", 37, depth, label, cert,
                                 f"{me} is a CA certificate (basicConstraints CA:TRUE), used as a {context.purpose} "
                                 "certificate", "use the certificate issued for the site, not its CA"))
    ku = exts.get("2.5.29.15")
    if ku is not None and ku.value.key_cert_sign and not (bc is not None and bc.value.ca):
        problems.append(cert_problem("leaf_key_cert_sign", 82, depth, label, cert,
                                 f"{me} has keyUsage keyCertSign but is not a CA", "have it reissued without keyCertSign"))
    ekus = _ekus(exts)
    wanted = _EKU[context.purpose]
    if ekus is not None:
        if wanted not in ekus and _ANY_EKU not in ekus:
            names = ", ".join(_eku_name(e) for e in ekus) or "nothing"
            problems.append(cert_problem("leaf_eku_wrong_purpose", 26, depth, label, cert,
                                     f"the extendedKeyUsage of {me} allows {names}, not {_EKU_NAME[context.purpose]}",
                                     f"use a certificate issued for TLS {context.purpose}s "
                                     f"(extendedKeyUsage {_EKU_NAME[context.purpose]})"))
        if _ANY_EKU in ekus:
            problems.append(cert_problem("leaf_any_eku", 26, depth, label, cert,
                                     f"{me} carries anyExtendedKeyUsage, which the CA/B Forum forbids in subscriber "
                                     "certificates (BR 7.1.2.7.10)", "have it reissued with the purposes it needs"))
        if exts["2.5.29.37"].critical:
            problems.append(cert_problem("leaf_eku_critical", 26, depth, label, cert,
                                     f"{me} marks its extendedKeyUsage critical, which the CA/B Forum forbids "
                                     "(BR 7.1.2.7.10)", "have it reissued"))
    if "2.5.29.30" in exts:
        problems.append(cert_problem("leaf_name_constraints", 41, depth, label, cert,
                                 f"{me} carries nameConstraints, which only CA certificates may", "have it reissued"))
    sans = certificate_sans(cert)
    if context.purpose == SERVER:
        if not sans:
            problems.append(cert_problem("leaf_san_missing", 62 if context.host else 1, depth, label, cert,
                                     f"{me} has no subjectAltName: clients match host names against SANs only "
                                     "(RFC 6125; the CN is not used)", "have it reissued with the host names as SANs"))
        else:
            problems += _cn_rules(cert, sans, depth, label)
            problems += _wildcard_rules(cert, sans, depth, label)
    san = exts.get("2.5.29.17")
    if san is not None and len(cert.subject) == 0 and not san.critical:
        problems.append(cert_problem("san_not_critical", 88, depth, label, cert,
                                 f"{me} has an empty subject and a non-critical subjectAltName (RFC 5280 4.2.1.6)"))
    if san is not None and len(cert.subject) and san.critical and context.purpose == SERVER:
        problems.append(cert_problem("san_critical", 41, depth, label, cert,
                                 f"{me} marks its subjectAltName critical although it has a subject (CA/B BR "
                                 "7.1.2.7.12)", "have it reissued"))
    from cryptography import x509

    if cert.version != x509.Version.v3 and not is_anchor:
        problems.append(cert_problem("version_not_v3", 1, depth, label, cert,
                                 f"{me} is a version 1 certificate; the CA/B Forum requires version 3 (BR 7.1.1)",
                                 "have it reissued"))
    return problems


def _eku_name(oid: str) -> str:
    from cryptography.x509 import ObjectIdentifier

    name = ObjectIdentifier(oid)._name
    return name if name != "Unknown OID" else oid


def _cn_rules(cert, sans, depth, label) -> list[Problem]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    texts = set()
    for name in sans:
        if isinstance(name, x509.DNSName):
            texts.add(name.value.lower())
        elif isinstance(name, x509.IPAddress):
            texts.add(str(name.value))
    problems = []
    for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = str(attribute.value)
        candidate = value.lower()
        if not value.isascii():
            try:
                import idna

                candidate = idna.encode(value, uts46=True).decode("ascii")
            except (UnicodeError, ValueError):
                pass
        if candidate not in texts:
            problems.append(cert_problem("cn_not_in_sans", 1, depth, label, cert,
                                     f"the subject CN {value!r} of {label(depth)} is not one of its SANs "
                                     "(CA/B BR 7.1.4.3)", "have it reissued with the CN repeated as a SAN"))
    return problems


def _wildcard_rules(cert, sans, depth, label) -> list[Problem]:
    from cryptography import x509

    problems = []
    for name in sans:
        if isinstance(name, x509.DNSName) and name.value.startswith("*."):
            parent = name.value[2:].lower().rstrip(".")
            if _is_public_suffix(parent):
                problems.append(cert_problem("wildcard_public_suffix", 1, depth, label, cert,
                                         f"{label(depth)} names {san_to_text(name)}: a wildcard directly under the "
                                         f"public suffix {parent} (CA/B BR 3.2.2.6)",
                                         "name the registered domain's hosts instead"))
    return problems


_PSL = None


def _is_public_suffix(name: str) -> bool:
    """ICANN public suffixes of the Public Suffix List shipped in the `publicsuffixlist` package (offline).

    Private-section entries (github.io...) are left out: their owners may get wildcards for them, as
    browsers allow.
    """
    global _PSL
    if _PSL is None:
        from publicsuffixlist import PublicSuffixList

        _PSL = PublicSuffixList(only_icann=True, accept_unknown=False)
    return bool(_PSL.is_public(name))


def _host_rules(leaf, host: HostName, label) -> list[Problem]:
    sans = certificate_sans(leaf)
    if not sans or leaf_matches(sans, host):
        return []
    code = 64 if host.ip is not None else 62
    names = ", ".join(san_to_text(n) for n in sans)
    return [cert_problem("hostname_mismatch", code, 0, label, leaf, f"the leaf is not valid for {host}: it names {names}",
                     "use the certificate issued for that name, or check the name asked for")]


# ------------------------------------------------------------------------------------------- the CAs


def _ca_rules(path, depth, exts, label, context: PathContext, judged: bool, is_anchor: bool) -> list[Problem]:
    cert = path[depth]
    me = label(depth)
    problems = []
    if not judged or "2.5.29.19" not in exts and is_ca(cert):
        # An old v1 root has no extensions to judge: only the limits it sets for the path below apply.
        return _path_length(path, depth, exts, label) + _ca_eku(cert, exts, depth, label, context)
    if not is_ca(cert):
        from cryptography import x509

        why = ("it is a version 1 certificate, which can only be a CA as a trust anchor"
               if cert.version == x509.Version.v1 else
               "it has no basicConstraints" if "2.5.29.19" not in exts else "its basicConstraints say CA:FALSE")
        problems.append(cert_problem("issuer_not_ca", 79, depth, label, cert,
                                 f"{me} signs certificates but is not a CA: {why}",
                                 "the chain needs the issuing CA's certificate, not another leaf"))
        ku = exts.get("2.5.29.15")
        if ku is not None and not ku.value.key_cert_sign:
            problems.append(cert_problem("key_cert_sign_missing", 32, depth, label, cert,
                                     f"{me} has a keyUsage without keyCertSign"))
        return problems
    bc = exts["2.5.29.19"]
    if not bc.critical:
        problems.append(cert_problem("ca_basic_constraints_not_critical", 89, depth, label, cert,
                                 f"{me} does not mark basicConstraints critical (RFC 5280 4.2.1.9)",
                                 "have the CA certificate reissued"))
    ku = exts.get("2.5.29.15")
    if ku is None:
        problems.append(cert_problem("ca_key_usage_missing", 92, depth, label, cert,
                                 f"{me} has no keyUsage; a CA certificate needs keyCertSign (RFC 5280 4.2.1.3)",
                                 "have the CA certificate reissued with keyUsage keyCertSign, cRLSign"))
    elif not ku.value.key_cert_sign:
        # OpenSSL's X509_check_ca() refuses such a CA outright (79) before the signature check says 32.
        problems.append(cert_problem("issuer_not_ca", 79, depth, label, cert,
                                     f"{me} signs certificates but its keyUsage does not allow it (no keyCertSign)",
                                     "have the CA certificate reissued with keyUsage keyCertSign, cRLSign"))
        problems.append(cert_problem("key_cert_sign_missing", 32, depth, label, cert,
                                     f"{me} has a keyUsage without keyCertSign, so it may not sign certificates"))
    problems += _path_length(path, depth, exts, label)
    aki = exts.get("2.5.29.35")
    if aki is not None and (aki.value.key_identifier is None or aki.value.authority_cert_issuer is not None
                            or aki.value.authority_cert_serial_number is not None):
        problems.append(cert_problem("ca_aki_form", 41, depth, label, cert,
                                 f"{me} has an authorityKeyIdentifier without keyIdentifier, or with issuer and "
                                 "serial (CA/B BR 7.1.2.11.1)"))
    eku = exts.get("2.5.29.37")
    if eku is not None and eku.critical:
        problems.append(cert_problem("ca_eku_critical", 41, depth, label, cert,
                                 f"{me} marks its extendedKeyUsage critical (CA/B BR 7.1.2.10.6)"))
    if eku is not None and is_anchor and is_self_issued(cert):
        problems.append(cert_problem("root_eku", 1, depth, label, cert,
                                     f"{me} has an extendedKeyUsage, which a root must not carry (CA/B BR 7.1.2.1.2)",
                                     "a root is restricted through the intermediates it signs: the CA must reissue "
                                     f"it without extendedKeyUsage ({option('lenient')} accepts it meanwhile)"))
    problems += _ca_eku(cert, exts, depth, label, context)
    # Roots too (CA/B BR 7.1.2.1.2): a Web PKI finding, so --lenient accepts the few roots still shipped
    # without one (certifi's TWCA Global Root CA).
    if "2.5.29.14" not in exts:
        problems.append(cert_problem("ski_missing", 86, depth, label, cert,
                                 f"{me} has no subjectKeyIdentifier, which every CA certificate must carry "
                                 "(RFC 5280 4.2.1.2)", f"have the CA certificate reissued ({option('lenient')} accepts "
                                 "it meanwhile)"))
    return problems


def _ca_eku(cert, exts, depth, label, context: PathContext) -> list[Problem]:
    ekus = _ekus(exts)
    wanted = _EKU[context.purpose]
    if ekus is None or wanted in ekus or _ANY_EKU in ekus:
        return []
    names = ", ".join(_eku_name(e) for e in ekus) or "nothing"
    return [cert_problem("ca_eku_excludes_purpose", 26, depth, label, cert,
                     f"the extendedKeyUsage of {label(depth)} allows {names}, not {_EKU_NAME[context.purpose]}: it "
                     f"cannot vouch for a TLS {context.purpose}", "use a CA that issues TLS certificates")]


def _path_length(path, depth, exts, label) -> list[Problem]:
    bc = exts.get("2.5.29.19")
    if bc is None or bc.value.path_length is None:
        return []
    # RFC 5280 6.1.4 (l)-(m): the non-self-issued intermediates between this CA and the leaf.
    below = sum(1 for cert in path[1:depth] if not is_self_issued(cert))
    if below <= bc.value.path_length:
        return []
    cert = path[depth]
    return [cert_problem("path_length_exceeded", 25, depth, label, cert,
                     f"{label(depth)} allows {bc.value.path_length} intermediate(s) below it (pathLenConstraint) and "
                     f"the path has {below}", "use a shorter chain, or a CA allowed to have sub-CAs")]


def _link_rules(cert, issuer, depth, label) -> list[Problem]:
    aki, ski = authority_key_id(cert), subject_key_id(issuer)
    if aki is None or ski is None or aki == ski:
        return []
    return [cert_problem("aki_ski_mismatch", 30, depth, label, cert,
                     f"the authorityKeyIdentifier of {label(depth)} ({aki.hex()[:16]}...) is not the "
                     f"subjectKeyIdentifier of its issuer {name_to_slash(issuer.subject)} ({ski.hex()[:16]}...)",
                     "the issuer was re-keyed or the certificate was made by hand: have it reissued")]


def _root_rules(cert, depth, label) -> list[Problem]:
    aki, ski = authority_key_id(cert), subject_key_id(cert)
    if aki is None:
        return []
    own = ski
    if own is None:
        from cryptography import x509

        own = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    if aki == own:
        return []
    return [cert_problem("root_aki_other_key", 30, depth, label, cert,
                     f"{label(depth)} is self-signed but its authorityKeyIdentifier names another key",
                     "have the root reissued with a matching keyIdentifier")]


def _time_rules(path, label, at: dt.datetime) -> list[Problem]:
    problems = []
    for depth, cert in enumerate(path):
        if is_expired(cert, at):
            problems.append(cert_problem("expired", 10, depth, label, cert,
                                     f"{label(depth)} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC",
                                     "renew it, or get the current certificate from your CA"))
        elif is_not_yet_valid(cert, at):
            problems.append(cert_problem("not_yet_valid", 9, depth, label, cert,
                                     f"{label(depth)} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} "
                                     "UTC", f"check the clock (or {option('at')}), or wait"))
    return problems
