"""Issuing certificates: self-signed ones, and a local CA that signs CSRs keeping their SANs.

All certificates come out of one builder, :func:`_certificate`, so every extension and the reason it
is there can be read in one place. :func:`write_self_signed`, :func:`write_self_signed_from_csr` and
:func:`sign_csr_file` do a whole `tlskit selfsign` or `tlskit ca sign`: key, certificate and files.

Example::

    ca = LocalCA.create(Path("ca"), {"CN": "My dev CA"})
    cert = ca.sign_csr(csr, days=90)
"""

from __future__ import annotations

import datetime as dt
import secrets
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tlskit.certificates import is_self_issued, to_pem
from tlskit.constraints import NameConstraintsSpec
from tlskit.csr import check_csr, csr_sans, default_file_stem, effective_sans, load_csr
from tlskit.errors import InputError, option
from tlskit.files import Output, check_writable, load_certificates, write_outputs
from tlskit.keys import (DEFAULT_KEY_TYPE, KeySource, KeySpec, generate_key, key_matches_certificate, load_private_key,
                         prepare_key, private_key_pem, signing_hash)
from tlskit.names import Subject, subject_to_name

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

    from tlskit.keys import SlowWork

# CA/Browser Forum limit for publicly trusted TLS certificates (since 2020-09-01).
PUBLIC_TLS_MAX_DAYS = 398
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
# A minute of back-dating absorbs clock skew between the machine that issues and the one that checks.
_BACKDATE = dt.timedelta(minutes=1)
# X.509 times end with GeneralizedTime's four-digit year.
_LAST_DATE = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc)


@dataclass
class Issued:
    certificate: x509.Certificate
    warnings: list[str] = field(default_factory=list)


def _certificate(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: PublicKeyTypes,
    signing_key: PrivateKeyTypes,
    days: int,
    is_ca: bool,
    sans: list[x509.GeneralName],
    issuer_public_key: PublicKeyTypes,
    path_length: int | None = None,
    not_before: dt.datetime | None = None,
    hours: int | None = None,
    name_constraints: NameConstraintsSpec | None = None,
    client_only: bool = False,
) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID

    start = (not_before or dt.datetime.now(dt.timezone.utc)) - _BACKDATE
    end = _not_after(start, days, hours)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        # 159 random bits: positive, unpredictable, within RFC 5280's 20 octets.
        .serial_number(secrets.randbits(159) | 1 << 158)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length if is_ca else None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,  # OCSP responses and CRLs signed by the CA itself
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        if name_constraints:
            # Critical, as RFC 5280 requires: a verifier that cannot honour the constraints must refuse
            # the CA rather than trust it for every name.
            builder = builder.add_extension(name_constraints.extension(), critical=True)
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                # RSA key exchange (TLS 1.2 non-ECDHE suites) encrypts to the server's key; EC keys never
                # do, and a client only ever signs the handshake.
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey) and not client_only,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        ).add_extension(
            # A client certificate is clientAuth only: a stolen one cannot pose as a server.
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH] if client_only
                                  else [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signing_key, signing_hash(signing_key))


def _not_after(start: dt.datetime, days: int, hours: int | None) -> dt.datetime:
    """The end of a validity of ``days`` (or ``hours``, when given) from ``start``, checked."""
    name, count = ("hours", hours) if hours is not None else ("days", days)
    if count < 1:
        raise InputError(f"{option(name)} {count} is not a positive number", fix="give at least 1")
    try:
        end = start + (dt.timedelta(hours=count) if hours is not None else dt.timedelta(days=count))
    except OverflowError:
        end = None
    if end is None or end > _LAST_DATE:
        raise InputError(f"{option(name)} {count} ends after the year 9999", "X.509 dates have four-digit years",
                         "give a shorter validity (3650 days is ten years)")
    return end


def self_signed_certificate(key: PrivateKeyTypes, subject: Subject, sans: list[x509.GeneralName],
                            days: int = 365) -> Issued:
    """A self-signed server certificate; the CN becomes a SAN when no SAN is given."""
    name = subject_to_name(subject)
    names = effective_sans(subject, sans)
    cert = _certificate(
        subject=name, issuer=name, public_key=key.public_key(), signing_key=key, days=days,
        is_ca=False, sans=names, issuer_public_key=key.public_key(),
    )
    return Issued(cert, _validity_warnings(days) + _san_warnings(names))


