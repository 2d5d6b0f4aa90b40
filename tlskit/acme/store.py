"""Where ACME results live on disk, in certbot's familiar names.

::

    DIR/
      accounts/<ca host>/account-key.pem (0600), account.json      one account per CA, reused
      example.com/privkey.pem (0600), cert.pem, chain.pem, fullchain.pem, renewal.json
      _wildcard.example.com/...                                    a first name of *.example.com

``renewal.json`` holds what ``tlskit acme renew`` needs to do it again unattended: the names, the CA's
directory, the challenge settings and the key type. All files of a certificate are written through
:func:`tlskit.files.write_outputs` (temp file, fsync, rename), so a crash leaves complete files only;
``renew`` also treats a key that does not match its certificate (a crash between two renames) as due.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlskit.errors import InputError
from tlskit.files import Output, read_bytes, write_outputs

if TYPE_CHECKING:
    from cryptography import x509

PRIVKEY, CERT, CHAIN, FULLCHAIN, RENEWAL, REQUEST = (
    "privkey.pem", "cert.pem", "chain.pem", "fullchain.pem", "renewal.json", "request.csr")
ACCOUNTS = "accounts"


def lineage_name(first_name: str) -> str:
    """The directory of a certificate: its first name, with ``*`` spelled ``_wildcard`` for shells."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", first_name.lower().replace("*", "_wildcard"))
    return stem.strip(".") or "certificate"


@dataclass
class RenewalSettings:
    """Everything needed to get the same certificate again (JSON in ``renewal.json``)."""

    names: list[str]
    directory: str
    challenge: dict[str, Any]
    key_type: str | None = "ec:p256"    # None: the user's own CSR (request.csr) is sent again
    directory_ca_file: str | None = None
    email: str | None = None
    issued_at: str = ""
    version: int = 1

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2) + "\n").encode()

    @classmethod
    def from_file(cls, path: Path) -> RenewalSettings:
        try:
            data = json.loads(read_bytes(path, "renewal settings"))
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path} is not valid renewal settings", str(exc).splitlines()[0],
                             "issue the certificate again with tlskit acme issue --force") from None


@dataclass
class Lineage:
    """One certificate's directory under DIR."""

    path: Path

    @property
    def privkey(self) -> Path:
        return self.path / PRIVKEY

    @property
    def cert(self) -> Path:
        return self.path / CERT

    @property
    def chain(self) -> Path:
        return self.path / CHAIN

    @property
    def fullchain(self) -> Path:
        return self.path / FULLCHAIN

    @property
    def renewal(self) -> Path:
        return self.path / RENEWAL

    @property
    def request(self) -> Path:
        return self.path / REQUEST

    def settings(self) -> RenewalSettings:
        return RenewalSettings.from_file(self.renewal)

    def certificate(self) -> x509.Certificate:
        from tlskit.files import load_certificates

        return load_certificates(self.cert)[0]

    def key_matches(self) -> bool:
        """Whether privkey.pem belongs to cert.pem (False after a crash between renames, or no key)."""
        from tlskit.keys import key_matches_certificate, load_private_key

        if not self.privkey.exists():
            return self.request.exists()  # the user's own CSR: the key is theirs, not ours
        try:
            return key_matches_certificate(load_private_key(self.privkey), self.certificate())
        except InputError:
            return False

    def output_paths(self, with_key: bool) -> list[Path]:
        paths = [self.cert, self.chain, self.fullchain, self.renewal]
        return ([self.privkey] if with_key else []) + paths

    def write(self, *, key_pem: bytes | None, fullchain_pem: bytes, settings: RenewalSettings,
              csr_pem: bytes | None = None, force: bool = False) -> list[Path]:
        """Write every file of this certificate, all or nothing; returns the paths written."""
        cert_pem, chain_pem = split_fullchain(fullchain_pem)
        self.path.mkdir(parents=True, exist_ok=True)
        outputs = []
        if key_pem is not None:
            outputs.append(Output.of(self.privkey, key_pem, secret=True))
        outputs += [Output.of(self.cert, cert_pem), Output.of(self.chain, chain_pem),
                    Output.of(self.fullchain, fullchain_pem)]
        if csr_pem is not None:
            outputs.append(Output.of(self.request, csr_pem))
        outputs.append(Output.of(self.renewal, settings.to_json()))
        write_outputs(outputs, force)
        if key_pem is None and force and self.privkey.exists():
            # Replaced by a certificate for the caller's own key: the old key no longer belongs here.
            self.privkey.unlink()
        return [o.path for o in outputs]


def find_lineages(out_dir: Path) -> list[Lineage]:
    """Every certificate directory under ``out_dir`` (those holding renewal.json), sorted by name."""
    if not out_dir.is_dir():
        raise InputError(f"{out_dir} is not a directory", fix="give the --out-dir used with tlskit acme issue")
    return [Lineage(p) for p in sorted(out_dir.iterdir()) if p.is_dir() and (p / RENEWAL).is_file()]


def split_fullchain(fullchain_pem: bytes) -> tuple[bytes, bytes]:
    """cert.pem (the leaf) and chain.pem (the rest) from the CA's PEM chain."""
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\r?\n?", fullchain_pem, re.DOTALL)
    if not blocks:
        from tlskit.errors import NetworkError

        raise NetworkError("the CA sent no certificate", "the download was not a PEM chain",
                           "try again later or report it to the CA")
    fix = [b if b.endswith(b"\n") else b + b"\n" for b in blocks]
    return fix[0], b"".join(fix[1:])



@dataclass
class AccountFiles:
    """The account key and its URL at one CA, under DIR/accounts/<ca host>/."""

    path: Path
    uri: str | None = None
    email: str | None = None
    directory: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_directory(cls, out_dir: Path, directory: str) -> AccountFiles:
        from urllib.parse import urlsplit

        parts = urlsplit(directory)
        slug = re.sub(r"[^A-Za-z0-9._-]", "_", f"{parts.hostname or 'ca'}_{parts.port or 443}{parts.path}")
        account = cls(out_dir / ACCOUNTS / slug.strip("_"), directory=directory)
        meta = account.path / "account.json"
        if meta.is_file():
            try:
                data = json.loads(meta.read_text())
                account.uri, account.email = data.get("uri"), data.get("email")
            except (ValueError, OSError):
                pass
        return account

    @property
    def key_path(self) -> Path:
        return self.path / "account-key.pem"

    def load_key_pem(self) -> bytes | None:
        return self.key_path.read_bytes() if self.key_path.is_file() else None

    def save(self, key_pem: bytes | None, uri: str, email: str | None) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        outputs = []
        if key_pem is not None:
            outputs.append(Output.of(self.key_path, key_pem, secret=True))
        meta = {"uri": uri, "email": email, "directory": self.directory,
                "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        outputs.append(Output.of(self.path / "account.json", (json.dumps(meta, indent=2) + "\n").encode()))
        write_outputs(outputs, force=True)
        self.uri, self.email = uri, email
