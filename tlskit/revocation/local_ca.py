"""The local CA's side of revocation: revoking what it issued and publishing its CRL (checking them is
:mod:`tlskit.revocation.crl`'s job).

What the CA revoked is recorded in ``CA_DIR/revoked.json``, with the number of the last CRL issued. Each
change holds an exclusive lock on ``CA_DIR/.revocation.lock`` for its read-modify-write and lands by an
atomic rename (:func:`tlskit.files.write_outputs`), so two `tlskit ca revoke` at once both count and a
crash leaves the old record or the new one, never half of one.

Revoking a certificate already revoked changes nothing and says so (:attr:`Revocation.already`): the
first date and reason stand, as a CRL must not move a revocation in time. A revocation takes effect for
servers only once a new CRL is published (`tlskit ca crl`) and they read it (`serve --crl` reloads it
within seconds).

Example::

    revoke(Path("ca"), load_certificates("alice.pem")[0], "keyCompromise")
    crl = publish_crl(Path("ca"), Path("ca.crl"), days=7)
"""

from __future__ import annotations

import datetime as dt
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tlskit.errors import InputError, option

if TYPE_CHECKING:
    from collections.abc import Iterator

    from cryptography import x509

RECORD_FILE = "revoked.json"
LOCK_FILE = ".revocation.lock"
DEFAULT_CRL_DAYS = 7
# RFC 5280 5.3.1's codes, by the names OpenSSL's `-crl_reason` takes. certificateHold is left out: a hold
# is undone later (removeFromCRL), and this CA's revocations are for good. "unspecified" is recorded but
# carries no reason code in the CRL, as RFC 5280 asks.
REASONS = ("unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
           "cessationOfOperation", "privilegeWithdrawn")


@dataclass(frozen=True)
class Revocation:
    """One revoked certificate as recorded; ``already`` is True when it had been revoked before."""

    serial: str               # lower-case hex, as `tlskit inspect` prints it
    revoked_at: str           # ISO 8601, UTC
    reason: str
    subject: str
    not_after: str
    fingerprint_sha256: str
    already: bool = False

    def record(self) -> dict:
        data = asdict(self)
        del data["already"]
        return data


@dataclass(frozen=True)
class PublishedCrl:
    crl: x509.CertificateRevocationList
    path: Path
    number: int
    revoked: int


def parse_reason(text: str | None) -> str:
    """A reason as users type it (any case, ``key-compromise`` too) -> its RFC 5280 name."""
    if text is None:
        return "unspecified"
    folded = text.replace("-", "").replace("_", "").lower()
    for reason in REASONS:
        if reason.lower() == folded:
            return reason
    raise InputError(f"unknown revocation reason {text!r}", fix=f"use one of: {', '.join(REASONS)}")


def ca_certificate(ca_dir: Path) -> x509.Certificate:
    """The CA's own certificate (``ca.pem``): all that recording a revocation needs, the key stays shut."""
    from tlskit.files import load_certificates
    from tlskit.issue import CA_CERT_FILE

    path = Path(ca_dir) / CA_CERT_FILE
    if not path.is_file():
        raise InputError(f"{ca_dir} is not a tlskit CA directory", f"{CA_CERT_FILE} is missing",
                         f"create one with: tlskit ca init --dir {ca_dir} --cn 'My CA'")
    return load_certificates(path)[0]


def revoke(ca_dir: Path, certificate: x509.Certificate, reason: str | None = None,
           now: dt.datetime | None = None) -> Revocation:
    """Record ``certificate`` as revoked by the CA in ``ca_dir``; refused unless this CA issued it."""
    from tlskit.certificates import fingerprint, issued_by
    from tlskit.names import name_to_slash

    reason = parse_reason(reason)
    ca_cert = ca_certificate(ca_dir)
    if certificate == ca_cert:
        raise InputError("that is the CA's own certificate", "a CA cannot revoke itself",
                         f"revoke an intermediate CA with its parent's {option('ca_dir')}, or stop trusting a root")
    if not issued_by(certificate, ca_cert):
        raise InputError(f"{name_to_slash(certificate.subject)} was not issued by this CA",
                         f"its issuer is {name_to_slash(certificate.issuer)}, or the CA's key did not sign it",
                         f"give a certificate that {ca_dir} signed, or the {option('ca_dir')} of its issuer")
    serial = format(certificate.serial_number, "x")
    with _locked(ca_dir):
        record = _read_record(ca_dir)
        for entry in record["revoked"]:
            if entry["serial"] == serial:
                return Revocation(**entry, already=True)
        when = (now or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
        revocation = Revocation(serial, when.isoformat(), reason, name_to_slash(certificate.subject),
                                certificate.not_valid_after_utc.isoformat(), fingerprint(certificate))
        record["revoked"].append(revocation.record())
        _write_record(ca_dir, record)
    return revocation


def revoked(ca_dir: Path) -> list[Revocation]:
    """Everything the CA in ``ca_dir`` has revoked, oldest first."""
    return [Revocation(**entry) for entry in _read_record(ca_dir)["revoked"]]


def build_crl(ca_cert: x509.Certificate, ca_key, revocations: list[Revocation], number: int, days: int,
              now: dt.datetime | None = None) -> x509.CertificateRevocationList:
    """A CRL of ``revocations`` signed by the CA, number ``number``, valid for ``days``."""
    from cryptography import x509

    from tlskit.issue import _BACKDATE, _not_after
    from tlskit.keys import signing_hash

    start = (now or dt.datetime.now(dt.timezone.utc)) - _BACKDATE
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(start)
        # Past nextUpdate OpenSSL refuses every certificate ("CRL has expired"): publish again before it.
        .next_update(_not_after(start, days, None))
        # RFC 5280 requires a CRL number, increasing, so a verifier can tell the newer of two CRLs.
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
    )
    for revocation in revocations:
        entry = (x509.RevokedCertificateBuilder().serial_number(int(revocation.serial, 16))
                 .revocation_date(dt.datetime.fromisoformat(revocation.revoked_at)))
        if revocation.reason != "unspecified":
            entry = entry.add_extension(x509.CRLReason(_reason_flag(revocation.reason)), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca_key, signing_hash(ca_key))