def self_signed_certificate_from_csr(key: PrivateKeyTypes, csr: x509.CertificateSigningRequest,
                                     days: int = 365) -> Issued:
    from tlskit.keys import public_key_der

    check_csr(csr)
    if public_key_der(csr.public_key()) != public_key_der(key.public_key()):
        raise InputError("the key does not match the CSR", fix=f"pass the key the CSR was made with ({option('key')})")
    names = csr_sans(csr)
    cert = _certificate(
        subject=csr.subject, issuer=csr.subject, public_key=key.public_key(), signing_key=key, days=days,
        is_ca=False, sans=names, issuer_public_key=key.public_key(),
    )
    return Issued(cert, _validity_warnings(days) + _san_warnings(names))


def _validity_warnings(days: int) -> list[str]:
    if days > PUBLIC_TLS_MAX_DAYS:
        return [f"validity of {days} days exceeds the {PUBLIC_TLS_MAX_DAYS} days browsers accept for public TLS "
                "(fine for a private CA whose clients you control)"]
    return []


def _san_warnings(sans: list[x509.GeneralName]) -> list[str]:
    if not sans:
        return ["no subject alternative name: browsers and most TLS clients will reject this certificate "
                f"(give {option('san')} or a host name as CN)"]
    return []


@dataclass
class LocalCA:
    """A CA kept in a directory: ``ca.pem`` and ``ca.key`` (0600), and optionally ``chain.pem``.

    An intermediate CA keeps its issuers in ``chain.pem``, so what it signs can be served as a full chain.
    """

    directory: Path
    certificate: x509.Certificate
    key: PrivateKeyTypes
    chain: list[x509.Certificate] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        directory: Path,
        subject: Subject,
        key_spec: KeySpec | None = None,
        days: int = 3650,
        parent: LocalCA | None = None,
        passphrase: bytes | None = None,
        force: bool = False,
        path_length: int | None = None,
        name_constraints: NameConstraintsSpec | None = None,
    ) -> LocalCA:
        """Make a root CA in ``directory``, or an intermediate signed by ``parent``; with
        ``name_constraints`` it may only sign the names they permit."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the CA directory {directory}", exc.strerror or str(exc),
                             f"choose a {option('dir')} you can write to") from None
        targets = [directory / CA_CERT_FILE, directory / CA_KEY_FILE] + ([directory / "chain.pem"] if parent else [])
        check_writable(targets, force)
        key = generate_key(key_spec or KeySpec.parse(DEFAULT_KEY_TYPE))
        name = subject_to_name(subject)
        if parent is None:
            cert = _certificate(subject=name, issuer=name, public_key=key.public_key(), signing_key=key, days=days,
                                is_ca=True, sans=[], issuer_public_key=key.public_key(), path_length=path_length,
                                name_constraints=name_constraints)
            chain: list[x509.Certificate] = []
        else:
            parent._check_can_sign_ca()
            cert = _certificate(subject=name, issuer=parent.certificate.subject, public_key=key.public_key(),
                                signing_key=parent.key, days=days, is_ca=True, sans=[],
                                issuer_public_key=parent.certificate.public_key(),
                                path_length=path_length if path_length is not None else parent._child_path_length(),
                                name_constraints=name_constraints)
            chain = [parent.certificate, *parent.chain]
        outputs = [Output.of(directory / CA_KEY_FILE, private_key_pem(key, passphrase), secret=True),
                   Output.of(directory / CA_CERT_FILE, to_pem(cert))]
        if parent is not None:
            outputs.append(Output.of(directory / "chain.pem", to_pem(*chain)))
        write_outputs(outputs, force)
        return cls(directory, cert, key, chain)

    @classmethod
    def load(cls, directory: Path, passphrase: bytes | None = None) -> LocalCA:
        cert_path, key_path = directory / CA_CERT_FILE, directory / CA_KEY_FILE
        if not cert_path.exists() or not key_path.exists():
            raise InputError(f"{directory} is not a tlskit CA directory", f"{CA_CERT_FILE} or {CA_KEY_FILE} is missing",
                             f"create one with: tlskit ca init --dir {directory} --cn 'My CA'")
        cert = load_certificates(cert_path)[0]
        key = load_private_key(key_path, passphrase)
        if not key_matches_certificate(key, cert):
            raise InputError(f"{key_path} does not belong to {cert_path}", fix="restore the CA's own key")
        chain_path = directory / "chain.pem"
        chain = load_certificates(chain_path) if chain_path.exists() else []
        return cls(directory, cert, key, chain)

    def sign_csr(self, csr: x509.CertificateSigningRequest, days: int = 90, hours: int | None = None) -> Issued:
        """Sign a CSR as a server/client certificate, keeping its subject and SANs, valid ``days`` (or
        ``hours``: short-lived certificates that need no revocation).

        Unlike `openssl x509 -req`, which drops every extension of the request, the SANs are kept:
        without them the certificate would be useless to browsers. Names outside this CA's name
        constraints (or its issuers') are refused, since every verifier would refuse the certificate.
        """
        check_csr(csr)
        names = csr_sans(csr)
        if not names:
            from tlskit.names import common_name

            cn = common_name(csr.subject)
            names = effective_sans({"CN": cn} if cn else {}, [])
        self._check_name_constraints(csr, names)
        cert = _certificate(
            subject=csr.subject, issuer=self.certificate.subject, public_key=csr.public_key(),
            signing_key=self.key, days=days, is_ca=False, sans=names,
            issuer_public_key=self.certificate.public_key(), hours=hours,
        )
        warnings = (_validity_warnings(days) if hours is None else []) + _san_warnings(names) + self._outlives(cert)
        return Issued(cert, warnings)

    def sign_client_csr(self, csr: x509.CertificateSigningRequest, days: int = 365,
                        hours: int | None = None) -> Issued:
        """Sign a CSR as a client certificate (mutual TLS): clientAuth only, the CSR's subject, whose CN
        names the user, and only its e-mail and URI SANs.

        Host names and addresses are dropped (with a warning): a client certificate identifies a person
        or a service, not a host, and `tlskit serve` finds the user by the CN alone.
        """
        from cryptography import x509

        from tlskit.names import common_name

        check_csr(csr)
        if not common_name(csr.subject):
            raise InputError("the CSR has no CN", "a client certificate names its user by its CN",
                             "make the request with the user's name as CN (tlskit csr --cn alice)")
        kept, dropped = [], []
        for name in csr_sans(csr):
            (kept if isinstance(name, (x509.RFC822Name, x509.UniformResourceIdentifier)) else dropped).append(name)
        self._check_names(_client_names(csr.subject, kept))
        cert = _certificate(
            subject=csr.subject, issuer=self.certificate.subject, public_key=csr.public_key(),
            signing_key=self.key, days=days, is_ca=False, sans=kept,
            issuer_public_key=self.certificate.public_key(), hours=hours, client_only=True,
        )
        warnings = []
        if dropped:
            from tlskit.names import san_to_text

            warnings.append("left out of the client certificate (only e-mail and URI names are kept): "
                            + ", ".join(san_to_text(name) for name in dropped))
        warnings += self._outlives(cert)
        return Issued(cert, warnings)

    def _outlives(self, cert: x509.Certificate) -> list[str]:
        if cert.not_valid_after_utc > self.certificate.not_valid_after_utc:
            return ["the certificate outlives its CA; it stops verifying when the CA expires on "
                    f"{self.certificate.not_valid_after_utc:%Y-%m-%d}"]
        return []

    def issue(self, subject: Subject, sans: list[x509.GeneralName], key: PrivateKeyTypes, days: int = 90) -> Issued:
        """Issue for a key we hold (no CSR round trip): used for the server's own localhost cert."""
        from tlskit.csr import build_csr

        return self.sign_csr(build_csr(key, subject, sans), days)

    @property
    def chain_to_send(self) -> list[x509.Certificate]:
        """What a server sends after a certificate this CA signed: this CA and the CAs above it, the
        root left out (clients have it, and sending it only costs bytes). Empty for a root CA."""
        if not self.chain:
            return []
        return [self.certificate, *(self.chain[:-1] if is_self_issued(self.chain[-1]) else self.chain)]

    @property
    def name_constraints(self) -> NameConstraintsSpec | None:
        return NameConstraintsSpec.of(self.certificate)

    def _check_name_constraints(self, csr: x509.CertificateSigningRequest, names: list[x509.GeneralName]) -> None:
        from tlskit.names import common_name, san_from_common_name

        checked = list(names)
        # OpenSSL also checks a host-name-shaped CN against DNS constraints when it is not a SAN.
        cn_name = san_from_common_name(common_name(csr.subject))
        if cn_name is not None and cn_name not in checked:
            checked.append(cn_name)
        self._check_names(checked)

    def _check_names(self, checked: list[x509.GeneralName]) -> None:
        for ca in (self.certificate, *self.chain):
            spec = NameConstraintsSpec.of(ca)
            if spec:
                spec.check(checked, "this CA" if ca is self.certificate else "an issuer of this CA")

    def _check_can_sign_ca(self) -> None:
        from cryptography import x509

        constraints = self.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.path_length == 0:
            raise InputError("cannot create an intermediate under this CA", "its path length is 0",
                             "sign with its parent instead")

    def _child_path_length(self) -> int | None:
        from cryptography import x509

        constraints = self.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        return None if constraints.path_length is None else constraints.path_length - 1


def _client_names(subject: x509.Name, sans: list[x509.GeneralName]) -> list[x509.GeneralName]:
    """The names a verifier checks against name constraints in a client certificate: its SANs, and its
    CN when that has a dot (OpenSSL checks a CN as a host name only then, and only without DNS SANs)."""
    from cryptography import x509

    from tlskit.names import common_name

    cn = common_name(subject) or ""
    checked = list(sans)
    if "." in cn.strip("."):
        try:
            from tlskit.names import dns_name

            checked.append(x509.DNSName(dns_name(cn)))
        except InputError:
            pass    # not host-name-shaped: OpenSSL skips it too
    return checked


# --- workflows: key, certificate and files, as the CLI commands do them --------------------------------


@dataclass
class CertificateFile:
    """A certificate written to ``path``, followed in the same file by ``chain`` (a fullchain), and the
    new key written with it, if any."""

    issued: Issued
    path: Path
    chain: list[x509.Certificate] = field(default_factory=list)
    key_path: Path | None = None


def write_self_signed(
    subject: Subject,
    sans: list[x509.GeneralName],
    key: KeySource,
    *,
    days: int = 365,
    passphrase: bytes | None = None,
    out: Path | None = None,
    key_out: Path | None = None,
    force: bool = False,
    slow_work: SlowWork = nullcontext,
) -> CertificateFile:
    """Make a self-signed certificate (and its key, unless ``key`` names a file) and write them: what
    `tlskit selfsign` does. The certificate goes to ``out`` (default ``<CN>.pem``); the key as
    :func:`tlskit.keys.prepare_key` says."""
    cert_path = out or Path(f"{default_file_stem(subject)}.pem")
    private_key, key_file = prepare_key(cert_path, key, passphrase=passphrase, key_out=key_out, force=force,
                                        slow_work=slow_work)
    issued = self_signed_certificate(private_key, subject, sans, days)
    cert_file = Output.of(cert_path, to_pem(issued.certificate))
    write_outputs([key_file, cert_file] if key_file else [cert_file], force)
    return CertificateFile(issued, cert_path, key_path=key_file.path if key_file else None)


def write_self_signed_from_csr(
    csr_path: Path,
    key: KeySource,
    *,
    days: int = 365,
    passphrase: bytes | None = None,
    out: Path | None = None,
    force: bool = False,
) -> CertificateFile:
    """Certify a CSR's subject and SANs with the CSR's own key (``key.path``, decrypted with
    ``passphrase``) and write the certificate to ``out`` (default: the CSR's name with ``.pem``)."""
    request, cert_path = _request_and_target(csr_path, out, force)
    private_key, _ = key.resolve(passphrase)
    issued = self_signed_certificate_from_csr(private_key, request, days)
    write_outputs([Output.of(cert_path, to_pem(issued.certificate))], force)
    return CertificateFile(issued, cert_path)


def sign_csr_file(
    ca_dir: Path,
    csr_path: Path,
    *,
    days: int = 90,
    hours: int | None = None,
    passphrase: bytes | None = None,
    out: Path | None = None,
    fullchain: bool = False,
    force: bool = False,
    client: bool = False,
) -> CertificateFile:
    """Sign the CSR in ``csr_path`` with the CA in ``ca_dir`` (its key decrypted with ``passphrase``) and
    write the certificate to ``out`` (default: the CSR's name with ``.pem``), followed by the CA's
    :attr:`LocalCA.chain_to_send` when ``fullchain``: what `tlskit ca sign` does; with ``client``, a
    client certificate (:meth:`LocalCA.sign_client_csr`)."""
    request, cert_path = _request_and_target(csr_path, out, force)
    ca = LocalCA.load(ca_dir, passphrase)
    issued = ca.sign_client_csr(request, days, hours) if client else ca.sign_csr(request, days, hours)
    chain = ca.chain_to_send if fullchain else []
    write_outputs([Output.of(cert_path, to_pem(issued.certificate, *chain))], force)
    return CertificateFile(issued, cert_path, chain)


def _request_and_target(csr_path: Path, out: Path | None, force: bool) -> tuple[x509.CertificateSigningRequest, Path]:
    """The CSR to certify and the file for its certificate (default: the CSR's name with ``.pem``),
    refused before any key is loaded when it exists."""
    request = load_csr(csr_path)
    cert_path = out or csr_path.with_suffix(".pem")
    check_writable([cert_path], force)
    return request, cert_path
