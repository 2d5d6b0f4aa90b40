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

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlskit.errors import InputError, NetworkError

if TYPE_CHECKING:
    from cryptography import x509

DEFAULT_PORT = 443
# Where each STARTTLS protocol listens when no port is given (the plain-text port that upgrades).
STARTTLS_PORTS = {"smtp": 25, "imap": 143, "pop3": 110, "ftp": 21, "postgres": 5432}

# OpenSSL's X509_V_ERR_* numbers and the words `openssl verify` prints for them (x509_txt.c).
VERIFY_REASONS = {
    0: "ok",
    1: "unspecified certificate verification error",
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    22: "certificate chain too long",
    23: "certificate revoked",
    24: "invalid CA certificate",
    25: "path length constraint exceeded",
    26: "unsupported certificate purpose",
    47: "permitted subtree violation",
    62: "hostname mismatch",
    64: "IP address mismatch",
}

# What the server operator (or the user) can do about each failure.
_FIXES = {
    2: "the trust store holds an intermediate but not its root; add the root to --ca-file",
    9: "the server's clock or the certificate's notBefore is wrong",
    10: "renew the certificate",
    18: "the server uses a self-signed certificate: pass it with --ca-file to trust it on purpose",
    19: "the chain ends in a root nobody trusts: pass that root with --ca-file if it is your own CA",
    20: "the chain's issuer is not trusted: pass your CA with --ca-file, or fix the server's chain",
    23: "the issuer revoked this certificate: install a new one",
    21: "the server sent no intermediate: serve the full chain (fullchain.pem), or pass the issuer with --ca-file",
    62: "the certificate does not name this host: probe the name it was issued for, or reissue with a matching SAN",
    64: "the certificate does not name this IP address: reissue it with an IP SAN",
}


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    @property
    def is_ip(self) -> bool:
        return _ip_or_none(self.host) is not None

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_target(text: str, default_port: int = DEFAULT_PORT) -> Target:
    """HOST, HOST:PORT, [IPv6]:PORT, a bare IPv6 address, or an https:// URL.

    >>> parse_target("[::1]:8443")
    Target(host='::1', port=8443)
    """
    raw = text.strip()
    if not raw:
        raise InputError("no host given", fix="pass HOST or HOST:PORT, e.g. example.com:443")
    if "://" in raw:
        from urllib.parse import urlsplit

        parts = urlsplit(raw)
        if not parts.hostname:
            raise InputError(f"{text!r} has no host", fix="pass HOST or HOST:PORT")
        try:
            port = parts.port
        except ValueError:
            raise InputError(f"{text!r} has a bad port", fix="use a port from 1 to 65535") from None
        schemes = {"https": 443, "smtps": 465, "imaps": 993, "pop3s": 995, "ldaps": 636}
        return Target(parts.hostname, port or schemes.get(parts.scheme, default_port))
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise InputError(f"{text!r} is missing its closing ']'", fix="write IPv6 as [::1]:443")
        host, rest = raw[1:end], raw[end + 1:]
        if _ip_or_none(host) is None or ":" not in host:
            raise InputError(f"{host!r} in brackets is not an IPv6 address", fix="write IPv6 as [::1]:443")
        if rest and not rest.startswith(":"):
            raise InputError(f"unexpected {rest!r} after ']'", fix="write IPv6 as [::1]:443")
        port_text = rest[1:] if rest else None
    elif raw.count(":") > 1:
        # More than one colon without brackets can only be a bare IPv6 address (no port).
        if _ip_or_none(raw) is None:
            raise InputError(f"{text!r} is not a host, HOST:PORT or IPv6 address", fix="write IPv6 as [::1]:443")
        host, port_text = raw, None
    else:
        host, _, port_text = raw.partition(":")
        port_text = port_text if ":" in raw else None
    if not host:
        raise InputError(f"{text!r} has no host", fix="pass HOST or HOST:PORT")
    if any(c.isspace() or c in "/@?#" for c in host):
        raise InputError(f"{host!r} is not a host name", fix="pass HOST or HOST:PORT, e.g. example.com:443")
    return Target(host, _parse_port(port_text, text) if port_text is not None else default_port)


def _parse_port(port_text: str, text: str) -> int:
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InputError(f"bad port {port_text!r} in {text!r}", fix="use a port from 1 to 65535")
    return int(port_text)


