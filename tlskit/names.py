"""Subjects and subject alternative names, from the forms users type.

Subjects come as openssl's ``/C=IN/ST=Tamilnadu/CN=anybank``, as RFC 4514 ``CN=anybank,C=IN``, from
per-field flags, or from openssl-style prompts. SANs come typed (``DNS:``, ``IP:``, ``email:``, ``URI:``)
or bare, and then their type is guessed the way a person would read them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tlskit.errors import InputError, option
from tlskit.oids import ATTRIBUTE_NAMES

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True)
class Field:
    key: str          # the short name used in /C=.. strings and in JSON
    setting: str      # the keyword (and CLI flag) that sets it, for messages (tlskit.errors.option)
    prompt: str       # what `openssl req` asks
    max_length: int   # RFC 5280 upper bound (ub-*)


# Order is the order openssl prompts in and the order subjects are written in.
FIELDS: tuple[Field, ...] = (
    Field("C", "country", "Country Name (2 letter code)", 2),
    Field("ST", "state", "State or Province Name (full name)", 128),
    Field("L", "locality", "Locality Name (eg, city)", 128),
    Field("O", "org", "Organization Name (eg, company)", 64),
    Field("OU", "org_unit", "Organizational Unit Name (eg, section)", 64),
    Field("CN", "cn", "Common Name (e.g. server FQDN or YOUR name)", 64),
    Field("emailAddress", "email", "Email Address", 255),
)
_FIELDS_BY_KEY = {f.key.lower(): f for f in FIELDS}
# Long names people paste from other tools.
_ALIASES = {
    "countryname": "C", "stateorprovincename": "ST", "s": "ST", "localityname": "L",
    "organizationname": "O", "organizationalunitname": "OU", "commonname": "CN",
    "email": "emailAddress", "e": "emailAddress", "emailaddress": "emailAddress",
}

Subject = dict[str, str]  # field key -> value, in FIELDS order when built by tlskit


def field_key(name: str) -> str:
    lowered = name.strip().lower()
    if lowered in _FIELDS_BY_KEY:
        return _FIELDS_BY_KEY[lowered].key
    if lowered in _ALIASES:
        return _ALIASES[lowered]
    known = ", ".join(f.key for f in FIELDS)
    raise InputError(f"unknown subject field {name!r}", fix=f"use {known}")


def parse_subject(text: str) -> Subject:
    """Parse ``/C=IN/ST=.../CN=x`` (openssl) or ``CN=x,O=y`` (RFC 4514) into validated fields.

    In the slash form a literal slash is written ``\\/``; in RFC 4514 a comma is ``\\,``.
    """
    text = text.strip()
    if not text:
        raise InputError("the subject is empty", fix='give one like "/C=IN/O=Example/CN=example.com"')
    if text.startswith("/"):
        parts = _split_unescaped(text[1:], "/")
    else:
        parts = _split_unescaped(text, ",")
    subject: Subject = {}
    for part in parts:
        if not part.strip():
            continue
        if "=" not in part:
            raise InputError(f"subject part {part!r} has no '='", fix='write fields as KEY=value, e.g. "/CN=example.com"')
        name, _, value = part.partition("=")
        key = field_key(name)
        if key in subject:
            raise InputError(f"subject field {key} is given twice", fix="give each field once")
        subject[key] = _unescape(value).strip()
    return validate_subject(subject)


def subject_from_fields(text: str | None, fields: dict[str, str | None]) -> Subject:
    """A subject from a whole subject string (``text``, see :func:`parse_subject`) and single fields laid
    over it: ``{"O": "Other"}`` replaces the O of ``/O=Example/CN=x``; None means not given."""
    given = {key: value for key, value in fields.items() if value is not None}
    if text is None and not given:
        raise InputError("no subject given", fix=f'pass {option("cn")} NAME, {option("subject")} "/CN=NAME", or {option("interactive")}')
    subject = parse_subject(text) if text is not None else {}
    subject.update(given)
    return validate_subject(subject)


def validate_subject(subject: Subject) -> Subject:
    """Check each field against RFC 5280's bounds; returns the fields in the canonical order."""
    ordered: Subject = {}
    for field in FIELDS:
        value = subject.get(field.key)
        if value is None or value == "":
            continue
        _check_field(field, value)
        ordered[field.key] = value
    if not ordered:
        raise InputError("the subject has no fields", fix=f"give at least {option('cn')} (or a /CN=... subject)")
    return ordered


