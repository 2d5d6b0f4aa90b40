"""Certificates for the verdict rules, built with cryptography's builder, and the peers that judge them too.

:class:`Pki` issues CAs and leaves with every extension visible and overridable, so each test makes
exactly the fault it is about. :func:`resign` and :func:`resign_crl` edit a signed TBS (a serial of 0,
a duplicated extension, GeneralizedTime before 2050, a version 1 certificate: what the builder refuses
to write) and sign it again. :func:`openssl_verify` runs
`openssl verify -x509_strict` on the same files; :func:`ocsp_responder` serves `openssl ocsp`'s answers
(the openssl binary builds and signs them from an index file) over HTTP on 127.0.0.1; :func:`make_crl` a CRL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import free_port, openssl, require_binary

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
DAY = dt.timedelta(days=1)
SERVER_AUTH, CLIENT_AUTH = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
DEFAULT = object()  # "the usual extension"; None leaves it out


@dataclass
class Issued:
    cert: x509.Certificate
    key: object
    path: Path

    @property
    def subject(self) -> str:
        from tlskit.names import name_to_slash

        return name_to_slash(self.cert.subject)


def name(cn: str, **more: str) -> x509.Name:
    attributes = [x509.NameAttribute(getattr(NameOID, k), v) for k, v in more.items()]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Pki:
    """Issues certificates into ``directory``; each is written as ``<file>.pem`` with its key next to it."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)

    def issue(self, file: str, subject: x509.Name | str, issuer: Issued | None, *, ca: bool, key=None,
              sans: list[x509.GeneralName] | None | object = DEFAULT, eku=DEFAULT, key_usage=DEFAULT,
              basic_constraints=DEFAULT, aki=True, ski=True, serial: int | None = None,
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
              extensions: list[tuple[x509.ExtensionType, bool]] = (), hash_algorithm=DEFAULT,
              path_length: int | None = None, issuer_name: x509.Name | None = None) -> Issued:
        subject = name(subject) if isinstance(subject, str) else subject
        key = key or ec.generate_private_key(ec.SECP256R1())
        signer_key = issuer.key if issuer else key
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(issuer_name or (issuer.cert.subject if issuer else subject))
                   .public_key(key.public_key())
                   .serial_number(serial or x509.random_serial_number())
                   .not_valid_before(not_before or NOW - DAY)
                   .not_valid_after(not_after or NOW + 30 * DAY))
        if basic_constraints is DEFAULT:
            builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
                                            critical=True)
        elif basic_constraints is not None:
            builder = builder.add_extension(*basic_constraints)
        if key_usage is DEFAULT:
            builder = builder.add_extension(_key_usage(ca), critical=True)
        elif key_usage is not None:
            builder = builder.add_extension(key_usage, critical=True)
        if ski:
            builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        if aki and issuer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
        if not ca:
            if sans is DEFAULT:
                sans = [x509.DNSName(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)]
            if eku is DEFAULT:
                eku = (x509.ExtendedKeyUsage([SERVER_AUTH]), False)
        if sans not in (None, DEFAULT):
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if eku not in (None, DEFAULT):
            builder = builder.add_extension(*eku)
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        algorithm = hashes.SHA256() if hash_algorithm is DEFAULT else hash_algorithm
        cert = builder.sign(signer_key, algorithm)
        return self.write(file, cert, key)

    def write(self, file: str, cert: x509.Certificate, key) -> Issued:
        path = self.dir / f"{file}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (self.dir / f"{file}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return Issued(cert, key, path)

    def bundle(self, file: str, *parts: Issued) -> Path:
        path = self.dir / f"{file}.pem"
        path.write_bytes(b"".join(p.path.read_bytes() for p in parts))
        return path

    def root(self, cn: str = "Verdict Root", **kwargs) -> Issued:
        return self.issue(cn.replace(" ", "-").lower(), cn, None, ca=True, **kwargs)

    def chain(self, prefix: str = "", **leaf_kwargs) -> tuple[Issued, Issued, Issued]:
        """root -> intermediate -> leaf (www.example.test), all well-formed unless ``leaf_kwargs`` say otherwise."""
        root = self.issue(f"{prefix}root", f"{prefix}Verdict Root", None, ca=True)
        inter = self.issue(f"{prefix}int", f"{prefix}Verdict Intermediate", root, ca=True)
        leaf = self.issue(f"{prefix}leaf", leaf_kwargs.pop("cn", "www.example.test"), inter, ca=False, **leaf_kwargs)
        return root, inter, leaf


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=not ca, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


# ---------------------------------------------------------------------------------- DER editing


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(value)) + value


def _elements(data: bytes) -> list[bytes]:
    """The encoded elements (tag+length+value) inside a constructed value."""
    from tlskit.verdict.der import _children

    return [data[start:end] for _, start, _, end in _children(data, 0, len(data))]