def publish_crl(ca_dir: Path, out: Path, days: int = DEFAULT_CRL_DAYS, passphrase: bytes | None = None,
                force: bool = False) -> PublishedCrl:
    """Write a new CRL of the CA in ``ca_dir`` to ``out`` (PEM), with the next CRL number.

    ``out`` is replaced without ``force`` when it holds an earlier CRL of this CA (re-publishing is
    routine, from cron or a timer); any other existing file needs ``force``.
    """
    from cryptography.hazmat.primitives.serialization import Encoding

    from tlskit.files import Output, check_writable, write_outputs
    from tlskit.issue import LocalCA

    ca = LocalCA.load(ca_dir, passphrase)
    check_writable([out], force or _is_crl_of(out, ca.certificate))
    with _locked(ca_dir):
        record = _read_record(ca_dir)
        number = record["crl_number"] + 1
        revocations = [Revocation(**entry) for entry in record["revoked"]]
        crl = build_crl(ca.certificate, ca.key, revocations, number, days)
        # The number is spent before the CRL is written: a failed write leaves a gap, never a repeat.
        record["crl_number"] = number
        _write_record(ca_dir, record)
        write_outputs([Output.of(out, crl.public_bytes(Encoding.PEM))], force=True)
    return PublishedCrl(crl, out, number, len(revocations))


def _is_crl_of(path: Path, ca_cert: x509.Certificate) -> bool:
    from tlskit.revocation.crl import parse_crls

    try:
        crls = parse_crls(path.read_bytes(), str(path))
        return len(crls) == 1 and crls[0].issuer == ca_cert.subject and crls[0].is_signature_valid(ca_cert.public_key())
    except (OSError, InputError, ValueError, TypeError):
        return False


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    from cryptography import x509

    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())


def _reason_flag(reason: str) -> x509.ReasonFlags:
    from cryptography import x509

    return {"keyCompromise": x509.ReasonFlags.key_compromise, "cACompromise": x509.ReasonFlags.ca_compromise,
            "affiliationChanged": x509.ReasonFlags.affiliation_changed,
            "superseded": x509.ReasonFlags.superseded,
            "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
            "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn}[reason]


# --- the record ------------------------------------------------------------------------------


@contextmanager
def _locked(ca_dir: Path) -> Iterator[None]:
    import fcntl

    try:
        fd = os.open(Path(ca_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        from tlskit.errors import from_os_error

        raise from_os_error(exc, f"the CA directory {ca_dir}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_record(ca_dir: Path) -> dict:
    path = Path(ca_dir) / RECORD_FILE
    if not path.exists():
        return {"crl_number": 0, "revoked": []}
    from tlskit.files import read_bytes

    try:
        record = json.loads(read_bytes(path, "revocation record"))
        if not isinstance(record.get("crl_number"), int) or not isinstance(record.get("revoked"), list):
            raise ValueError("crl_number or revoked missing")
        for entry in record["revoked"]:
            Revocation(**entry)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"{path} is damaged", str(exc).split("\n")[0],
                         "restore it from a backup: it is the CA's only record of what it revoked") from None
    return record


def _write_record(ca_dir: Path, record: dict) -> None:
    from tlskit.files import Output, write_outputs

    data = (json.dumps(record, indent=2) + "\n").encode()
    write_outputs([Output.of(Path(ca_dir) / RECORD_FILE, data)], force=True)