def _check_field(field: Field, value: str) -> None:
    if field.key == "C":
        if not re.fullmatch(r"[A-Za-z]{2}", value):
            raise InputError(f"country (C) {value!r} is not a two-letter code",
                             "ISO 3166 codes are two letters", "use e.g. IN, US or DE")
        return
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        # A shell hands bytes that are not UTF-8 to Python as lone surrogates: no certificate can hold them.
        raise InputError(f"{field.key} is not valid UTF-8 text", fix=f"retype {option(field.setting)} in UTF-8") from None
    if len(value) > field.max_length:
        raise InputError(f"{field.key} is {len(value)} characters long",
                         f"RFC 5280 allows at most {field.max_length}", f"shorten {option(field.setting)}")
    if field.key == "CN" and len(encoded) > field.max_length:
        # cryptography (and so tlskit) bounds the CN by UTF-8 bytes, not by RFC 5280's characters.
        raise InputError(f"CN is {len(encoded)} bytes long in UTF-8",
                         f"a certificate's CN holds at most {field.max_length}", f"shorten {option(field.setting)}")
    if any(ord(ch) < 32 for ch in value):
        raise InputError(f"{field.key} contains a control character", fix=f"remove it from {option(field.setting)}")
    if field.key == "emailAddress":
        # emailAddress is an IA5String: ASCII only.
        if not value.isascii() or "@" not in value:
            raise InputError(f"emailAddress {value!r} is not an ASCII e-mail address", fix="use name@example.com")


def subject_to_name(subject: Subject) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    oids = {
        "C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
        "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME,
        "emailAddress": NameOID.EMAIL_ADDRESS,
    }
    attributes = []
    for key, value in subject.items():
        value = value.upper() if key == "C" else value
        attributes.append(x509.NameAttribute(oids[key], value))
    return x509.Name(attributes)


def name_to_slash(name: x509.Name) -> str:
    """openssl's one-line form, ``/C=IN/O=Example/CN=example.com``, with '/' escaped."""
    parts = []
    for attribute in name:
        label = ATTRIBUTE_NAMES.get(attribute.oid.dotted_string, attribute.oid.dotted_string)
        value = attribute.value if isinstance(attribute.value, str) else attribute.value.hex()
        parts.append(f"/{label}={value.replace('/', chr(92) + '/')}")
    return "".join(parts) or "/"


def common_name(name: x509.Name) -> str | None:
    from cryptography.x509.oid import NameOID

    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


# --- subject alternative names -----------------------------------------------------------------

_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")


def parse_san(text: str) -> x509.GeneralName:
    """One SAN from ``DNS:x``, ``IP:x``, ``email:x``, ``URI:x`` or a bare value.

    Bare values are read as a person would: an IP address if it parses as one (tried first, because
    ``127.0.0.1`` is also a valid DNS name), an e-mail address if it has an ``@``, a URI if it has a
    scheme (``://``), otherwise a DNS name (wildcards and international names allowed).
    """
    from cryptography import x509

    raw = text.strip()
    kind, sep, value = raw.partition(":")
    kind_lower = kind.lower()
    if sep and kind_lower in ("dns", "ip", "ip address", "email", "uri", "rfc822"):
        value = value.strip()
        if not value:
            raise InputError(f"SAN {text!r} has no value", fix="write e.g. DNS:example.com")
        if kind_lower == "dns":
            return x509.DNSName(dns_name(value))
        if kind_lower in ("ip", "ip address"):
            return x509.IPAddress(_ip(value))
        if kind_lower in ("email", "rfc822"):
            return _email(value)
        return x509.UniformResourceIdentifier(_uri(value))
    if not raw:
        raise InputError("a SAN is empty", fix=f"write e.g. {option('san')} example.com")
    try:
        return x509.IPAddress(ipaddress.ip_address(raw.strip("[]")))
    except ValueError:
        pass
    if "://" in raw:
        return x509.UniformResourceIdentifier(_uri(raw))
    if "@" in raw:
        return _email(raw)
    return x509.DNSName(dns_name(raw))


