"""The server's TLS: one SSLContext builder, and the zero-config local CA + localhost certificate.

:func:`build_context` has the ``(cert_path, key_path) -> SSLContext`` shape the certificate reloader
(:mod:`.reload`) uses to rebuild a context from renewed files; :mod:`.run` builds the *listening*
context with it and hands it to the reloader, which swaps ``ssl_object.context`` per handshake.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from tlskit.errors import InputError, option

# TLS 1.2 suites: forward secrecy and AEAD only (Mozilla "intermediate"). TLS 1.3 suites are all fine.
TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                 "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
LOCAL_CA_DIR = "ca"
LOCAL_CERT = "localhost.pem"
LOCAL_KEY = "localhost.key"
RENEW_BEFORE_DAYS = 30


class _NoPassphrase(Exception):
    """Raised from OpenSSL's password callback: the key is encrypted and no passphrase was given."""


def _no_passphrase() -> bytes:
    raise _NoPassphrase


def build_context(cert: Path, key: Path, passphrase: bytes | None = None) -> ssl.SSLContext:
    """A server context: TLS 1.2+, forward-secret AEAD ciphers, ALPN http/1.1, no compression/renegotiation.

    An encrypted ``key`` needs ``passphrase``. Without one, OpenSSL would ask on the terminal (or wait on
    a closed stdin under systemd): a password callback that refuses turns that into an InputError at once.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    # One TLS 1.3 session ticket per handshake, as Go's TLS sends, instead of OpenSSL's two: a client of
    # one origin resumes with one, and each ticket costs the handshake an encryption (~5% of handshakes/s).
    context.num_tickets = 1
    for path, what in ((cert, "certificate"), (key, "key")):
        if not Path(path).is_file():
            raise InputError(f"{what} file {path} does not exist",
                             fix=f"pass {option('cert')} and {option('key')}, or omit both for a local CA certificate")
    try:
        context.load_cert_chain(str(cert), str(key), password=passphrase if passphrase is not None else _no_passphrase)
    except _NoPassphrase:
        raise InputError(f"key {key} is encrypted", fix=f"pass its passphrase with {option('passphrase_file')} FILE") from None
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if passphrase is not None:
            # OpenSSL says only "PEM lib" for a wrong passphrase: let the key loader name the problem.
            from tlskit.files import load_private_key_bytes, read_bytes

            load_private_key_bytes(read_bytes(key, "key"), str(key), passphrase)
        if "KEY_VALUES_MISMATCH" in str(exc) or "mismatch" in reason.lower():
            raise InputError(f"{key} does not belong to {cert}", fix="pass the key the certificate was issued for") from None
        raise InputError(f"cannot load {cert} and {key}", reason,
                         "give a PEM certificate (chain) and its PEM private key") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load {cert} and {key}", " ".join(str(exc).split()),
                         "give a PEM certificate (chain) and its PEM private key") from None
    return context


def certificate_names(cert_path: Path) -> frozenset[str]:
    """The DNS names (lower-case, wildcards kept) and IP addresses the leaf of ``cert_path`` is for."""
    from cryptography import x509

    from tlskit.certificates import certificate_sans
    from tlskit.files import load_certificates

    try:
        leaf = load_certificates(cert_path)[0]
    except (IndexError, ValueError):
        return frozenset()
    names = set()
    for san in certificate_sans(leaf):
        if isinstance(san, x509.DNSName):
            names.add(san.value.lower())
        elif isinstance(san, x509.IPAddress) and not isinstance(san.value, (ipaddress.IPv4Network,
                                                                           ipaddress.IPv6Network)):
            names.add(str(san.value))
    return frozenset(names)


@dataclass
class LocalCertificate:
    """What zero-config start made (or found) under the state dir."""

    ca_cert: Path
    cert: Path
    key: Path


def ensure_local_certificate(state_dir: Path, hosts: list[str] | None = None) -> LocalCertificate:
    """A local CA and a localhost/127.0.0.1/::1 certificate signed by it, made once and reused.

    The leaf is re-issued (by the same CA, so clients keep trusting it) when it is missing, near expiry,
    or lacks one of ``hosts``.
    """
    from tlskit.certificates import certificate_sans, to_pem
    from tlskit.files import Output, load_certificates, write_outputs
    from tlskit.issue import CA_CERT_FILE, LocalCA
    from tlskit.keys import KeySpec, generate_key, private_key_pem
    from tlskit.names import parse_sans, san_to_text

    names = ["localhost", "127.0.0.1", "::1"] + [h for h in (hosts or []) if h not in ("localhost", "127.0.0.1", "::1", "0.0.0.0", "::", "")]
    from tlskit.server import ensure_state_dir

    ensure_state_dir(state_dir)
    ca_dir = state_dir / LOCAL_CA_DIR
    created = False
    if (ca_dir / CA_CERT_FILE).exists():
        ca = LocalCA.load(ca_dir)
    else:
        ca = LocalCA.create(ca_dir, {"CN": "tlskit local CA", "O": "tlskit serve"})
        created = True
    cert_path, key_path = state_dir / LOCAL_CERT, state_dir / LOCAL_KEY
    if cert_path.exists() and key_path.exists() and not created:
        cert = load_certificates(cert_path)[0]
        left = cert.not_valid_after_utc - _dt.datetime.now(_dt.timezone.utc)
        have = {san_to_text(n) for n in certificate_sans(cert)}
        wanted = {san_to_text(n) for n in parse_sans(names)}
        if left.days > RENEW_BEFORE_DAYS and wanted <= have:
            return LocalCertificate(ca_dir / CA_CERT_FILE, cert_path, key_path)
    key = generate_key(KeySpec.parse("ec:p256"))
    issued = ca.issue({"CN": "localhost"}, parse_sans(names), key, days=365)
    write_outputs([Output.of(key_path, private_key_pem(key), secret=True),
                   Output.of(cert_path, to_pem(issued.certificate))], force=True)
    return LocalCertificate(ca_dir / CA_CERT_FILE, cert_path, key_path)