def _ip_or_none(host: str):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


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
    now: dt.datetime | None = None  # verification time; tests and --at style checks

    @property
    def name_to_verify(self) -> str:
        return self.servername or self.host

    @property
    def sni(self) -> str | None:
        # RFC 6066: SNI carries host names only, never IP literals.
        name = self.name_to_verify
        return None if _ip_or_none(name) is not None else name


@dataclass
class OcspStaple:
    """The OCSP response the server stapled, decoded (never fetched by us)."""

    response_status: str
    certificate_status: str | None = None
    produced_at: str | None = None
    this_update: str | None = None
    next_update: str | None = None
    revocation_time: str | None = None
    revocation_reason: str | None = None
    matches_leaf: bool | None = None
    signature_valid: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Problem:
    code: int
    reason: str
    depth: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "depth": self.depth, "detail": self.detail}


@dataclass
class Verification:
    """The verdict. ``code`` is OpenSSL's verify number (0 when verified), ``problems`` every fault found."""

    verified: bool
    code: int
    reason: str
    trust: str
    hostname: str
    hostname_ok: bool | None
    problems: list[Problem] = field(default_factory=list)
    fix: str | None = None
    path: list[str] = field(default_factory=list)  # subjects from the leaf to the trust anchor, when built

    def as_dict(self) -> dict[str, Any]:
        return {
            "verified": self.verified, "code": self.code, "reason": self.reason, "trust": self.trust,
            "hostname": self.hostname, "hostname_ok": self.hostname_ok,
            "problems": [p.as_dict() for p in self.problems], "fix": self.fix, "path": self.path,
        }


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

    def chain_pem(self) -> bytes:
        return b"".join(_pem(c) for c in self.chain)

    def as_dict(self, with_pem: bool = False) -> dict[str, Any]:
        """The JSON document of `tlskit probe --json`; these keys are a contract."""
        from tlskit.inspect import describe_certificate

        now = dt.datetime.now(dt.timezone.utc)
        chain = []
        for depth, cert in enumerate(self.chain):
            info = {"depth": depth, **describe_certificate(cert, now)}
            if with_pem:
                info["pem"] = _pem(cert).decode()
            chain.append(info)
        return {
            "host": self.target.host,
            "port": self.target.port,
            "address": self.address,
            "servername": self.servername,
            "starttls": self.starttls,
            "protocol": self.protocol,
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


def _pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM)


# ---------------------------------------------------------------------------------------------- connect


def probe(options: ProbeOptions) -> ProbeResult:
    """Connect, (upgrade,) handshake without verifying, then verify what was sent. Network faults raise NetworkError."""
    if options.starttls is not None and options.starttls not in STARTTLS_PORTS:
        raise InputError(f"unknown --starttls {options.starttls!r}", fix=f"use one of {', '.join(STARTTLS_PORTS)}")
    if options.timeout <= 0:
        raise InputError(f"--timeout {options.timeout:g} is not positive", fix="give a number of seconds, e.g. 10")
    if options.sni is not None:
        try:
            options.sni.encode("idna")
        except UnicodeError:
            raise InputError(f"{options.name_to_verify!r} is not a valid host name",
                             fix="pass a DNS name, e.g. --servername www.example.com") from None
    trust_label, roots = load_trust(options.ca_file)
    target = Target(options.host, options.port)
    deadline = time.monotonic() + options.timeout
    sock = _connect(target, options.timeout)
    try:
        address = sock.getpeername()[0]
        if options.starttls:
            _STARTTLS[options.starttls](_Plain(sock, deadline, target))
        handshake = _handshake(sock, options, deadline, target)
    finally:
        sock.close()
    chain = handshake.chain
    if not chain:
        raise NetworkError(f"{target} sent no certificate", "anonymous cipher or PSK-only server",
                           "check the server's certificate configuration")
    staple = decode_staple(handshake.staple, chain)
    verification = verify_chain(chain, options.name_to_verify, roots, trust_label, options.now, staple)
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
                           "check the host, port and firewall, or raise --timeout") from None
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
    staples: list[bytes] = []

    def keep_staple(connection, data: bytes, _user) -> bool:
        staples.append(bytes(data or b""))
        return True  # judge the staple afterwards, never abort the handshake over it

    context.set_ocsp_client_callback(keep_staple)
    if options.alpn:
        try:
            context.set_alpn_protos([p.encode("ascii") for p in options.alpn])
        except (UnicodeEncodeError, ValueError, SSL.Error) as exc:
            raise InputError(f"bad --alpn {','.join(options.alpn)!r}", str(exc), "e.g. --alpn h2,http/1.1") from None
    connection = SSL.Connection(context, sock)
    if options.sni:
        connection.set_tlsext_host_name(options.sni.encode("idna"))
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
                               "is it a TLS port? for a plain-text port that upgrades, use --starttls") from None
        except SSL.Error as exc:
            reason = _ssl_error_text(exc)
            if "wrong version number" in reason and not options.starttls:
                # OpenSSL's words for a reply that is not TLS at all: a plain-text (STARTTLS) port.
                raise NetworkError(f"TLS handshake with {target} failed", "the server answered in plain text",
                                   "for a port that upgrades, use --starttls smtp|imap|pop3|ftp|postgres") from None
            raise NetworkError(f"TLS handshake with {target} failed", reason,
                               "check the port, --servername and the server's TLS settings") from None
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not any(select.select(*wait, remaining)):
            raise NetworkError(f"TLS handshake with {target} timed out", f"no answer within {options.timeout:g}s",
                               "is it a TLS port? for a plain-text port that upgrades, use --starttls")
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