def parse_sans(values: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for value in values:
        # Accept the comma-separated list openssl's subjectAltName takes, too.
        for part in _split_unescaped(value, ","):
            if part.strip():
                name = parse_san(part)
                if name not in names:
                    names.append(name)
    return names


def san_from_common_name(cn: str | None) -> x509.GeneralName | None:
    """The SAN a CN stands for, when it is a host name or an IP address; browsers ignore the CN."""
    if not cn:
        return None
    try:
        name = parse_san(cn)
    except InputError:
        return None
    from cryptography import x509

    return name if isinstance(name, (x509.DNSName, x509.IPAddress)) else None


def file_stem(name: str, default: str) -> str:
    """A file or directory name for a host name or address, as mkcert does: ``*.example.com`` ->
    ``_wildcard.example.com``; characters shells and other systems trip over (``:`` of IPv6) -> ``_``."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", name.replace("*", "_wildcard"))
    return stem.strip(".") or default


def san_to_text(name: x509.GeneralName) -> str:
    """The typed form openssl prints: ``DNS:example.com``, ``IP Address:127.0.0.1`` -> ``IP:127.0.0.1``."""
    from cryptography import x509

    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"DirName:{name_to_slash(name.value)}"
    if isinstance(name, x509.RegisteredID):
        return f"Registered ID:{name.value.dotted_string}"
    if isinstance(name, x509.OtherName):
        return f"othername:{name.type_id.dotted_string}:{name.value.hex()}"
    return f"{type(name).__name__}:{name.value}"


def dns_name(value: str) -> str:
    """A DNS name (wildcard and IDN allowed) in the form certificates carry: A-labels, lower case."""
    name = value.rstrip(".")
    wildcard = name.startswith("*.")
    body = name[2:] if wildcard else name
    try:
        ascii_name = body.encode("idna").decode("ascii") if not body.isascii() else body
    except UnicodeError:
        raise InputError(f"{value!r} is not a valid DNS name", "IDNA encoding failed", "check the spelling") from None
    labels = ascii_name.split(".")
    if not ascii_name or len(ascii_name) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise InputError(f"{value!r} is not a valid DNS name",
                         "labels are letters, digits and '-', at most 63 each",
                         "prefix it with IP:, email: or URI: if it is something else")
    return ("*." if wildcard else "") + ascii_name.lower()


def _ip(value: str):
    try:
        return ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        raise InputError(f"{value!r} is not an IP address", fix="write e.g. IP:192.0.2.1 or IP:2001:db8::1") from None


def _email(value: str) -> x509.RFC822Name:
    from cryptography import x509

    local, at, domain = value.rpartition("@")
    refusal = InputError(f"{value!r} is not an e-mail address", fix="write e.g. email:admin@example.com")
    if not at or not local or not domain or not value.isascii() or any(c.isspace() for c in value):
        raise refusal
    try:
        return x509.RFC822Name(value)   # cryptography also checks the domain part (``0@:`` is refused there)
    except ValueError:
        raise refusal from None


def _uri(value: str) -> str:
    if not re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", value) or not value.isascii() or any(c.isspace() for c in value):
        raise InputError(f"{value!r} is not a URI", fix="write e.g. URI:https://example.com/")
    return value


# --- prompts ---------------------------------------------------------------------------------


def prompt_subject(ask: Callable[[str], str], say: Callable[[str], None]) -> Subject:
    """Ask for each field like `openssl req`: Enter skips a field, '.' too; a wrong value is asked again."""
    say("You are about to be asked for the information in your certificate request.")
    say("Press Enter (or type '.') to leave a field empty.")
    subject: Subject = {}
    for field in FIELDS:
        while True:
            value = ask(f"{field.prompt} []:").strip()
            if value in ("", "."):
                break
            try:
                _check_field(field, value)
            except InputError as exc:
                say(f"  {exc.message}")
                continue
            subject[field.key] = value
            break
    return validate_subject(subject)
