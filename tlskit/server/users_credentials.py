"""The credentials of users that are not secrets they type: pinned client certificates and S3 key pairs.

- A **pinned certificate** is stored as its SHA-256 fingerprint (lower-case hex of the DER, what the
  TLS layer computes for the certificate a client sends). A user with pins is proven by a certificate
  only when it is one of them; a user without pins by any certificate that verifies and names it (CN).
- An **S3 key pair** is an access key id (``TLKA`` and 16 base32 characters, public: it is in every
  request) and a secret shown once. The server computes HMACs with the secret, so it is stored sealed
  (:mod:`tlskit.server.s3secrets`), never hashed.

:class:`CredentialSql` is the SQL for both engines (mixed into :class:`tlskit.server.users.SqlUsers`);
the tables are migration 4 of the users schema (:data:`SQLITE_MIGRATION`, :data:`POSTGRESQL_MIGRATION`).
"""

from __future__ import annotations

import base64
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tlskit.errors import InputError, option

if TYPE_CHECKING:
    from tlskit.server.s3secrets import SecretBox

log = logging.getLogger("tlskit.serve")

ACCESS_KEY_PREFIX = "TLKA"
DESCRIPTION = "pinned client certificates and S3 key pairs"
SQLITE_MIGRATION = (
    "CREATE TABLE IF NOT EXISTS cert_pins (fingerprint_sha256 TEXT PRIMARY KEY,"
    " name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE, subject TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS cert_pins_name ON cert_pins (name)",
    "CREATE TABLE IF NOT EXISTS s3_keys (access_key_id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE, secret_sealed TEXT NOT NULL,"
    " created REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS s3_keys_name ON s3_keys (name)",
)
POSTGRESQL_MIGRATION = (
    "CREATE TABLE tlskit.cert_pins (fingerprint_sha256 text PRIMARY KEY, name text NOT NULL"
    " REFERENCES tlskit.users (name) ON DELETE CASCADE ON UPDATE CASCADE, subject text NOT NULL,"
    " created double precision NOT NULL)",
    "CREATE INDEX cert_pins_name ON tlskit.cert_pins (name)",
    "CREATE TABLE tlskit.s3_keys (access_key_id text PRIMARY KEY, name text NOT NULL"
    " REFERENCES tlskit.users (name) ON DELETE CASCADE ON UPDATE CASCADE, secret_sealed text NOT NULL,"
    " created double precision NOT NULL)",
    "CREATE INDEX s3_keys_name ON tlskit.s3_keys (name)",
    # Every instance rereads the users when these change, as for users and tokens (migration 3).
    "CREATE TRIGGER cert_pins_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tlskit.cert_pins"
    " FOR EACH STATEMENT EXECUTE FUNCTION tlskit.users_changed()",
    "CREATE TRIGGER s3_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tlskit.s3_keys"
    " FOR EACH STATEMENT EXECUTE FUNCTION tlskit.users_changed()",
)
SELECT_ALL_PINS = "SELECT fingerprint_sha256, name FROM cert_pins"
SELECT_ALL_S3_KEYS = "SELECT access_key_id, name, secret_sealed FROM s3_keys"


@dataclass(frozen=True)
class Pin:
    """A certificate to pin: its fingerprint, and its subject (to show in `users list`)."""

    fingerprint: str
    subject: str


@dataclass(frozen=True)
class S3KeyPair:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class Added:
    """What :meth:`tlskit.server.users.SqlUsers.create` made that is shown once: the token, the S3 key pair."""

    token: str | None = None
    s3_key: S3KeyPair | None = None


def pin_of(text: str | Path) -> Pin:
    """A pin from a certificate file (PEM or DER; the first certificate) or a SHA-256 fingerprint as
    `openssl x509 -fingerprint -sha256` or `tlskit inspect` print it."""
    from tlskit.server.client_certs import fingerprint_of

    path = Path(text)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):      # a name too long for the file system: not a file, maybe a fingerprint
        is_file = False
    if is_file:
        import hashlib

        from cryptography.hazmat.primitives.serialization import Encoding

        from tlskit.files import load_certificates

        certificate = load_certificates(path)[0]
        return Pin(hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest(),
                   certificate.subject.rfc4514_string())
    try:
        return Pin(fingerprint_of(str(text)), "")
    except InputError:
        raise InputError(f"{text} is neither a certificate file nor a SHA-256 fingerprint",
                         fix="give the user's certificate (PEM or DER) or its fingerprint (64 hex digits)") from None