# --------------------------------------------------------------------------------------------- STARTTLS


class _Plain:
    """Line-oriented plain-text talk before the upgrade, bounded by the probe's deadline."""

    def __init__(self, sock: socket.socket, deadline: float, target: Target) -> None:
        self.sock, self.deadline, self.target = sock, deadline, target
        self.buffer = b""

    def _timeout(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise NetworkError(f"STARTTLS with {self.target} timed out", "the server stopped answering",
                               "check --starttls matches the service, or raise --timeout")
        return remaining

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self._timeout())
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise NetworkError(f"STARTTLS with {self.target} failed", exc.strerror or str(exc)) from None

    def recv_exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def line(self) -> str:
        while b"\n" not in self.buffer:
            if len(self.buffer) > 65536:
                raise NetworkError(f"STARTTLS with {self.target} failed", "an over-long line from the server")
            self._fill()
        raw, self.buffer = self.buffer.split(b"\n", 1)
        return raw.rstrip(b"\r").decode("utf-8", "replace")

    def _fill(self) -> None:
        self.sock.settimeout(self._timeout())
        try:
            chunk = self.sock.recv(4096)
        except (TimeoutError, socket.timeout):
            raise NetworkError(f"STARTTLS with {self.target} timed out", "the server stopped answering",
                               "check --starttls matches the service, or raise --timeout") from None
        except OSError as exc:
            raise NetworkError(f"STARTTLS with {self.target} failed", exc.strerror or str(exc)) from None
        if not chunk:
            raise NetworkError(f"STARTTLS with {self.target} failed", "the server closed the connection")
        self.buffer += chunk

    def refuse(self, said: str, expected: str) -> NetworkError:
        return NetworkError(f"STARTTLS with {self.target} failed",
                            f"expected {expected}, the server said {said.strip()[:120]!r}",
                            "check --starttls matches the service on that port")


def _smtp_reply(plain: _Plain) -> tuple[int, list[str]]:
    """An SMTP reply: "250-first", ..., "250 last" (RFC 5321 4.2.1)."""
    lines = []
    while True:
        line = plain.line()
        lines.append(line)
        if len(line) < 3 or not line[:3].isdigit():
            raise plain.refuse(line, "an SMTP reply")
        if line[3:4] != "-":
            return int(line[:3]), lines


def _starttls_smtp(plain: _Plain) -> None:
    code, lines = _smtp_reply(plain)
    if code != 220:
        raise plain.refuse(lines[-1], "a 220 greeting")
    plain.send(b"EHLO tlskit.invalid\r\n")
    code, lines = _smtp_reply(plain)
    if code != 250:
        raise plain.refuse(lines[-1], "250 to EHLO")
    if not any(line[4:].strip().upper().startswith("STARTTLS") for line in lines):
        raise NetworkError(f"{plain.target} does not offer STARTTLS", "it is missing from the EHLO reply",
                           "the server has TLS turned off on this port")
    plain.send(b"STARTTLS\r\n")
    code, lines = _smtp_reply(plain)
    if code != 220:
        raise plain.refuse(lines[-1], "220 to STARTTLS")


