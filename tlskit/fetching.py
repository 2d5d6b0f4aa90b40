"""Bounded HTTP for what certificates point at: AIA caIssuers, CRL distribution points, OCSP responders.

A URL inside a certificate is chosen by whoever made the certificate, so every download is bounded in
size and time, and only the schemes the caller allows are followed (CRLs and OCSP are plain http by
design: they are signed, and https would need revocation checking of its own).
"""

from __future__ import annotations

from tlskit.errors import NetworkError


def http_request(url: str, what: str, *, limit: int, timeout: float, schemes: tuple[str, ...] = ("http",),
                 body: bytes | None = None, content_type: str | None = None, fix: str = "check the network") -> bytes:
    """GET (or POST ``body``) ``url`` and return at most ``limit`` bytes; NetworkError (exit 3) otherwise."""
    import urllib.error
    import urllib.request

    scheme = url.split(":", 1)[0].lower()
    if scheme not in schemes:
        raise NetworkError(f"cannot fetch {what} from {url}", f"only {' and '.join(schemes)} URLs are followed", fix)
    headers = {"User-Agent": "tlskit"}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise NetworkError(f"cannot fetch {what} from {url}", f"HTTP {exc.code}", fix) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise NetworkError(f"cannot fetch {what} from {url}", str(reason), fix) from None
    if len(data) > limit:
        raise NetworkError(f"{url} served more than {limit} bytes", f"that is not {what}", fix)
    return data
