"""Certificate verdicts: the path search, tlskit's rules, `cryptography`'s second opinion, revocation.

`chain`, `probe` and the server's client-certificate check give their verdicts here, so a rule is
decided once. :func:`verify` takes a leaf, the certificates that may be its intermediates (in any
order) and a trust store; it returns a :class:`Verdict` whose ``problems`` name each fault with tlskit's
rule code and OpenSSL's number.

Example::

    verdict = verify(leaf, intermediates, TrustStore.load("ca.pem"),
                     VerifyOptions(host=parse_host("www.example.com")))
    verdict.verified, [p.rule for p in verdict.problems]
"""

from tlskit.verdict.client import verify_client_chain
from tlskit.verdict.codes import VERIFY_REASONS
from tlskit.verdict.engine import Verdict, VerifyOptions, verify
from tlskit.verdict.hosts import HostName, leaf_matches, parse_host
from tlskit.verdict.problems import FINDINGS, Problem
from tlskit.verdict.rules import CLIENT, PURPOSES, SERVER
from tlskit.verdict.search import MAX_CANDIDATES, MAX_PATH_LENGTH, MAX_SIGNATURE_CHECKS
from tlskit.verdict.times import parse_at

__all__ = ["CLIENT", "FINDINGS", "MAX_CANDIDATES", "MAX_PATH_LENGTH", "MAX_SIGNATURE_CHECKS", "PURPOSES", "SERVER",
           "VERIFY_REASONS", "HostName", "Problem", "Verdict", "VerifyOptions", "leaf_matches", "parse_at",
           "parse_host", "verify", "verify_client_chain"]
