"""x509-limbo test vectors (fixtures/limbo/limbo.json) and the verdicts tlskit and `cryptography` give them.

Each limbo case names a leaf, the untrusted intermediates, the trusted certificates, the time, the
host and the verdict a correct Web PKI verifier gives (SUCCESS or FAILURE). A case whose certificates
do not even parse is a FAILURE for a verifier that refuses them, which both here do.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509

LIMBO = Path(__file__).resolve().parent.parent / "fixtures" / "limbo" / "limbo.json"
SUCCESS, FAILURE = "SUCCESS", "FAILURE"


@cache
def cases() -> tuple[dict, ...]:
    return tuple(json.loads(LIMBO.read_text())["testcases"])


def case(case_id: str) -> dict:
    return next(c for c in cases() if c["id"] == case_id)


@dataclass(frozen=True)
class Verdict:
    result: str
    rules: tuple[str, ...] = ()  # tlskit's failing rule codes; the exception's words for `cryptography`


def when(limbo_case: dict) -> dt.datetime:
    """The case's validation time; a case without one is judged now, as limbo says."""
    text = limbo_case["validation_time"]
    return dt.datetime.fromisoformat(text) if text else dt.datetime.now(dt.timezone.utc)


def _certificates(pems: list[str]) -> list[x509.Certificate]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a serial of 0 warns on parsing; the verdict is what counts
        return [x509.load_pem_x509_certificate(pem.encode()) for pem in pems]


def tlskit_verdict(limbo_case: dict, lenient: bool = False) -> Verdict:
    """The verdict of :func:`tlskit.verdict.verify`, the function `tlskit chain` gives its verdict with;
    ``lenient`` as ``--lenient`` (the Web PKI findings warn instead of failing)."""
    from tlskit.errors import TlskitError
    from tlskit.trust import TrustStore
    from tlskit.verdict import VerifyOptions, parse_host, verify

    try:
        trusted = _certificates(limbo_case["trusted_certs"])
        pool = _certificates(limbo_case["untrusted_intermediates"])
        (leaf,) = _certificates([limbo_case["peer_certificate"]])
        host = parse_host(limbo_case["expected_peer_name"]["value"])
        options = VerifyOptions(host=host, at=when(limbo_case), lenient=lenient)
        verdict = verify(leaf, pool, TrustStore("limbo", trusted), options)
    except (TlskitError, ValueError) as exc:
        return Verdict(FAILURE, (type(exc).__name__,))
    if verdict.verified:
        return Verdict(SUCCESS)
    return Verdict(FAILURE, tuple(p.rule for p in verdict.problems))


def cryptography_verdict(limbo_case: dict) -> Verdict:
    """The verdict of `cryptography`'s own Web PKI verifier, given the same certificates, time and host."""
    from cryptography.x509.verification import PolicyBuilder, Store

    name = limbo_case["expected_peer_name"]
    try:
        trusted = _certificates(limbo_case["trusted_certs"])
        pool = _certificates(limbo_case["untrusted_intermediates"])
        (leaf,) = _certificates([limbo_case["peer_certificate"]])
        subject = (x509.IPAddress(ipaddress.ip_address(name["value"])) if name["kind"] == "IP"
                   else x509.DNSName(name["value"]))
        verifier = PolicyBuilder().store(Store(trusted)).time(when(limbo_case)).build_server_verifier(subject)
        verifier.verify(leaf, pool)
    except Exception as exc:  # the verifier raises VerificationError, parsing ValueError
        return Verdict(FAILURE, (str(exc).split("\n")[0],))
    return Verdict(SUCCESS)