def resign(cert: x509.Certificate, signer_key, *, serial_bytes: bytes | None = None, signature: bytes | None = None,
           validity: bytes | None = None, extra_extensions: list[bytes] = (),
           version_1: bool = False) -> x509.Certificate:
    """``cert`` with DER the builder refuses to write, signed again by ``signer_key`` (an EC key).

    ``serial_bytes`` replaces the serial INTEGER's content; ``signature`` (an AlgorithmIdentifier) and
    ``validity`` (a Validity) replace those TBS fields whole; ``extra_extensions``
    (each an Extension) are appended to the extensions; ``version_1`` drops the version and the
    extensions, as a version 1 certificate has neither. The outer signatureAlgorithm stays as it was.
    """
    from tlskit.verdict.der import _read

    tbs = cert.tbs_certificate_bytes
    _, start, end = _read(tbs, 0)
    fields = _elements(tbs[start:end])
    at = 1 if fields[0][0] == 0xA0 else 0  # fields[at:] are serial, signature, issuer, validity, subject, spki
    for offset, replacement in ((0, _tlv(0x02, serial_bytes) if serial_bytes is not None else None), (1, signature),
                                (3, validity)):
        if replacement is not None:
            fields[at + offset] = replacement
    if extra_extensions:
        fields[-1] = _more_extensions(fields[-1], 0xA3, extra_extensions)
    if version_1:
        fields = fields[at:at + 6]
    from tlskit.certificates import quiet_parsing

    with quiet_parsing():  # a serial of 0 is what the caller asked for
        return x509.load_der_x509_certificate(_signed_again(cert.public_bytes(serialization.Encoding.DER), fields,
                                                            signer_key))


def resign_crl(crl: x509.CertificateRevocationList, signer_key,
               extra_extensions: list[bytes]) -> x509.CertificateRevocationList:
    """``crl`` with ``extra_extensions`` (each an Extension) appended to its crlExtensions, signed again."""
    from tlskit.verdict.der import _read

    tbs = crl.tbs_certlist_bytes
    _, start, end = _read(tbs, 0)
    fields = _elements(tbs[start:end])
    fields[-1] = _more_extensions(fields[-1], 0xA0, extra_extensions)
    return x509.load_der_x509_crl(_signed_again(crl.public_bytes(serialization.Encoding.DER), fields, signer_key))


def _more_extensions(explicit: bytes, tag: int, extra: list[bytes]) -> bytes:
    """The EXPLICIT-tagged Extensions ``explicit`` with ``extra`` appended."""
    from tlskit.verdict.der import _read

    _, inner_start, _ = _read(explicit, 0)
    _, list_start, list_end = _read(explicit, inner_start)
    return _tlv(tag, _tlv(0x30, explicit[list_start:list_end] + b"".join(extra)))


def _signed_again(der: bytes, tbs_fields: list[bytes], signer_key) -> bytes:
    """A certificate or CRL of ``tbs_fields``, with ``der``'s outer signatureAlgorithm, signed (ECDSA SHA-256)."""
    from tlskit.verdict.der import _read

    tbs = _tlv(0x30, b"".join(tbs_fields))
    _, outer_start, outer_end = _read(der, 0)
    algorithm = _elements(der[outer_start:outer_end])[1]
    return _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + signer_key.sign(tbs, ec.ECDSA(hashes.SHA256()))))


def der_extension(oid: str, value: bytes, critical: bool = False) -> bytes:
    """One DER Extension (what the builder will not write twice, or with contents of our choosing)."""
    body = der_oid(oid) + (_tlv(0x01, b"\xff") if critical else b"") + _tlv(0x04, value)
    return _tlv(0x30, body)


def der_sequence(*elements: bytes) -> bytes:
    return _tlv(0x30, b"".join(elements))


def der_oid(oid: str) -> bytes:
    parts = [int(p) for p in oid.split(".")]
    body = bytes([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, body)


def der_time(when: dt.datetime, generalized: bool) -> bytes:
    """``when`` as UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ)."""
    return _tlv(0x18, when.strftime("%Y%m%d%H%M%SZ").encode()) if generalized else _tlv(
        0x17, when.strftime("%y%m%d%H%M%SZ").encode())


def der_validity(cert: x509.Certificate, *, generalized_before: bool = False, generalized_after: bool = False) -> bytes:
    """``cert``'s Validity with either time encoded as GeneralizedTime."""
    return _tlv(0x30, der_time(cert.not_valid_before_utc, generalized_before)
                + der_time(cert.not_valid_after_utc, generalized_after))


# ---------------------------------------------------------------------------------- openssl verify


def openssl_verify(leaf: Issued | Path, *, trusted: list[Path], untrusted: list[Path] = (), extra: tuple = (),
                   tmp: Path | None = None) -> tuple[int, str]:
    """(first error number or 0, output) of `openssl verify -x509_strict` on the same files."""
    leaf_path = leaf.path if isinstance(leaf, Issued) else leaf
    work = tmp or leaf_path.parent
    ca_file = work / "openssl-ca.pem"
    ca_file.write_bytes(b"".join(p.read_bytes() for p in trusted))
    args = ["verify", "-x509_strict", "-CAfile", str(ca_file), *extra]
    if untrusted:
        pool = work / "openssl-untrusted.pem"
        pool.write_bytes(b"".join(p.read_bytes() for p in untrusted))
        args += ["-untrusted", str(pool)]
    result = openssl(*args, str(leaf_path), check=False)
    text = (result.stdout + result.stderr).decode(errors="replace")
    match = re.search(r"error (\d+) at", text)
    return (int(match.group(1)) if match else (0 if result.returncode == 0 else -1)), text


# ---------------------------------------------------------------------------------- HTTP peers


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, object] = {}

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def _answer(self, body: bytes | None) -> None:
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_response(404)
            self.end_headers()
            return
        data, content_type = route(body) if callable(route) else route
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer(None)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))


