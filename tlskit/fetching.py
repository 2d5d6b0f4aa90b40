"""Bounded HTTP for what certificates point at: AIA caIssuers, CRL distribution points, OCSP responders.

A URL inside a certificate is chosen by whoever made the certificate, so every download is bounded in
size and time, and only the schemes the caller allows are followed (CRLs and OCSP are plain http by
design: they are signed, and https would need revocation checking of its own).
"""

from __future__ import annotations

from tlskit.errors import NetworkError


def http_request(url: str, what: str, *, limit: int, timeout: float, schemes: tuple[str, ...] = ("http",),
                 body: bytes | None = None, content_type: str | None = None, fix: str = "check the network") -> bytes:
    """GET (or POST ``body``) ``url`` and return at most ``limit`` bytes; NetworkError (exit 3) otherwise.

    ``timeout`` bounds the whole exchange, not each read: a server that drips a byte at a time is cut off
    too. A redirect is followed only to a scheme of ``schemes`` (an http CRL URL never becomes https or ftp).
    """
    import time
    import urllib.error
    import urllib.request

    _check_scheme(url, what, schemes, fix)
    headers = {"User-Agent": "tlskit"}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    opener = urllib.request.build_opener(_redirects_within(what, schemes, fix),
                                         urllib.request.HTTPSHandler(context=_tls_context()))
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    try:
        with opener.open(request, timeout=timeout) as response:
            while size <= limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise NetworkError(f"cannot fetch {what} from {url}", f"it did not arrive within {timeout:g} s",
                                       fix)
                _set_read_timeout(response, remaining)
                chunk = response.read1(min(65536, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except urllib.error.HTTPError as exc:
        raise NetworkError(f"cannot fetch {what} from {url}", f"HTTP {exc.code}", fix) from None
    except NetworkError:
        raise
    except TimeoutError:
        raise NetworkError(f"cannot fetch {what} from {url}", f"it did not arrive within {timeout:g} s", fix) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise NetworkError(f"cannot fetch {what} from {url}", str(reason), fix) from None
    if size > limit:
        raise NetworkError(f"{url} served more than {limit} bytes", f"that is not {what}", fix)
    return b"".join(chunks)


def _tls_context():
    """What ssl.create_default_context() makes (verified, the system's roots), without its SSLKEYLOGFILE
    handling: it creates that file and appends every session's secrets to it, and a probe or chain run
    must never write them."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_default_certs()
    return context


def _check_scheme(url: str, what: str, schemes: tuple[str, ...], fix: str) -> None:
    scheme = url.split(":", 1)[0].lower()
    if scheme not in schemes:
        raise NetworkError(f"cannot fetch {what} from {url}", f"only {' and '.join(schemes)} URLs are followed", fix)


def _redirects_within(what: str, schemes: tuple[str, ...], fix: str):
    import urllib.request
    from urllib.parse import urljoin

    class Redirects(urllib.request.HTTPRedirectHandler):
        # Checked before urllib's own scheme check, which refuses file: with a bare "HTTP 302" but
        # follows ftp:.
        def http_error_302(self, req, fp, code, msg, headers):
            location = headers.get("location") or headers.get("uri")
            if location:
                _check_scheme(urljoin(req.full_url, location), what, schemes, fix)
            return super().http_error_302(req, fp, code, msg, headers)

        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    return Redirects()


def _set_read_timeout(response, seconds: float) -> None:
    """Shorten the socket timeout of ``response`` to what is left of the deadline (where it can be reached)."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))
