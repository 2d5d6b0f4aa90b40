"""Fetching a missing issuer from the AIA caIssuers URL of the certificate it issued (RFC 5280 4.2.2.1).

Servers that leave out their intermediate still work in browsers, which fetch it from this URL;
`tlskit chain --fetch` does the same, within bounds: http(s) only, at most 1 MiB, 10 s.

Example::

    found = find_issuer(leaf, fetch_issuer_certificates)
    if found:
        issuer, url = found
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tlskit.certificates import issued_by, pkcs7_certificates
from tlskit.errors import NetworkError

if TYPE_CHECKING:
    from cryptography import x509

# An issuer certificate is a few kB; refuse to read megabytes from a URL found in a certificate.
_FETCH_LIMIT = 1 << 20
_FETCH_TIMEOUT = 10.0

# What downloads the certificates a URL serves; tests and callers may pass their own.
Fetcher = Callable[[str], list["x509.Certificate"]]


def find_issuer(cert: x509.Certificate, fetcher: Fetcher) -> tuple[x509.Certificate, str] | None:
    """The issuer of ``cert`` and the URL it came from, trying each caIssuers URL in turn; None if none serves it."""
    for url in ca_issuer_urls(cert):
        for candidate in fetcher(url):
            if issued_by(cert, candidate):
                return candidate, url
    return None


def ca_issuer_urls(cert: x509.Certificate) -> list[str]:
    """The AIA caIssuers URLs (RFC 5280 4.2.2.1) where the issuer's certificate is published."""
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID

    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return []
    return [d.access_location.value for d in aia
            if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
            and isinstance(d.access_location, x509.UniformResourceIdentifier)]


def fetch_issuer_certificates(url: str) -> list[x509.Certificate]:
    """Download what a caIssuers URL serves: DER, PEM, or a PKCS#7 bundle (``.p7c``)."""
    from tlskit.fetching import http_request

    try:
        data = http_request(url, "the issuer certificate", limit=_FETCH_LIMIT, timeout=_FETCH_TIMEOUT,
                            schemes=("http", "https"), fix="check the network, or add the intermediate to the inputs")
    except NetworkError as exc:
        if exc.why and exc.why.startswith("only "):
            raise NetworkError(f"cannot fetch {url}", "only http and https caIssuers URLs are fetched",
                               "add the intermediate to the inputs") from None
        raise
    return _parse_fetched(data, url)


def _parse_fetched(data: bytes, url: str) -> list[x509.Certificate]:
    from cryptography import x509

    for loader in (x509.load_der_x509_certificate, lambda d: x509.load_pem_x509_certificates(d)):
        try:
            loaded = loader(data)
            return loaded if isinstance(loaded, list) else [loaded]
        except Exception:
            pass
    certs = pkcs7_certificates(data)
    if certs:
        return certs
    raise NetworkError(f"{url} did not serve a certificate", "neither DER, PEM nor PKCS#7",
                       "add the intermediate to the inputs")