def new_s3_key_pair() -> S3KeyPair:
    # 80 random bits in the id (as AWS's 20 characters), 240 in the secret (AWS's 40 characters).
    key_id = ACCESS_KEY_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode("ascii")
    return S3KeyPair(key_id, secrets.token_urlsafe(30))


class CredentialSql:
    """Pins and S3 keys in the users database; needs ``_execute``, ``_transaction`` and ``require`` from
    the store it is mixed into. ``secret_box`` seals S3 secrets; it opens them on reading only with
    ``open_secrets`` (the server: `tlskit users` never needs a secret back)."""

    secret_box: SecretBox | None = None
    open_secrets: bool = False

    def opener(self) -> SecretBox | None:
        """The box that opens secrets on reading, or None (the CLI's stores)."""
        return self.secret_box if self.open_secrets else None

    def insert_credentials(self, name: str, pins, pair: S3KeyPair | None) -> None:
        """A new user's pins and key pair (inside the caller's transaction)."""
        self.pin_certificates(name, list(pins))
        if pair is not None:
            self.insert_s3_key(name, pair)

    def delete_rows_of(self, name: str) -> None:
        """Every row of ``name``: pins, S3 keys, tokens and the user (inside the caller's transaction)."""
        for table in ("cert_pins", "s3_keys", "tokens", "users"):
            self._execute(f"DELETE FROM {table} WHERE name = ?", (name,))

    def pin_certificates(self, name: str, pins: list[Pin]) -> None:
        """Pin certificates to ``name`` (inside the caller's transaction); one already pinned to another
        user is refused, one pinned to this user stays."""
        for pin in pins:
            owner = self._execute("SELECT name FROM cert_pins WHERE fingerprint_sha256 = ?",
                                  (pin.fingerprint,)).fetchone()
            if owner is not None and owner[0] != name:
                raise InputError(f"that certificate is pinned to {owner[0]} already",
                                 fix=f"remove it there first: tlskit users set {owner[0]} --remove-cert FILE")
            if owner is None:
                self._execute("INSERT INTO cert_pins (fingerprint_sha256, name, subject, created) VALUES (?, ?, ?, ?)",
                              (pin.fingerprint, name, pin.subject, time.time()))

    def insert_s3_key(self, name: str, pair: S3KeyPair) -> None:
        """Store ``pair`` for ``name``, its secret sealed (inside the caller's transaction)."""
        if self.secret_box is None:
            raise InputError("S3 key pairs need the state directory's key file", fix=f"pass {option('state_dir')}")
        sealed = self.secret_box.seal(pair.access_key_id, pair.secret_access_key)
        self._execute("INSERT INTO s3_keys (access_key_id, name, secret_sealed, created) VALUES (?, ?, ?, ?)",
                      (pair.access_key_id, name, sealed, time.time()))

    def change_credentials(self, name: str, *, pin: list[Pin] = (), unpin: list[Pin] = (), new_s3_key: bool = False,
                           remove_s3_keys: list[str] = ()) -> S3KeyPair | None:
        """Pin and unpin certificates, add and remove S3 keys of ``name``, all or nothing; returns the new
        key pair (shown once) when ``new_s3_key``."""
        self.require(name)
        pair = new_s3_key_pair() if new_s3_key else None
        with self._transaction():
            for gone in unpin:
                if not self._execute("SELECT 1 FROM cert_pins WHERE fingerprint_sha256 = ? AND name = ?",
                                     (gone.fingerprint, name)).fetchone():
                    raise InputError(f"no certificate {gone.fingerprint[:16]}... is pinned to {name}",
                                     fix="see tlskit users list --json; nothing was changed")
                self._execute("DELETE FROM cert_pins WHERE fingerprint_sha256 = ?", (gone.fingerprint,))
            self.pin_certificates(name, list(pin))
            for key_id in remove_s3_keys:
                if not self._execute("SELECT 1 FROM s3_keys WHERE access_key_id = ? AND name = ?",
                                     (key_id, name)).fetchone():
                    raise InputError(f"{name} has no S3 key {key_id}", fix="see tlskit users list --json; "
                                                                            "nothing was changed")
                self._execute("DELETE FROM s3_keys WHERE access_key_id = ?", (key_id,))
            if pair is not None:
                self.insert_s3_key(name, pair)
        return pair

    def credential_rows(self, name: str | None = None) -> tuple[list, list]:
        """The rows of SELECT_ALL_PINS and SELECT_ALL_S3_KEYS (of one user, when ``name`` is given)."""
        if name is None:
            return self._execute(SELECT_ALL_PINS).fetchall(), self._execute(SELECT_ALL_S3_KEYS).fetchall()
        return (self._execute(SELECT_ALL_PINS + " WHERE name = ?", (name,)).fetchall(),
                self._execute(SELECT_ALL_S3_KEYS + " WHERE name = ?", (name,)).fetchall())

    def export_credentials(self) -> dict[str, tuple[list, list]]:
        """Every pin and S3 key row as stored (secrets still sealed), by user: what a copy takes along."""
        found: dict[str, tuple[list, list]] = {}
        for row in self._execute("SELECT fingerprint_sha256, name, subject, created FROM cert_pins").fetchall():
            found.setdefault(row[1], ([], []))[0].append(tuple(row))
        for row in self._execute("SELECT access_key_id, name, secret_sealed, created FROM s3_keys").fetchall():
            found.setdefault(row[1], ([], []))[1].append(tuple(row))
        return found

    def import_credentials(self, name: str, exported: dict[str, tuple[list, list]]) -> None:
        """Insert ``name``'s rows of :meth:`export_credentials` (inside the caller's transaction). The sealed
        secrets are copied as they are: the copy needs the same key file."""
        pins, keys = exported.get(name, ([], []))
        for row in pins:
            self._execute("INSERT INTO cert_pins (fingerprint_sha256, name, subject, created) VALUES (?, ?, ?, ?)", row)
        for row in keys:
            self._execute("INSERT INTO s3_keys (access_key_id, name, secret_sealed, created) VALUES (?, ?, ?, ?)", row)


