"""Reading PEM/DER bundles and writing files so that nothing is half-written or silently replaced.

Every output goes through :func:`write_outputs`: all targets are checked before anything is written,
each file is written to a temporary file in the same directory, fsynced and renamed into place, so a
crash leaves either the old file or the new one. Secrets get mode 0600 from the moment they exist.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tlskit.errors import FileExistsRefused, InputError, option

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----\r?\n?", re.DOTALL
)
_CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"}
_CSR_LABELS = {b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"}
_PRIVATE_KEY_LABELS = {b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY"}
_PUBLIC_KEY_LABELS = {b"PUBLIC KEY", b"RSA PUBLIC KEY"}
# Windows CAs and AIA URLs hand chains out as PKCS#7 (.p7b, .p7c): read as the certificates inside.
_PKCS7_LABELS = {b"PKCS7"}
# Blocks that carry no object a user asks about; openssl writes them next to EC keys.
_IGNORED_LABELS = {b"EC PARAMETERS"}


@dataclass
class Bundle:
    """Everything found in a file, by kind, each kind in the order it was found."""

    certificates: list[x509.Certificate] = field(default_factory=list)
    csrs: list[x509.CertificateSigningRequest] = field(default_factory=list)
    private_keys: list[PrivateKeyTypes] = field(default_factory=list)
    public_keys: list[PublicKeyTypes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.certificates) + len(self.csrs) + len(self.private_keys) + len(self.public_keys)


def read_bytes(path: str | os.PathLike[str], what: str = "file") -> bytes:
    """Read a whole file, turning OS errors into one-line InputErrors."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} {p} does not exist", fix="check the path") from None
    except IsADirectoryError:
        raise InputError(f"{what} {p} is a directory", fix="name a file") from None
    except PermissionError:
        raise InputError(f"cannot read {what} {p}", "permission denied", "check its permissions") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}", exc.strerror, "check the path") from None


def read_passphrase(path: str | os.PathLike[str] | None) -> bytes | None:
    """A passphrase file's first line, as `openssl -passin file:` reads it."""
    if path is None:
        return None
    data = read_bytes(path, "passphrase file")
    line = data.splitlines()[0] if data.strip() else b""
    if not line:
        raise InputError(f"passphrase file {path} is empty", fix="put the passphrase on its first line")
    return line


def parse_bundle(data: bytes, source: str = "input", passphrase: bytes | None = None) -> Bundle:
    """Parse PEM (any number of blocks, any order) or a single DER object.

    Raises InputError naming ``source`` when nothing usable is inside, so `tlskit chain junk.txt`
    says which file is junk.
    """
    bundle = Bundle()
    blocks = list(_PEM_BLOCK.finditer(data))
    if blocks:
        for match in blocks:
            _add_pem_block(bundle, match.group(1), match.group(0), source, passphrase)
        if not len(bundle):
            raise InputError(f"{source} holds no certificate, CSR or key", fix="give a PEM or DER file")
        return bundle
    if b"-----BEGIN" in data:
        raise InputError(f"{source} has a broken PEM block", "BEGIN without a matching END",
                         "check that the file was copied whole")
    _add_der(bundle, data, source, passphrase)
    return bundle


def load_bundle(path: str | os.PathLike[str], passphrase: bytes | None = None) -> Bundle:
    return parse_bundle(read_bytes(path), str(path), passphrase)


