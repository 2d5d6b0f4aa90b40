"""The secrets of S3 key pairs, encrypted at rest with a key file of their own.

A signed-mode S3 request is checked by computing its HMAC, so the server needs each pair's secret
itself, not a hash of it. The users database holds the secret encrypted with AES-256-GCM under the key
in ``s3-secrets.key`` (32 random bytes, base64, mode 0600, made on first use): a copy of the database
alone (a dump, a stolen backup of that one file, a read-only SQL injection) reveals no secret. Where the
file lives is :func:`tlskit.server.users_credentials.with_secrets`'s rule: beside an SQLite users
database (the state directory, by default), in the state directory for PostgreSQL.

Each sealed secret reads ``v1:<key id>:<base64 nonce+ciphertext>``; the key id (the first 8 bytes of
the key's SHA-256) says which key file sealed it, so a server given another key file says so instead of
refusing good signatures for no visible reason. The access key id is the associated data: a sealed
secret copied onto another key id does not open.

Every instance that checks signatures against one PostgreSQL users database needs the same key file in
its state directory. Losing the file loses the secrets: make new pairs (`tlskit users set NAME --s3-key`).

Example::

    box = SecretBox.in_state_dir(Path("~/.local/share/tlskit").expanduser())
    sealed = box.seal("TLKA...", secret)        # what the database stores
    box.open("TLKA...", sealed) == secret
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

from tlskit.errors import InputError, option

KEY_FILE = "s3-secrets.key"
_VERSION = "v1"
_NONCE_BYTES = 12         # GCM's standard nonce; random, since each secret is sealed once
_AAD_PREFIX = b"tlskit s3 secret\0"


class SecretUnavailable(Exception):
    """A sealed secret cannot be opened here: another key file sealed it, or it was altered."""


class SecretBox:
    """Seals and opens S3 secrets with the key in ``path`` (read once, made on the first seal)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._key: bytes | None = None

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> SecretBox:
        return cls(Path(state_dir) / KEY_FILE)

    def seal(self, access_key_id: str, secret: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self._load(create=True)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, secret.encode("utf-8"), _AAD_PREFIX + access_key_id.encode("utf-8"))
        return f"{_VERSION}:{_key_id(key)}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def open(self, access_key_id: str, sealed: str) -> str:
        """The secret, or SecretUnavailable saying why not (never the secret or the key in the message)."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        version, _, rest = sealed.partition(":")
        key_id, _, payload = rest.partition(":")
        if version != _VERSION or not payload:
            raise SecretUnavailable(f"the secret of {access_key_id} is not in a form this tlskit reads")
        try:
            key = self._load(create=False)
        except InputError as exc:
            raise SecretUnavailable(exc.message) from None
        if key_id != _key_id(key):
            raise SecretUnavailable(f"the secret of {access_key_id} was sealed with another key file (id {key_id}),"
                                    f" not {self.path} (id {_key_id(key)}): copy that file here")
        try:
            raw = base64.b64decode(payload, validate=True)
            opened = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                         _AAD_PREFIX + access_key_id.encode("utf-8"))
            return opened.decode("utf-8")
        except (InvalidTag, ValueError, UnicodeError):
            raise SecretUnavailable(f"the secret of {access_key_id} does not open: altered in the database")

    def _load(self, create: bool) -> bytes:
        if self._key is None:
            if create and not self.path.exists():
                _create_key_file(self.path)
            self._key = _read_key_file(self.path)
        return self._key


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


def _create_key_file(path: Path) -> None:
    """Write a new key so that no reader ever sees a partial file and two first uses agree on one key:
    written to a private temp file, then linked into place (link fails if the name exists)."""
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)   # mode 0600
    except OSError as exc:
        from tlskit.errors import from_os_error

        raise from_os_error(exc, f"the S3 secrets key {path}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(32)) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass          # another process made it first: use theirs
    finally:
        os.unlink(temp)


def _read_key_file(path: Path) -> bytes:
    try:
        st = path.stat()
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"the S3 secrets key {path} does not exist",
                         fix=f"use the {option('state_dir')} the key pairs were made with, or copy its s3-secrets.key") from None
    except OSError as exc:
        raise InputError(f"cannot read the S3 secrets key {path}", exc.strerror, "check its owner and mode") from None
    if st.st_mode & 0o077:
        raise InputError(f"the S3 secrets key {path} is readable by others (mode {st.st_mode & 0o777:o})",
                         fix=f"chmod 600 {path}")
    try:
        key = base64.b64decode(data.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise InputError(f"the S3 secrets key {path} is damaged", "it is not 32 bytes in base64",
                         "restore it from a backup, or remove it and make new key pairs")
    return key