def _starttls_imap(plain: _Plain) -> None:
    greeting = plain.line()
    if not greeting.upper().startswith("* OK"):
        raise plain.refuse(greeting, "an IMAP '* OK' greeting")
    plain.send(b"t1 STARTTLS\r\n")
    while True:
        line = plain.line()
        if line.startswith("t1 "):
            if not line[3:].upper().startswith("OK"):
                raise plain.refuse(line, "'t1 OK' to STARTTLS")
            return


def _starttls_pop3(plain: _Plain) -> None:
    greeting = plain.line()
    if not greeting.startswith("+OK"):
        raise plain.refuse(greeting, "a POP3 '+OK' greeting")
    plain.send(b"STLS\r\n")
    answer = plain.line()
    if not answer.startswith("+OK"):
        raise plain.refuse(answer, "'+OK' to STLS")


def _starttls_ftp(plain: _Plain) -> None:
    code, lines = _smtp_reply(plain)  # FTP replies share SMTP's multi-line form
    if code != 220:
        raise plain.refuse(lines[-1], "a 220 greeting")
    plain.send(b"AUTH TLS\r\n")
    code, lines = _smtp_reply(plain)
    if code != 234:
        raise plain.refuse(lines[-1], "234 to AUTH TLS")


def _starttls_postgres(plain: _Plain) -> None:
    # SSLRequest: length 8, then the magic code 1234 << 16 | 5679; the server answers one byte.
    plain.send(struct.pack("!ii", 8, 80877103))
    answer = plain.recv_exact(1)
    if answer != b"S":
        raise plain.refuse(answer.decode("latin-1"), "'S' (SSL accepted)")


_STARTTLS = {"smtp": _starttls_smtp, "imap": _starttls_imap, "pop3": _starttls_pop3, "ftp": _starttls_ftp,
             "postgres": _starttls_postgres}


# ------------------------------------------------------------------------------------------------ trust


def load_trust(ca_file: Path | None) -> tuple[str, list[x509.Certificate]]:
    """The roots to verify against: certifi's bundle, or the certificates in ``ca_file``."""
    from cryptography import x509

    if ca_file is not None:
        roots = _load_ca_file(ca_file)
        if not roots:
            raise InputError(f"--ca-file {ca_file} holds no certificate", fix="pass a PEM file with your CA certificate")
        return str(ca_file), roots
    import warnings

    import certifi

    with warnings.catch_warnings():
        # certifi still carries an old root with a non-positive serial; cryptography warns on every load.
        warnings.simplefilter("ignore")
        return "certifi", x509.load_pem_x509_certificates(Path(certifi.where()).read_bytes())


def _load_ca_file(path: Path) -> list[x509.Certificate]:
    """The certificates of a CA file. Plain PEM certificates take a direct path: tlskit.files (temp files,
    key formats) costs ~25 ms of imports that a probe, run often from scripts, does not need to pay."""
    import re

    from cryptography import x509

    from tlskit.files import read_bytes

    data = read_bytes(path, "CA file")
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", data, re.DOTALL)
    if blocks and b"-----BEGIN " not in re.sub(rb"-----BEGIN CERTIFICATE-----", b"", data):
        try:
            return [x509.load_pem_x509_certificate(block) for block in blocks]
        except ValueError:
            pass  # let the general reader name the bad block
    from tlskit.files import load_certificates

    return load_certificates(path)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # InvalidSignature, unsupported key types, mismatched names
        return False
    return True


def _self_signed(cert: x509.Certificate) -> bool:
    return _issued_by(cert, cert)


def chain_in_order(chain: list[x509.Certificate]) -> bool:
    """Each certificate the server sent is issued by the next one, as RFC 8446 4.4.2 asks."""
    return all(_issued_by(chain[i], chain[i + 1]) for i in range(len(chain) - 1))


def chain_has_root(chain: list[x509.Certificate]) -> bool:
    """The server also sent a self-signed root (harmless but useless: clients must already have it)."""
    return any(_self_signed(c) for c in chain[1:])


# ----------------------------------------------------------------------------------------------- verify


