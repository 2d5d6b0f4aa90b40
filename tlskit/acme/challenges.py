"""Answering ACME challenges: http-01 (standalone or webroot), dns-01 through a hook, tls-alpn-01.

A solver is told about every pending challenge of an order at once (``present``), before the client
asks the CA to validate, and is told again when the order is done (``cleanup``), whatever happened.
Presenting all at once matters for dns-01: ``example.com`` and ``*.example.com`` share one TXT record
name and both values must be there while the CA looks.

Any object with ``challenge_type``, ``present(list[Pending])``, ``cleanup(list[Pending])`` and
``settings()`` is a solver, so a server that already listens on port 80 can answer http-01 itself with
:class:`HttpTokens`, which only keeps the token -> answer map in memory. (`tlskit serve --acme` renews
with :class:`Webroot` instead: its several worker processes all read the answers from files.)
"""

from __future__ import annotations

import errno
import hashlib
import http.server
import os
import shlex
import socket
import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tlskit.errors import BindError, InputError, option

HTTP01 = "http-01"
DNS01 = "dns-01"
TLSALPN01 = "tls-alpn-01"
_WELL_KNOWN = "/.well-known/acme-challenge/"
# RFC 8737: the id-pe-acmeIdentifier extension carries SHA-256(key authorization) as an OCTET STRING.
_ACME_IDENTIFIER_OID = "1.3.6.1.5.5.7.1.31"
_ALPN_PROTOCOL = "acme-tls/1"
_HOOK_TIMEOUT = 120


@dataclass
class Pending:
    """One challenge the CA wants answered for one identifier."""

    name: str                  # the identifier, without "*." for wildcards
    wildcard: bool
    challenge_type: str
    token: str
    key_authorization: str
    url: str                   # the challenge URL the client POSTs to once the answer is in place

    @property
    def dns_record(self) -> str:
        """The TXT record name for dns-01, fully qualified: ``_acme-challenge.example.com.``"""
        return f"_acme-challenge.{self.name}."

    @property
    def dns_value(self) -> str:
        """The TXT value for dns-01: base64url(SHA-256(key authorization)), unpadded (RFC 8555 8.4)."""
        import base64

        digest = hashlib.sha256(self.key_authorization.encode()).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Solver(Protocol):
    challenge_type: str

    def present(self, pending: list[Pending]) -> None: ...

    def cleanup(self, pending: list[Pending]) -> None: ...

    def settings(self) -> dict[str, Any]: ...


# --- http-01 -------------------------------------------------------------------------------------


@dataclass
class HttpTokens:
    """http-01 answers kept in memory for a web server that is already running to serve.

    ``answer(path)`` returns the body for ``/.well-known/acme-challenge/<token>`` or None.
    """

    challenge_type: str = HTTP01
    answers: dict[str, str] = field(default_factory=dict)

    def present(self, pending: list[Pending]) -> None:
        for item in pending:
            self.answers[item.token] = item.key_authorization

    def cleanup(self, pending: list[Pending]) -> None:
        for item in pending:
            self.answers.pop(item.token, None)

    def answer(self, path: str) -> str | None:
        if not path.startswith(_WELL_KNOWN):
            return None
        return self.answers.get(path[len(_WELL_KNOWN):])

    def settings(self) -> dict[str, Any]:
        return {"type": "http-tokens"}


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    tokens: HttpTokens  # set on a per-server subclass
    server_version = "tlskit-acme"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.tokens.answer(self.path.split("?", 1)[0])
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # the CA's requests are not the user's business
        pass