def load_certificates(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    certs = load_bundle(path).certificates
    if not certs:
        raise InputError(f"{path} holds no certificate", fix="give a PEM or DER certificate file")
    return certs


def _is_encrypted(loader, data: bytes) -> bool:
    """Whether the key is encrypted. A wrong passphrase decrypts CBC to garbage with valid padding about
    once in 256 tries; the garbage then fails to parse, with a message that names no password."""
    try:
        loader(data, password=None)
    except TypeError:
        return True
    except Exception:
        return False
    return False


def load_private_key_bytes(data: bytes, source: str, passphrase: bytes | None) -> PrivateKeyTypes:
    """Load one private key (PEM or DER, PKCS#8 or traditional), with clear errors for encryption."""
    from cryptography.hazmat.primitives import serialization

    loader = serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    try:
        return loader(data, password=passphrase)
    except TypeError:
        if passphrase is None:
            raise InputError(f"key {source} is encrypted", fix=f"pass its passphrase with {option('passphrase_file')}") from None
        raise InputError(f"key {source} is not encrypted", fix=f"drop {option('passphrase_file')}") from None
    except ValueError as exc:
        reason = str(exc).lower()
        if passphrase is not None and ("password" in reason or "decrypt" in reason or _is_encrypted(loader, data)):
            raise InputError(f"cannot decrypt key {source}", "wrong passphrase",
                             "check the passphrase file") from None
        raise InputError(f"{source} is not a private key", fix="give a PEM or DER private key") from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm and others for odd keys
        raise InputError(f"cannot load key {source}", str(exc) or type(exc).__name__,
                         "give an RSA, EC or Ed25519 key") from None


def _add_pem_block(bundle: Bundle, label: bytes, block: bytes, source: str, passphrase: bytes | None) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    name = label.decode()
    try:
        if label in _CERT_LABELS:
            if label == b"TRUSTED CERTIFICATE":
                # OpenSSL's trusted form appends trust settings after the DER certificate.
                import base64

                body = b"".join(block.splitlines()[1:-1])
                der = base64.b64decode(body)
                bundle.certificates.append(x509.load_der_x509_certificate(_first_der_object(der)))
            else:
                bundle.certificates.append(
                    x509.load_pem_x509_certificate(block.replace(label, b"CERTIFICATE"))
                )
        elif label in _CSR_LABELS:
            bundle.csrs.append(x509.load_pem_x509_csr(block.replace(label, b"CERTIFICATE REQUEST")))
        elif label in _PRIVATE_KEY_LABELS:
            bundle.private_keys.append(load_private_key_bytes(block, source, passphrase))
        elif label in _PUBLIC_KEY_LABELS:
            bundle.public_keys.append(serialization.load_pem_public_key(block))
        elif label in _PKCS7_LABELS:
            from tlskit.certificates import pkcs7_certificates

            certificates = pkcs7_certificates(block.replace(label, b"PKCS7"))
            if certificates is None:
                raise InputError(f"{source} has a {name} block without certificates",
                                 fix="give a PKCS#7 certificate bundle (.p7b) or PEM certificates")
            bundle.certificates.extend(certificates)
        elif label in _IGNORED_LABELS:
            return
        else:
            raise InputError(f"{source} has a {name} block, which tlskit does not read",
                             fix="give certificates, CSRs or keys")
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{source} has a {name} block that does not parse", _short(exc),
                         "check that the file was copied whole") from None


def _add_der(bundle: Bundle, data: bytes, source: str, passphrase: bytes | None) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    attempts = (
        (bundle.certificates, x509.load_der_x509_certificate),
        (bundle.csrs, x509.load_der_x509_csr),
        (bundle.public_keys, serialization.load_der_public_key),
    )
    for target, loader in attempts:
        try:
            target.append(loader(data))
            return
        except Exception:
            continue
    from tlskit.certificates import pkcs7_certificates

    certificates = pkcs7_certificates(data)
    if certificates is not None:
        bundle.certificates.extend(certificates)
        return
    try:
        bundle.private_keys.append(serialization.load_der_private_key(data, password=passphrase))
        return
    except TypeError:
        raise InputError(f"key {source} is encrypted", fix=f"pass its passphrase with {option('passphrase_file')}") from None
    except Exception:
        pass
    raise InputError(f"{source} is neither PEM nor DER", "no certificate, CSR or key found",
                     "give a PEM or DER file")