def verify_chain(
    chain: list[x509.Certificate],
    hostname: str,
    roots: list[x509.Certificate],
    trust_label: str = "certifi",
    now: dt.datetime | None = None,
    staple: OcspStaple | None = None,
) -> Verification:
    """Verify the chain a server sent for ``hostname`` and name the first fault as OpenSSL would.

    `cryptography.x509.verification` gives the verdict. It does not say *why* in a form a script can use,
    so the chain is also walked here the way OpenSSL builds it (trusted issuers first, then the ones the
    server sent) to find OpenSSL's number for the fault: 18/19 self-signed, 20/21 missing issuer,
    9/10 validity, 62/64 name.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    leaf, sent = chain[0], chain[1:]
    name_ok = hostname_matches(leaf, hostname)
    problems, path = _diagnose(leaf, sent, roots, now)
    verdict_error = _cryptography_verify(leaf, sent, roots, now, hostname)
    if staple is not None and staple.certificate_status == "revoked" and staple.matches_leaf and staple.signature_valid:
        # The issuer itself says so, stapled: no chain can make a revoked certificate good.
        when = f" on {staple.revocation_time[:16]}" if staple.revocation_time else ""
        problems.append(Problem(23, VERIFY_REASONS[23], 0, f"the stapled OCSP response says revoked{when}"))
        verdict_error = verdict_error or "revoked"
    if verdict_error is None:
        return Verification(True, 0, VERIFY_REASONS[0], trust_label, hostname, True, [], None, path)
    if not name_ok:
        code = 64 if _ip_or_none(hostname) is not None else 62
        problems.append(Problem(code, VERIFY_REASONS[code], 0,
                                f"{hostname} is not in the leaf's names ({', '.join(_leaf_names(leaf)) or 'none'})"))
    if not problems:
        # cryptography refused for a reason OpenSSL would have named differently (or not at all):
        # a policy rule of RFC 5280 / the CA/B Forum. Say what it said.
        code = _code_from_message(verdict_error)
        problems.append(Problem(code, VERIFY_REASONS[code], None, verdict_error))
    first = problems[0]
    return Verification(False, first.code, first.reason, trust_label, hostname, name_ok, problems,
                        _FIXES.get(first.code), path)


def _diagnose(leaf: x509.Certificate, sent: list[x509.Certificate], roots: list[x509.Certificate],
              now: dt.datetime) -> tuple[list[Problem], list[str]]:
    """Build the path as OpenSSL does and collect OpenSSL-numbered faults (chain first, then validity)."""
    from tlskit.names import name_to_slash

    problems: list[Problem] = []
    path = [leaf]
    root_fingerprints = {_fp(r) for r in roots}
    current = leaf
    while len(path) <= 10:
        depth = len(path) - 1
        if _fp(current) in root_fingerprints:
            break
        # X509_V_FLAG_TRUSTED_FIRST (OpenSSL's default): a trusted issuer wins over a sent one.
        anchor = next((r for r in roots if _issued_by(current, r)), None)
        if anchor is not None:
            path.append(anchor)
            break
        if _self_signed(current):
            code = 18 if depth == 0 else 19
            problems.append(Problem(code, VERIFY_REASONS[code], depth,
                                    f"{name_to_slash(current.subject)} is self-signed and not trusted"))
            break
        issuer = next((c for c in sent if c not in path and _issued_by(current, c)), None)
        if issuer is None:
            # s_client's final word for a lone leaf is 21; with part of a chain it is 20.
            code = 21 if depth == 0 else 20
            problems.append(Problem(code, VERIFY_REASONS[code], depth,
                                    f"issuer {name_to_slash(current.issuer)} was not sent and is not trusted"))
            break
        path.append(issuer)
        current = issuer
    else:
        problems.append(Problem(22, VERIFY_REASONS[22], len(path) - 1, "more than 10 certificates"))
    for depth, cert in enumerate(path):
        if cert.not_valid_after_utc < now:
            problems.append(Problem(10, VERIFY_REASONS[10], depth,
                                    f"{name_to_slash(cert.subject)} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"))
        elif cert.not_valid_before_utc > now:
            problems.append(Problem(9, VERIFY_REASONS[9], depth,
                                    f"{name_to_slash(cert.subject)} is valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"))
    return problems, [name_to_slash(c.subject) for c in path]


def _fp(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256())


def _cryptography_verify(leaf: x509.Certificate, sent: list[x509.Certificate], roots: list[x509.Certificate],
                         now: dt.datetime, hostname: str) -> str | None:
    """None when verified, else cryptography's reason."""
    from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store, VerificationError

    ip = _ip_or_none(hostname)
    try:
        # Certificates carry IDNs as A-labels (xn--...), so compare in that form.
        subject = IPAddress(ip) if ip is not None else DNSName(hostname.rstrip(".").encode("idna").decode().lower())
    except UnicodeError:
        return f"{hostname!r} is not a valid DNS name"
    except ValueError:
        return f"{hostname!r} is not a valid DNS name"
    verifier = PolicyBuilder().store(Store(roots)).time(now).build_server_verifier(subject)
    try:
        verifier.verify(leaf, sent)
    except VerificationError as exc:
        return " ".join(str(exc).split())
    except ValueError as exc:  # e.g. a certificate cryptography cannot parse for verification
        return " ".join(str(exc).split())
    return None


