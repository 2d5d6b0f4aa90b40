"""One probe: connect, (upgrade,) handshake with verification off, collect the facts, then verify."""

from __future__ import annotations

import datetime as dt
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlskit.certificates import to_pem
from tlskit.errors import InputError, NetworkError, option
from tlskit.probe.ocsp import OcspStaple, decode_staple
from tlskit.probe.starttls import STARTTLS_PORTS, starttls_protocol, upgrade
from tlskit.probe.target import DEFAULT_PORT, Target, ip_or_none, parse_target
from tlskit.probe.verify import Verification, chain_has_root, chain_in_order, verify_chain
from tlskit.trust import TrustStore

if TYPE_CHECKING:
    from cryptography import x509


@dataclass
class ProbeOptions:
    """What to connect to and how. ``servername`` is both the SNI sent and the name verified."""

    host: str
    port: int = DEFAULT_PORT
    servername: str | None = None
    ca_file: Path | None = None
    alpn: list[str] = field(default_factory=list)
    timeout: float = 10.0
    starttls: str | None = None
    now: dt.datetime | None = None  # the time to verify for (--at); None is now
    lenient: bool = False            # Web PKI findings warn instead of failing
    crls: tuple = ()                 # (CRL, source) pairs
    fetch: bool = False              # missing intermediates from AIA, CRLs from distribution points
    ocsp: bool = False               # ask the OCSP responders of the verified path

    def __post_init__(self) -> None:
        self.starttls = starttls_protocol(self.starttls)

    @classmethod
    def parse(cls, target: str, *, starttls: str | None = None, alpn: str | None = None, **options: Any) -> ProbeOptions:
        """Options from what a user types: a target (see :func:`parse_target`), a STARTTLS protocol in any
        case, ALPN protocols as ``"h2,http/1.1"``. The port defaults to the STARTTLS protocol's (25 for
        smtp...) or 443.

        >>> ProbeOptions.parse("mail.example.com", starttls="SMTP").port
        25
        """
        protocol = starttls_protocol(starttls)
        where = parse_target(target, STARTTLS_PORTS[protocol] if protocol else DEFAULT_PORT)
        return cls(host=where.host, port=where.port, starttls=protocol, alpn=parse_alpn(alpn), **options)

    @property
    def name_to_verify(self) -> str:
        return self.servername or self.host

    @property
    def sni(self) -> str | None:
        # RFC 6066: SNI carries host names only, never IP literals; IDNs go as A-labels.
        name = self.name_to_verify
        if ip_or_none(name) is not None:
            return None
        from tlskit.errors import InputError
        from tlskit.verdict import parse_host

        try:
            return parse_host(name).text
        except InputError:
            return name


@dataclass
class ProbeResult:
    target: Target
    address: str
    servername: str | None
    starttls: str | None
    protocol: str
    cipher: str
    cipher_bits: int | None
    alpn: str | None
    chain: list[x509.Certificate]
    chain_in_order: bool
    chain_has_root: bool
    ocsp: OcspStaple | None
    verification: Verification

    @property
    def protocol_obsolete(self) -> bool:
        """SSL 3, TLS 1.0 and 1.1 are deprecated (RFC 8996); browsers refuse them."""
        return self.protocol in ("SSLv3", "TLSv1", "TLSv1.1")

    def chain_pem(self) -> bytes:
        return to_pem(*self.chain)

    def as_dict(self, with_pem: bool = False) -> dict[str, Any]:
        """The JSON document of `tlskit probe --json`; these keys are a contract."""
        from tlskit.inspect import describe_certificate

        now = dt.datetime.now(dt.timezone.utc)
        chain = []
        for depth, cert in enumerate(self.chain):
            info = {"depth": depth, **describe_certificate(cert, now)}
            if with_pem:
                info["pem"] = to_pem(cert).decode()
            chain.append(info)
        return {
            "host": self.target.host,
            "port": self.target.port,
            "address": self.address,
            "servername": self.servername,
            "starttls": self.starttls,
            "protocol": self.protocol,
            "protocol_obsolete": self.protocol_obsolete,
            "cipher": self.cipher,
            "cipher_bits": self.cipher_bits,
            "alpn": self.alpn,
            "chain": chain,
            "chain_in_order": self.chain_in_order,
            "chain_has_root": self.chain_has_root,
            "ocsp": self.ocsp.as_dict() if self.ocsp else None,
            "verified": self.verification.verified,
            "verification": self.verification.as_dict(),
        }


def parse_alpn(text: str | None) -> list[str]:
    """ALPN protocol names from ``"h2,http/1.1"``; each must be 1 to 255 bytes (RFC 7301)."""
    protocols = [p.strip() for p in text.split(",")] if text else []
    if any(not p or len(p) > 255 for p in protocols):
        raise InputError(f"bad {option('alpn')} {text!r}", "an empty or over-long protocol name", f"e.g. {option('alpn')} h2,http/1.1")
    return protocols


