"""The few DER details `cryptography` does not expose: how validity times are encoded, the TBS
signature algorithm next to the outer one, and the policyMappings extension.

Only what the rules need is read, from bytes `cryptography` already parsed, so nothing here has to be
a general ASN.1 decoder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

UTC_TIME, GENERALIZED_TIME = 0x17, 0x18


def _read(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the element at ``offset``."""
    tag = data[offset]
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[start:start + count], "big")
        start += count
    return tag, start, start + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, value start, value end) of each element inside a constructed value."""
    items, offset = [], start
    while offset < end:
        tag, value_start, value_end = _read(data, offset)
        items.append((tag, offset, value_start, value_end))
        offset = value_end
    return items


def validity_time_tags(cert: x509.Certificate) -> tuple[int, int] | None:
    """The ASN.1 tags of notBefore and notAfter (UTCTime 0x17 or GeneralizedTime 0x18)."""
    try:
        tbs = cert.tbs_certificate_bytes
        _, start, end = _read(tbs, 0)
        fields = _children(tbs, start, end)
        if fields[0][0] == 0xA0:  # [0] EXPLICIT version
            fields = fields[1:]
        _, _, validity_start, validity_end = fields[3]
        times = _children(tbs, validity_start, validity_end)
        return times[0][0], times[1][0]
    except (IndexError, ValueError):
        return None


def signature_algorithms_match(cert: x509.Certificate) -> bool:
    """RFC 5280 4.1.1.2: the outer signatureAlgorithm is the same as the TBS ``signature`` field."""
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        der = cert.public_bytes(Encoding.DER)
        _, start, end = _read(der, 0)
        outer = _children(der, start, end)
        tbs = cert.tbs_certificate_bytes
        _, tbs_start, tbs_end = _read(tbs, 0)
        fields = _children(tbs, tbs_start, tbs_end)
        if fields[0][0] == 0xA0:
            fields = fields[1:]
        _, inner_start, _, inner_end = fields[1]
        _, outer_start, _, outer_end = outer[1]
        return tbs[inner_start:inner_end] == der[outer_start:outer_end]
    except (IndexError, ValueError):
        return False


def _oid(data: bytes) -> str:
    first = data[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in data[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def policy_mappings(value: bytes) -> list[tuple[str, str]] | None:
    """(issuerDomainPolicy, subjectDomainPolicy) pairs of a policyMappings extension value, None if malformed."""
    try:
        tag, start, end = _read(value, 0)
        if tag != 0x30:
            return None
        pairs = []
        for pair_tag, _, pair_start, pair_end in _children(value, start, end):
            inner = _children(value, pair_start, pair_end)
            if pair_tag != 0x30 or len(inner) != 2 or any(t != 0x06 for t, *_ in inner):
                return None
            pairs.append((_oid(value[inner[0][2]:inner[0][3]]), _oid(value[inner[1][2]:inner[1][3]])))
        return pairs
    except (IndexError, ValueError):
        return None
