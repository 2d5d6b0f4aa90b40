"""Hypothesis settings and strategies the fuzz tests share (library, CLI and server fuzzing)."""

from __future__ import annotations

import base64

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Each CLI example runs a whole command, keys and files included; a handful per test keeps the file bounded.
CLI = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                     HealthCheck.function_scoped_fixture])

FIELD_NAMES = ["C", "ST", "L", "O", "OU", "CN", "emailAddress", "commonName", "E", "S", "X", "cn", ""]
# Characters that matter to the subject syntax, plus a spread of everything else.
SUBJECT_CHARS = st.one_of(st.sampled_from(list("/=,\\+ \t\n\"'.@-*")), st.characters())


def subject_like() -> st.SearchStrategy[str]:
    """Strings shaped like subjects (so the parser gets past the first check) mixed with raw text."""
    value = st.text(SUBJECT_CHARS, max_size=80)
    slash = st.lists(st.tuples(st.sampled_from(FIELD_NAMES), value), max_size=8).map(
        lambda parts: "".join(f"/{k}={v}" for k, v in parts))
    rfc4514 = st.lists(st.tuples(st.sampled_from(FIELD_NAMES), value), max_size=8).map(
        lambda parts: ",".join(f"{k}={v}" for k, v in parts))
    return st.one_of(slash, rfc4514, st.text(SUBJECT_CHARS, max_size=120))


def san_like() -> st.SearchStrategy[str]:
    prefixes = st.sampled_from(["", "DNS:", "IP:", "email:", "URI:", "IP Address:", "rfc822:", "dns:", "X:"])
    bodies = st.one_of(
        st.text(st.sampled_from(list("abcXYZ019-.*_:@/[]%")) | st.characters(), max_size=80),
        st.from_regex(r"[a-z0-9*-]{0,70}(\.[a-z0-9-]{0,70}){0,5}\.?", fullmatch=True),
        st.ip_addresses().map(str),
        st.emails(),
    )
    return st.tuples(prefixes, bodies).map("".join)


LABELS = ["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE", "CERTIFICATE REQUEST",
          "NEW CERTIFICATE REQUEST", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY",
          "PUBLIC KEY", "RSA PUBLIC KEY", "EC PARAMETERS", "DSA PRIVATE KEY", "PKCS7", "X"]


@st.composite
def pem_like(draw) -> bytes:
    """PEM blocks with real labels around random, DER-looking or base64-broken bodies."""
    blocks = []
    for _ in range(draw(st.integers(1, 3))):
        label = draw(st.sampled_from(LABELS)).encode()
        body = draw(st.one_of(
            st.binary(max_size=300),
            st.binary(max_size=300).map(lambda b: b"\x30\x82" + len(b).to_bytes(2, "big") + b),
            st.binary(max_size=40).map(lambda b: b"\x30" + bytes([len(b)]) + b),
        ))
        encoded = base64.encodebytes(body)
        encoded = draw(st.one_of(st.just(encoded), st.binary(max_size=80), st.just(encoded[:-3])))
        end = draw(st.sampled_from([label, label, b"CERTIFICATE", b""]))
        newline = draw(st.sampled_from([b"\n", b"\r\n"]))
        blocks.append(b"-----BEGIN " + label + b"-----" + newline + encoded + b"-----END " + end + b"-----" + newline)
    junk = draw(st.binary(max_size=20))
    return junk + b"".join(blocks)
