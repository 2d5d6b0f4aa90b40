"""Ordering any pile of certificates into the chain a server sends, and saying what is wrong with it.

Users `cat domain.crt intermediate.crt > bundle.crt` by hand and get the order wrong, leave an
intermediate out, or ship the root. :func:`build_chain` takes certificates in any order (several
files, one mixed bundle, even a whole CA bundle with the site's certificates in it), finds the leaf,
walks up issuer by issuer (subject/issuer names, AKI/SKI, and the signature itself), and verifies
the result with ``cryptography.x509.verification`` against certifi's roots or a given CA file
(:class:`tlskit.trust.TrustStore`).

Example::

    inputs, _ = load_inputs(["cert.pem", "bundle.pem"])
    report = build_chain(inputs, TrustStore.load(None), host="www.example.com")
    write_outputs([Output.of("fullchain.pem", report.fullchain_pem())])

A missing intermediate raises :class:`ChainError` naming the issuer that is missing; with
``fetch=True`` it is first downloaded from the AIA caIssuers URL of the certificate it issued.

The modules: ``inputs`` (what the chain is built from), ``build`` (ordering, gaps, findings),
``verify`` (the verdict of :mod:`tlskit.verdict` in the user's terms), ``report`` (the result and its JSON).
"""

from tlskit.chain.build import EXPIRY_WARNING_DAYS, MAX_DEPTH, build_chain
from tlskit.chain.inputs import Input, load_inputs
from tlskit.chain.report import ChainError, ChainReport, Finding, Link

__all__ = ["EXPIRY_WARNING_DAYS", "MAX_DEPTH", "ChainError", "ChainReport", "Finding", "Input", "Link", "build_chain",
           "load_inputs"]