def with_secrets(store, location, state_dir: Path | None, open_secrets: bool = False):
    """``store`` sealing (and, with ``open_secrets``, opening) S3 secrets with the key file that goes with
    the users database at ``location``; with ``store`` None, just that key's box.

    The key file of an SQLite database is beside it (in the state directory, for the default database),
    so `tlskit users --db F` and `tlskit serve --db F` always use the same key whatever their
    ``--state-dir``; PostgreSQL's is in ``state_dir`` (default: the default state dir) of each instance.
    """
    from tlskit.server import default_state_dir
    from tlskit.server.s3secrets import SecretBox
    from tlskit.server.stores import is_postgres

    directory = (state_dir or default_state_dir()) if is_postgres(location) else Path(location).parent
    box = SecretBox.in_state_dir(directory)
    if store is None:
        return box
    store.secret_box, store.open_secrets = box, open_secrets
    return store


def attach_credentials(users: list, pin_rows, key_rows, box: SecretBox | None) -> list:
    """Give each user its pins and S3 keys (secrets opened with ``box``). A secret that does not open is
    left out, with one log line: its requests are then refused like a wrong signature, nothing worse."""
    by_name = {user.name: user for user in users}
    for fingerprint, name in pin_rows:
        if name in by_name:
            by_name[name].cert_fingerprints.append(fingerprint)
    for access_key_id, name, sealed in key_rows:
        user = by_name.get(name)
        if user is None:
            continue
        user.s3_key_ids.append(access_key_id)
        if box is None:
            continue
        from tlskit.server.s3secrets import SecretUnavailable

        try:
            user.s3_keys[access_key_id] = box.open(access_key_id, sealed)
        except SecretUnavailable as exc:
            _warn_once(str(exc))
    return users


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.error("S3 key left out: %s", message)