@contextlib.contextmanager
def http_peer(routes: dict[str, object], port: int | None = None) -> Iterator[str]:
    """Serve ``routes`` (path -> (bytes, content type) or a callable body -> that) on 127.0.0.1; yields the base URL."""
    from peers_chain import serve_http

    with serve_http(type("Handler", (_Handler,), {"routes": routes}), port) as url:
        yield url


def openssl_index(directory: Path, entries: list[tuple[Issued, str]]) -> Path:
    """An `openssl ca` index file: each (certificate, "V" valid or "R" revoked)."""
    lines = []
    for issued, state in entries:
        cert = issued.cert
        expiry = cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
        revoked = (NOW - DAY).strftime("%y%m%d%H%M%SZ") + ",keyCompromise" if state == "R" else ""
        serial = format(cert.serial_number, "X")
        serial = serial if len(serial) % 2 == 0 else "0" + serial
        lines.append(f"{state}\t{expiry}\t{revoked}\t{serial}\tunknown\t{issued.subject}")
    path = directory / "index.txt"
    path.write_text("\n".join(lines) + "\n")
    (directory / "index.txt.attr").write_text("unique_subject = no\n")
    return path


def openssl_ocsp_answer(directory: Path, index: Path, ca: Issued, signer: Issued):
    """A route that hands each OCSP request to `openssl ocsp` (file mode) and returns what it signs."""
    binary = require_binary("openssl")
    lock = threading.Lock()

    def answer(body: bytes) -> tuple[bytes, str]:
        with lock:
            request, response = directory / "req.der", directory / "resp.der"
            request.write_bytes(body)
            subprocess.run([binary, "ocsp", "-index", str(index), "-CA", str(ca.path), "-rsigner", str(signer.path),
                            "-rkey", str(signer.path.with_suffix(".key")), "-reqin", str(request), "-respout",
                            str(response), "-ndays", "1"], check=True, capture_output=True, timeout=30)
            return response.read_bytes(), "application/ocsp-response"

    return answer


@contextlib.contextmanager
def ocsp_responder(directory: Path, entries: list[tuple[Issued, str]], ca: Issued, signer: Issued | None = None,
                   port: int | None = None) -> Iterator[str]:
    """An OCSP responder on 127.0.0.1 whose every answer `openssl ocsp` makes (it echoes nonces); yields its URL.

    ``entries`` are the index file's (certificate, "V"/"R"); ``signer`` defaults to ``ca`` itself. The
    HTTP side is Python's because `openssl ocsp -port` listens on every interface.
    """
    index = openssl_index(directory, entries)
    with http_peer({"/": openssl_ocsp_answer(directory, index, ca, signer or ca)}, port) as base:
        yield base


def make_crl(pki: Pki, file: str, issuer: Issued, revoked: list[Issued] = (), *, last_update: dt.datetime | None = None,
             next_update: dt.datetime | None = None, signer_key=None, der: bool = False,
             extensions: list[tuple[x509.ExtensionType, bool]] = (),
             entry_extensions: list[tuple[x509.ExtensionType, bool]] = ()) -> Path:
    """A CRL of ``issuer`` listing ``revoked`` (revoked a day ago, keyCompromise), signed by ``signer_key``.

    ``extensions`` are added to the CRL's own (after its number and AKI), ``entry_extensions`` to every entry.
    """
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(issuer.cert.subject)
               .last_update(last_update or NOW - DAY)
               .next_update(next_update or NOW + 7 * DAY)
               .add_extension(x509.CRLNumber(1), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                              critical=False))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    for issued in revoked:
        entry = (x509.RevokedCertificateBuilder().serial_number(issued.cert.serial_number).revocation_date(NOW - DAY)
                 .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False))
        for extension, critical in entry_extensions:
            entry = entry.add_extension(extension, critical=critical)
        builder = builder.add_revoked_certificate(entry.build())
    crl = builder.sign(signer_key or issuer.key, hashes.SHA256())
    path = pki.dir / f"{file}.{'der' if der else 'pem'}"
    path.write_bytes(crl.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM))
    return path
