"""Verifying a client certificate (mutual TLS), for `chain --purpose client` and for `tlskit serve`."""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING

from tlskit.verdict.engine import Verdict, VerifyOptions, verify
from tlskit.verdict.rules import CLIENT

if TYPE_CHECKING:
    from cryptography import x509

    from tlskit.trust import TrustStore


def verify_client_chain(chain: list[x509.Certificate], trust: TrustStore | str | os.PathLike[str], *,
                        crls: list | tuple = (), at: dt.datetime | None = None, lenient: bool = False) -> Verdict:
    """The verdict on a client's certificate (``chain[0]``, with the intermediates it sent) for clientAuth.

    ``trust`` is a TrustStore or the path of a CA file; ``crls`` are CRLs (``x509.CertificateRevocationList``
    or (CRL, source) pairs, e.g. from :func:`tlskit.revocation.load_crls`): with any given, the leaf must be
    covered by one. The leaf needs the clientAuth EKU when it has an EKU, no host name is matched and no
    SAN is required. Nothing is fetched from the network.

    Example (a server after the handshake)::

        verdict = verify_client_chain([cert, *sent], "client-ca.pem", crls=load_crls(["ca.crl"]))
        if not verdict.verified:
            refuse(verdict.problems[0].detail)
    """
    from tlskit.trust import TrustStore

    store = trust if isinstance(trust, TrustStore) else TrustStore.from_file(trust)
    pairs = tuple(c if isinstance(c, tuple) else (c, "CRL") for c in crls)
    return verify(chain[0], list(chain[1:]), store, VerifyOptions(purpose=CLIENT, at=at, lenient=lenient, crls=pairs))
