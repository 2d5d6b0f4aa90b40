"""Where ACME results live on disk, in certbot's familiar names.

::

    DIR/
      accounts/<ca host>/account-key.pem (0600), account.json      one account per CA, reused
      accounts/retired/<ca host>-<time>/                           deactivated accounts, kept
      example.com/privkey.pem (0600), cert.pem, chain.pem, fullchain.pem, renewal.json
      _wildcard.example.com/...                                    a first name of *.example.com
      192.0.2.10/..., 2001_db8__1/...                              IP address certificates

``renewal.json`` holds what ``tlskit acme renew`` needs to do it again unattended: the names, the CA's
directory, the challenge settings, the key type, the profile, the preferred chain and the address
that must serve the renewed certificate. All files of a certificate are written through
:func:`tlskit.files.write_outputs` (temp file, fsync, rename), so a crash leaves complete files only;
``renew`` also treats a key that does not match its certificate (a crash between two renames) as due.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlskit.errors import InputError, option
from tlskit.files import Output, read_bytes, write_outputs

if TYPE_CHECKING:
    from cryptography import x509

PRIVKEY, CERT, CHAIN, FULLCHAIN, RENEWAL, REQUEST = (
    "privkey.pem", "cert.pem", "chain.pem", "fullchain.pem", "renewal.json", "request.csr")
ACCOUNTS = "accounts"
RETIRED = "retired"


def lineage_name(first_name: str) -> str:
    """The directory of a certificate: its first (normalized) name, ``*`` spelled ``_wildcard`` and an
    IPv6 address's ``:`` spelled ``_`` (``2001_db8__1``), as tlskit names every file it writes."""
    from tlskit.names import file_stem

    return file_stem(first_name, "certificate")


@dataclass
class RenewalSettings:
    """Everything needed to get the same certificate again (JSON in ``renewal.json``)."""

    names: list[str]
    directory: str
    challenge: dict[str, Any]
    key_type: str | None = "ec:p256"    # None: the user's own CSR (request.csr) is sent again
    directory_ca_file: str | None = None
    email: str | None = None
    profile: str | None = None            # the CA's certificate profile (ACME profiles extension)
    preferred_chain: str | None = None    # issuer CN of the top certificate of the chain to keep
    verify_served: str | None = None      # HOST:PORT that must serve the new certificate after a renewal
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


    def delete(self) -> list[Path]:
        """Remove this certificate's files and its directory (nothing else); returns what was removed."""
        removed = []
        for path in sorted(self.path.iterdir()):
            if path.is_file() or path.is_symlink():
                path.unlink()
                removed.append(path)
        try:
            self.path.rmdir()
        except OSError:
            pass  # something of the user's is in there: leave it
        return removed


def find_lineages(out_dir: Path) -> list[Lineage]:
    """Every certificate directory under ``out_dir`` (those holding renewal.json), sorted by name."""
    if not out_dir.is_dir():
        raise InputError(f"{out_dir} is not a directory", fix=f"give the {option('out_dir')} used with tlskit acme issue")
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
    """The account key and its URL at one CA, under DIR/accounts/<ca host>/.

    ``account-key.next.pem`` exists only while a key rollover is under way: it is written before the
    CA is asked to switch keys, so a crash between the CA's answer and the local rename loses nothing
    (the next session tries it when the CA no longer knows the old key).
    """

    path: Path
    uri: str | None = None
    email: str | None = None
    directory: str | None = None
    directory_ca_file: str | None = None

    @classmethod
    def for_directory(cls, out_dir: Path, directory: str) -> AccountFiles:
        from urllib.parse import urlsplit

        parts = urlsplit(directory)
        slug = re.sub(r"[^A-Za-z0-9._-]", "_", f"{parts.hostname or 'ca'}_{parts.port or 443}{parts.path}")
        account = cls(out_dir / ACCOUNTS / slug.strip("_"), directory=directory)
        account._read_meta()
        return account

    @classmethod
    def all(cls, out_dir: Path) -> list[AccountFiles]:
        """Every account kept under ``out_dir`` (those with a key), sorted by directory name."""
        root = out_dir / ACCOUNTS
        if not root.is_dir():
            return []
        found = []
        for path in sorted(root.iterdir()):
            if (path / "account-key.pem").is_file():
                account = cls(path)
                account._read_meta()
                found.append(account)
        return found

    def _read_meta(self) -> None:
        meta = self.path / "account.json"
        if meta.is_file():
            try:
                data = json.loads(meta.read_text())
                self.uri, self.email = data.get("uri"), data.get("email")
                self.directory = self.directory or data.get("directory")
                self.directory_ca_file = data.get("directory_ca_file")
            except (ValueError, OSError):
                pass

    @property
    def key_path(self) -> Path:
        return self.path / "account-key.pem"

    @property
    def next_key_path(self) -> Path:
        return self.path / "account-key.next.pem"

    def load_key_pem(self) -> bytes | None:
        return self.key_path.read_bytes() if self.key_path.is_file() else None

    def load_next_key_pem(self) -> bytes | None:
        return self.next_key_path.read_bytes() if self.next_key_path.is_file() else None

    def save(self, key_pem: bytes | None, uri: str, email: str | None) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        outputs = []
        if key_pem is not None:
            outputs.append(Output.of(self.key_path, key_pem, secret=True))
        meta = {"uri": uri, "email": email, "directory": self.directory, "directory_ca_file": self.directory_ca_file,
                "saved_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        outputs.append(Output.of(self.path / "account.json", (json.dumps(meta, indent=2) + "\n").encode()))
        write_outputs(outputs, force=True)
        self.uri, self.email = uri, email

    def save_next_key(self, key_pem: bytes) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_outputs([Output.of(self.next_key_path, key_pem, secret=True)], force=True)

    def promote_next_key(self) -> None:
        """The CA uses the next key now: it becomes the account key (one atomic rename)."""
        self.next_key_path.replace(self.key_path)

    def drop_next_key(self) -> None:
        self.next_key_path.unlink(missing_ok=True)

    def retire(self) -> Path:
        """Move this account to ``accounts/retired/`` (a deactivated account's key is useless at its
        CA, yet kept for the record); the next order registers a new account."""
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.parent / RETIRED / f"{self.path.name}-{stamp}"
        target.parent.mkdir(mode=0o700, exist_ok=True)
        self.path.rename(target)
        return target