def _code_from_message(message: str) -> int:
    text = message.lower()
    if "basicconstraints" in text or "not a ca" in text or "ca certificate" in text:
        return 24
    if "extendedkeyusage" in text or "extended key usage" in text or "eku" in text:
        return 26
    if "signature" in text:
        return 7
    if "path length" in text:
        return 25
    if "name constraint" in text:
        return 47
    if "expired" in text or "validity" in text:
        return 10
    return 1


def _leaf_names(leaf: x509.Certificate) -> list[str]:
    from tlskit.inspect import certificate_sans
    from tlskit.names import san_to_text

    return [san_to_text(n) for n in certificate_sans(leaf)]


def hostname_matches(leaf: x509.Certificate, hostname: str) -> bool:
    """RFC 6125 matching against the SANs only (the CN is ignored, as browsers and cryptography do)."""
    from cryptography import x509

    from tlskit.inspect import certificate_sans

    names = certificate_sans(leaf)
    ip = _ip_or_none(hostname)
    if ip is not None:
        return any(isinstance(n, x509.IPAddress) and n.value == ip for n in names)
    try:
        wanted = hostname.rstrip(".").encode("idna").decode().lower()
    except UnicodeError:
        return False
    for name in names:
        if not isinstance(name, x509.DNSName):
            continue
        pattern = name.value.rstrip(".").lower()
        if pattern == wanted:
            return True
        # A wildcard covers exactly one left-most label: *.example.com matches a.example.com only.
        if pattern.startswith("*.") and "." in wanted:
            head, rest = wanted.split(".", 1)
            if head and rest == pattern[2:]:
                return True
    return False


# ------------------------------------------------------------------------------------------------- OCSP


def decode_staple(data: bytes, chain: list[x509.Certificate]) -> OcspStaple | None:
    """Decode a stapled OCSP response and check that the leaf's issuer (or its delegated responder) signed it.

    A staple is only as good as its signature: anyone can staple bytes. ``signature_valid`` is None when
    the issuer was not sent, so there is nothing to check it against.
    """
    if not data:
        return None
    from cryptography.x509 import ocsp

    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        return OcspStaple(response_status="unparseable")
    status = response.response_status.name.lower()
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return OcspStaple(response_status=status)
    leaf = chain[0]
    single = next((r for r in response.responses if r.serial_number == leaf.serial_number), None)
    matches = single is not None
    single = single or next(iter(response.responses))
    return OcspStaple(
        response_status=status,
        certificate_status=single.certificate_status.name.lower(),
        produced_at=response.produced_at_utc.isoformat(),
        this_update=single.this_update_utc.isoformat(),
        next_update=single.next_update_utc.isoformat() if single.next_update_utc else None,
        revocation_time=single.revocation_time_utc.isoformat() if single.revocation_time_utc else None,
        revocation_reason=single.revocation_reason.name if single.revocation_reason else None,
        matches_leaf=matches,
        signature_valid=_staple_signed_by_issuer(response, chain),
    )


def _staple_signed_by_issuer(response, chain: list[x509.Certificate]) -> bool | None:
    issuer = next((c for c in chain[1:] if _issued_by(chain[0], c)), None)
    if issuer is None:
        return None
    # RFC 6960 4.2.2.2: signed by the issuer itself, or by a responder certificate the issuer issued.
    signers = [issuer] + [c for c in response.certificates if _issued_by(c, issuer)]
    return any(_signature_ok(s.public_key(), response.signature, response.tbs_response_bytes,
                             response.signature_hash_algorithm) for s in signers)


def _signature_ok(public_key, signature: bytes, data: bytes, hash_algorithm) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hash_algorithm))
        elif isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            public_key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True