class _DualStackHTTPServer(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        # Accept IPv4 as well (mapped addresses), like a web server listening on [::]:80.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def _http_server(address: str, port: int, handler: type) -> http.server.ThreadingHTTPServer:
    """Listen on ``address``, or on every IPv4 and IPv6 address when it is empty."""
    if not address and socket.has_dualstack_ipv6():
        return _DualStackHTTPServer(("::", port), handler)
    if ":" in address:
        return type("IPv6HTTPServer", (http.server.ThreadingHTTPServer,), {"address_family": socket.AF_INET6})(
            (address, port), handler)
    return http.server.ThreadingHTTPServer((address, port), handler)


@dataclass
class HttpStandalone:
    """A small HTTP server on ``port`` (80 by default) that answers http-01 while the order runs."""

    port: int = 80
    address: str = ""
    challenge_type: str = HTTP01
    _tokens: HttpTokens = field(default_factory=HttpTokens)
    _server: http.server.ThreadingHTTPServer | None = None

    def present(self, pending: list[Pending]) -> None:
        self._tokens.present(pending)
        if self._server is not None:
            return
        handler = type("Handler", (_TokenHandler,), {"tokens": self._tokens})
        try:
            self._server = _http_server(self.address, self.port, handler)
        except OSError as exc:
            raise _bind_error("http-01", self.address, self.port, exc) from None
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def cleanup(self, pending: list[Pending]) -> None:
        self._tokens.cleanup(pending)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def settings(self) -> dict[str, Any]:
        return {"type": "http-standalone", "port": self.port, "address": self.address}


@dataclass
class Webroot:
    """Write each answer under ``PATH/.well-known/acme-challenge/`` for a running web server; remove after."""

    path: Path
    challenge_type: str = HTTP01
    _created_dirs: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Checked before the CA is contacted: an order made for nothing still counts against rate limits.
        if not Path(self.path).is_dir():
            raise InputError(f"webroot {self.path} is not a directory", fix="give the directory your web server serves")

    def present(self, pending: list[Pending]) -> None:
        root = Path(self.path)
        target = root / ".well-known" / "acme-challenge"
        for directory in (root / ".well-known", target):
            if not directory.exists():
                try:
                    directory.mkdir(mode=0o755)
                except OSError as exc:
                    raise InputError(f"cannot create {directory}", exc.strerror, "check the webroot's permissions") from None
                self._created_dirs.append(directory)
        for item in pending:
            file = target / item.token
            try:
                file.write_text(item.key_authorization)
                # The web server usually runs as another user: the answer is public anyway.
                file.chmod(0o644)
            except OSError as exc:
                raise InputError(f"cannot write {file}", exc.strerror, "check the webroot's permissions") from None

    def cleanup(self, pending: list[Pending]) -> None:
        target = Path(self.path) / ".well-known" / "acme-challenge"
        for item in pending:
            try:
                (target / item.token).unlink()
            except OSError:
                pass
        for directory in reversed(self._created_dirs):
            try:
                directory.rmdir()
            except OSError:
                pass  # not empty: someone else keeps files there
        self._created_dirs.clear()

    def settings(self) -> dict[str, Any]:
        return {"type": "webroot", "path": str(Path(self.path).resolve())}


# --- dns-01 --------------------------------------------------------------------------------------


@dataclass
class DnsHook:
    """dns-01 through the user's command: ``CMD add`` then ``CMD remove``, once per record value.

    The command gets ``TLSKIT_DNS_RECORD`` (``_acme-challenge.example.com.``), ``TLSKIT_DNS_VALUE`` and
    ``TLSKIT_DNS_NAME`` (``example.com``) in its environment; it must return once the record is served.
    """

    command: str
    challenge_type: str = DNS01
    _added: list[Pending] = field(default_factory=list)

    def present(self, pending: list[Pending]) -> None:
        for item in pending:
            self._run("add", item)
            self._added.append(item)

    def cleanup(self, pending: list[Pending]) -> None:
        added, self._added = self._added, []
        for item in added:
            try:
                self._run("remove", item)
            except InputError:
                pass  # a stale TXT record is harmless; the certificate matters more

    def _run(self, action: str, item: Pending) -> None:
        env = {**os.environ, "TLSKIT_DNS_RECORD": item.dns_record, "TLSKIT_DNS_VALUE": item.dns_value,
               "TLSKIT_DNS_NAME": item.name, "TLSKIT_DNS_ACTION": action}
        try:
            done = subprocess.run(f"{self.command} {action}", shell=True, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=_HOOK_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise InputError(f"{option('dns_hook')} {action} for {item.dns_record} did not finish",
                             f"still running after {_HOOK_TIMEOUT} s", "make the hook return once the record is set") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            why = f"exit {done.returncode}" + (f": {detail[-1]}" if detail else "")
            raise InputError(f"{option('dns_hook')} {action} failed for {item.dns_record}", why,
                             f"run it by hand: TLSKIT_DNS_RECORD={item.dns_record} {shlex.quote(self.command)} {action}")

    def settings(self) -> dict[str, Any]:
        return {"type": "dns-hook", "command": self.command}


# --- tls-alpn-01 ---------------------------------------------------------------------------------


@dataclass
class TlsAlpnStandalone:
    """A TLS listener on ``port`` (443 by default) that speaks only ``acme-tls/1`` (RFC 8737).

    For each name it presents a self-signed certificate carrying the critical acmeIdentifier extension;
    the CA's validator picks it by SNI.
    """

    port: int = 443
    address: str = ""
    challenge_type: str = TLSALPN01
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict)
    _socket: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def present(self, pending: list[Pending]) -> None:
        with tempfile.TemporaryDirectory(prefix="tlskit-alpn-") as scratch:
            for item in pending:
                self._contexts[_sni_of(item.name)] = _alpn_context(item, Path(scratch))
        if self._socket is not None:
            return
        default = _server_context()
        default.sni_callback = self._pick_context
        try:
            if not self.address and socket.has_dualstack_ipv6():
                # All interfaces means IPv6 too: CAs prefer a name's AAAA record when it has one.
                sock = socket.create_server(("::", self.port), family=socket.AF_INET6, dualstack_ipv6=True)
            else:
                family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
                sock = socket.create_server((self.address, self.port), family=family)
        except OSError as exc:
            raise _bind_error("tls-alpn-01", self.address, self.port, exc) from None
        sock.settimeout(0.05)
        self._socket = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, args=(sock, default), daemon=True)
        self._thread.start()

    def _pick_context(self, connection: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
        context = self._contexts.get((server_name or "").lower())
        if context is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        connection.context = context
        return None

    def _serve(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=_handshake_once, args=(conn, context), daemon=True).start()

    def cleanup(self, pending: list[Pending]) -> None:
        for item in pending:
            self._contexts.pop(_sni_of(item.name), None)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def settings(self) -> dict[str, Any]:
        return {"type": "tls-alpn-standalone", "port": self.port, "address": self.address}


def _sni_of(name: str) -> str:
    """The SNI a validator sends for an identifier: the name, or for an IP address its reverse-DNS
    name (``10.2.0.192.in-addr.arpa``, RFC 8738 section 6), since SNI carries no IP literals."""
    import ipaddress

    try:
        return ipaddress.ip_address(name).reverse_pointer
    except ValueError:
        return name.lower()


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 section 4
    context.set_alpn_protocols([_ALPN_PROTOCOL])
    return context


def _alpn_context(item: Pending, scratch: Path) -> ssl.SSLContext:
    """An SSLContext holding the RFC 8737 validation certificate for one name."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tlskit.acme.identifiers import general_names

    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(item.key_authorization.encode()).digest()
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "tlskit acme tls-alpn-01")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        # The only name the validator accepts: exactly the identifier being validated.
        .add_extension(x509.SubjectAlternativeName(general_names([item.name])), critical=False)
        # DER OCTET STRING (0x04, length 32) wrapping SHA-256 of the key authorization; critical by RFC 8737.
        .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(_ACME_IDENTIFIER_OID),
                                                  b"\x04\x20" + digest), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = scratch / f"{item.token}.pem", scratch / f"{item.token}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = _server_context()
    context.load_cert_chain(cert_path, key_path)
    return context


def _handshake_once(conn: socket.socket, context: ssl.SSLContext) -> None:
    conn.settimeout(10)
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            # The validator only needs the handshake; it closes right after.
            try:
                tls.recv(1)
            except (OSError, ssl.SSLError):
                pass
    except (OSError, ssl.SSLError):
        conn.close()


def _bind_error(kind: str, address: str, port: int, exc: OSError) -> BindError:
    where = f"{address or '*'}:{port}"
    if exc.errno == errno.EACCES:
        return BindError(f"cannot listen on {where} for {kind}", "permission denied",
                         "run as root, or answer on a port above 1023 that the CA reaches")
    return BindError(f"cannot listen on {where} for {kind}", exc.strerror or str(exc),
                     "stop what uses the port, or answer the challenge on another port")


def solver_from_settings(settings: dict[str, Any]) -> Solver:
    """Rebuild the solver a certificate was issued with (for renewal) from its saved settings."""
    kind = settings.get("type")
    if kind == "http-standalone":
        return HttpStandalone(int(settings.get("port", 80)), settings.get("address", ""))
    if kind == "webroot":
        return Webroot(Path(settings["path"]))
    if kind == "dns-hook":
        return DnsHook(settings["command"])
    if kind == "tls-alpn-standalone":
        return TlsAlpnStandalone(int(settings.get("port", 443)), settings.get("address", ""))
    raise InputError(f"unknown challenge settings {kind!r} in renewal.json",
                     fix="issue the certificate again with tlskit acme issue --force")


__all__ = ["Pending", "Solver", "HttpTokens", "HttpStandalone", "Webroot", "DnsHook", "TlsAlpnStandalone",
           "solver_from_settings", "HTTP01", "DNS01", "TLSALPN01"]