def probe(options: ProbeOptions) -> ProbeResult:
    """Connect, (upgrade,) handshake without verifying, then verify what was sent. Network faults raise NetworkError."""
    if options.timeout <= 0:
        raise InputError(f"{option('timeout')} {options.timeout:g} is not positive", fix="give a number of seconds, e.g. 10")
    from tlskit.verdict import parse_host

    # The name is checked like `chain --host`, before connecting: no certificate could be valid for a bad one.
    host = parse_host(options.name_to_verify, option("servername") if options.servername else "the host")
    trust = TrustStore.load(options.ca_file)
    target = Target(options.host, options.port)
    deadline = time.monotonic() + options.timeout
    sock = _connect(target, options.timeout)
    try:
        address = sock.getpeername()[0]
        if options.starttls:
            upgrade(sock, options.starttls, deadline, target)
        handshake = _handshake(sock, options, deadline, target)
    finally:
        sock.close()
    chain = handshake.chain
    if not chain:
        raise NetworkError(f"{target} sent no certificate", "anonymous cipher or PSK-only server",
                           "check the server's certificate configuration")
    staple = decode_staple(handshake.staple, chain)
    verification = verify_chain(chain, host, trust, options.now, handshake.staple, lenient=options.lenient,
                                crls=options.crls, fetch=options.fetch, ocsp=options.ocsp)
    return ProbeResult(
        target=target, address=address, servername=options.sni, starttls=options.starttls,
        protocol=handshake.protocol, cipher=handshake.cipher, cipher_bits=handshake.cipher_bits,
        alpn=handshake.alpn, chain=chain, chain_in_order=chain_in_order(chain), chain_has_root=chain_has_root(chain),
        ocsp=staple, verification=verification,
    )


def _connect(target: Target, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((target.host, target.port), timeout=timeout)
    except socket.gaierror as exc:
        raise NetworkError(f"cannot resolve {target.host}", exc.strerror, "check the host name") from None
    except (TimeoutError, socket.timeout):
        raise NetworkError(f"cannot connect to {target}", f"timed out after {timeout:g}s",
                           f"check the host, port and firewall, or raise {option('timeout')}") from None
    except OSError as exc:
        raise NetworkError(f"cannot connect to {target}", exc.strerror or str(exc),
                           "check that the server is running on that port") from None


@dataclass
class _Handshake:
    protocol: str
    cipher: str
    cipher_bits: int | None
    alpn: str | None
    chain: list[x509.Certificate]
    staple: bytes


def _handshake(sock: socket.socket, options: ProbeOptions, deadline: float, target: Target) -> _Handshake:
    """A TLS handshake through pyOpenSSL with verification off: we verify afterwards, ourselves."""
    import select

    from OpenSSL import SSL

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE, lambda *args: True)
    # A probe must see what the server really speaks, old protocols included, to report it: no data is
    # sent over this connection, so accepting TLS 1.0 or a weak cipher here exposes nothing.
    context.set_min_proto_version(SSL.TLS1_VERSION)
    context.set_cipher_list(b"ALL:@SECLEVEL=0")
    staples: list[bytes] = []

    def keep_staple(connection, data: bytes, _user) -> bool:
        staples.append(bytes(data or b""))
        return True  # judge the staple afterwards, never abort the handshake over it

    context.set_ocsp_client_callback(keep_staple)
    if options.alpn:
        try:
            context.set_alpn_protos([p.encode("ascii") for p in options.alpn])
        except (UnicodeEncodeError, ValueError, SSL.Error) as exc:
            raise InputError(f"bad {option('alpn')} {','.join(options.alpn)!r}", str(exc), f"e.g. {option('alpn')} h2,http/1.1") from None
    connection = SSL.Connection(context, sock)
    if options.sni:
        connection.set_tlsext_host_name(options.sni.encode("ascii"))
    connection.request_ocsp()
    connection.set_connect_state()
    sock.setblocking(False)
    while True:
        try:
            connection.do_handshake()
            break
        except SSL.WantReadError:
            wait = ([sock], [], [])
        except SSL.WantWriteError:
            wait = ([], [sock], [])
        except SSL.SysCallError as exc:
            reason = "the server closed the connection" if exc.args and exc.args[0] in (-1, 0) else str(exc.args[-1])
            raise NetworkError(f"TLS handshake with {target} failed", reason,
                               f"is it a TLS port? for a plain-text port that upgrades, use {option('starttls')}") from None
        except SSL.Error as exc:
            reason = _ssl_error_text(exc)
            if "wrong version number" in reason and not options.starttls:
                # OpenSSL's words for a reply that is not TLS at all: a plain-text (STARTTLS) port.
                raise NetworkError(f"TLS handshake with {target} failed", "the server answered in plain text",
                                   f"for a port that upgrades, use {option('starttls')} smtp|imap|pop3|ftp|postgres") from None
            raise NetworkError(f"TLS handshake with {target} failed", reason,
                               f"check the port, {option('servername')} and the server's TLS settings") from None
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not any(select.select(*wait, remaining)):
            raise NetworkError(f"TLS handshake with {target} timed out", f"no answer within {options.timeout:g}s",
                               f"is it a TLS port? for a plain-text port that upgrades, use {option('starttls')}")
    with warnings.catch_warnings():
        # Servers do send certificates cryptography frowns on (a negative serial...): a probe reports
        # on them instead of printing library warnings.
        warnings.simplefilter("ignore")
        chain = connection.get_peer_cert_chain(as_cryptography=True) or []
    alpn = connection.get_alpn_proto_negotiated()
    result = _Handshake(
        protocol=connection.get_protocol_version_name(),
        cipher=connection.get_cipher_name() or "",
        cipher_bits=connection.get_cipher_bits(),
        alpn=alpn.decode("ascii", "replace") if alpn else None,
        chain=list(chain),
        staple=staples[0] if staples else b"",
    )
    try:
        connection.shutdown()
    except SSL.Error:
        pass  # a polite close_notify is best effort; the facts are already collected
    return result


def _ssl_error_text(exc: Exception) -> str:
    parts = []
    for item in exc.args[0] if exc.args and isinstance(exc.args[0], list) else []:
        if isinstance(item, tuple) and item:
            parts.append(str(item[-1]))
    return "; ".join(parts) or str(exc) or type(exc).__name__
