"""Connect to a TLS server, collect what it sent and how the handshake went, and give a verdict.

`openssl s_client` prints everything, waits on stdin, exits 0 whatever the verification said and checks
no hostname unless asked. :func:`probe` connects (optionally after a STARTTLS exchange), takes the whole
chain the server sent (through pyOpenSSL: the stdlib `ssl` module cannot hand it over before 3.13),
asks for an OCSP staple, and :func:`verify_chain` verifies it with `cryptography.x509.verification`
against certifi's roots or a given CA file. Failures are named with OpenSSL's verify numbers and words
(``21 unable to verify the first certificate``) so that they can be searched for and compared with
what `openssl s_client` or `openssl verify` print.

Nothing here reads stdin, and no session secret (master secret, tickets, keys) is ever collected.

Example::

    result = probe(ProbeOptions(host="example.com", port=443))
    result.verification.verified, result.verification.code   # True, 0
"""

from tlskit.probe.ocsp import OcspStaple, decode_staple
from tlskit.probe.session import ProbeOptions, ProbeResult, probe
from tlskit.probe.starttls import STARTTLS_PORTS
from tlskit.probe.target import DEFAULT_PORT, Target, parse_target
from tlskit.probe.verify import (VERIFY_REASONS, Problem, Verification, chain_has_root, chain_in_order,
                                 hostname_matches, verify_chain)

__all__ = [
    "DEFAULT_PORT", "STARTTLS_PORTS", "VERIFY_REASONS", "OcspStaple", "ProbeOptions", "ProbeResult", "Problem",
    "Target", "Verification", "chain_has_root", "chain_in_order", "decode_staple", "hostname_matches",
    "parse_target", "probe", "verify_chain",
]