def _first_der_object(der: bytes) -> bytes:
    """The first DER TLV in ``der`` (a SEQUENCE), so trailing data can be cut off."""
    if len(der) < 2 or der[0] != 0x30:
        return der
    length = der[1]
    if length < 0x80:
        return der[: 2 + length]
    count = length & 0x7F
    size = int.from_bytes(der[2 : 2 + count], "big")
    return der[: 2 + count + size]


def _short(exc: Exception) -> str:
    text = str(exc).split("\n")[0]
    return text[:120] or type(exc).__name__


# --- writing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """One file to write: its path, its bytes, and whether it is a secret (mode 0600)."""

    path: Path
    data: bytes
    secret: bool = False

    @classmethod
    def of(cls, path: str | os.PathLike[str], data: bytes, secret: bool = False) -> Output:
        return cls(Path(path), data, secret)


def check_writable(paths: list[Path], force: bool) -> None:
    """Refuse before any work is done when a target exists (without force) or cannot be written."""
    seen: set[Path] = set()
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise InputError(f"{path} is named twice as an output", fix="give each output its own path")
        seen.add(resolved)
        if path.is_dir():
            raise InputError(f"{path} is a directory", fix="name a file")
        if path.exists() and not force:
            raise FileExistsRefused(f"{path} already exists", fix=f"pass {option('force')} to replace it, or choose another path")
        parent = path.parent  # Path("cert.pem").parent is Path("."), never empty
        if not parent.is_dir():
            raise InputError(f"directory {parent} does not exist", fix=f"create it first (mkdir -p {parent})")
        if not os.access(parent, os.W_OK):
            raise InputError(f"cannot write to directory {parent}", "permission denied", "choose another path")


def write_outputs(outputs: list[Output], force: bool = False) -> None:
    """Write all outputs or none: every file lands in a temp file first, then all are renamed.

    If a rename fails half-way, files this call created are removed again, so a failed `csr` never
    leaves a stray key behind. Files it replaced (with force) cannot be restored, but were complete.
    """
    check_writable([o.path for o in outputs], force)
    staged: list[tuple[Output, str]] = []
    try:
        for output in outputs:
            staged.append((output, _stage(output)))
    except OSError as exc:
        for _, temp in staged:
            _unlink_quietly(temp)
        raise InputError(f"cannot write {output.path}", exc.strerror, "check free space and permissions") from None
    created: list[Path] = []
    try:
        for output, temp in staged:
            existed = output.path.exists()
            os.replace(temp, output.path)
            if not existed:
                created.append(output.path)
        for directory in {o.path.parent for o in outputs}:
            _fsync_directory(directory)
    except OSError as exc:
        for _, temp in staged:
            _unlink_quietly(temp)
        for path in created:
            _unlink_quietly(path)
        raise InputError(f"cannot write {output.path}", exc.strerror, "check free space and permissions") from None


def _stage(output: Output) -> str:
    directory = output.path.parent
    _remove_stale_temps(directory, output.path.name)
    # The writer's pid is in the name, so a later run can tell a dead writer's leftover from a live one's.
    fd, temp = tempfile.mkstemp(prefix=f".{output.path.name}.{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        # mkstemp creates 0600; public files are widened only after the content is complete.
        with os.fdopen(fd, "wb") as handle:
            handle.write(output.data)
            handle.flush()
            os.fsync(handle.fileno())
        if not output.secret:
            os.chmod(temp, 0o644 & ~_umask())
    except BaseException:
        _unlink_quietly(temp)
        raise
    return temp


def _remove_stale_temps(directory: Path, name: str) -> None:
    """Delete temp files for ``name`` left by a writer that died (SIGKILL, power loss) before its rename.

    Only files whose writer process is gone are removed: a concurrent tlskit writing the same target
    keeps its temp file. Leftovers never replace the real file; this only stops them piling up.
    """
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)\.[^.]+\.tmp\Z")
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if match and not process_alive(int(match.group(1))):
            _unlink_quietly(entry.path)


def process_alive(pid: int) -> bool:
    """Whether ``pid`` may still be running: only a certain "no such process" counts as dead."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process, or not a pid we can ask about: leave its file alone
    return True


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
