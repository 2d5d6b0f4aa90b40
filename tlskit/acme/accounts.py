"""The account at a CA: find or register it, show it, change its contact, roll its key over
(RFC 8555 7.3.5), deactivate it (7.3.6). Its key and URL live under ``DIR/accounts/`` (see store.py).

Every function here raises TlskitError subclasses only: InputError (exit 2) for what the caller can
fix, NetworkError (exit 3) for the CA and the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlskit.acme.client import (LETSENCRYPT, LETSENCRYPT_STAGING, Session, ca_errors, connect, first_reason,
                                jwk_of, new_account_key_pem, resolve_directory)
from tlskit.acme.store import AccountFiles
from tlskit.errors import InputError, NetworkError, option


@dataclass
class AccountInfo:
    """What the CA says about an account, and where its key is kept."""

    directory: str
    uri: str
    status: str
    contact: list[str]
    key_type: str
    thumbprint: str              # RFC 7638 SHA-256 thumbprint, base64url: what the CA knows the key by
    path: Path
    orders: str | None = None
    previous_thumbprint: str | None = None   # after a rollover
    retired_to: Path | None = None           # after a deactivation
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"directory": self.directory, "uri": self.uri, "status": self.status, "contact": self.contact,
                "key_type": self.key_type, "thumbprint": self.thumbprint, "dir": str(self.path),
                "orders": self.orders, "previous_thumbprint": self.previous_thumbprint,
                "retired_to": str(self.retired_to) if self.retired_to else None}


# --- find or register ----------------------------------------------------------------------------


def ensure_account(session: Session, email: str | None, agree_tos: bool, known_uri: str | None = None,
                   eab_kid: str | None = None, eab_hmac_key: str | None = None) -> str:
    """Find the account of this key at the CA, or register it; returns the account URL.

    A saved account is looked up with ``onlyReturnExisting`` first, so a CA that forgot it (Pebble
    after a restart) gets the same key registered again instead of a confusing error.
    """
    from acme import errors as acme_errors
    from acme import messages

    client = session.client
    with ca_errors(session.directory, "the account"):
        if known_uri:
            found = find_account(session)
            if found:
                return found
        meta = getattr(client.directory, "meta", None)
        terms = getattr(meta, "terms_of_service", None) if meta is not None else None
        if terms and not agree_tos:
            raise InputError("the CA asks you to agree to its terms of service", terms,
                             f"read them and pass {option('agree_tos')}")
        eab = None
        if eab_kid or eab_hmac_key:
            if not (eab_kid and eab_hmac_key):
                raise InputError(f"{option('eab_kid')} and {option('eab_hmac_key')} go together",
                                 fix="pass both, as your CA gave them")
            try:
                eab = messages.ExternalAccountBinding.from_data(
                    account_public_key=client.net.key.public_key(), kid=eab_kid, hmac_key=eab_hmac_key,
                    directory=client.directory)
            except (ValueError, TypeError) as exc:
                raise InputError(f"{option('eab_hmac_key')} is not base64url", first_reason(exc),
                                 "copy the HMAC key exactly as your CA gave it") from None
        elif client.external_account_required():
            raise InputError("this CA requires external account binding",
                             fix=f"pass {option('eab_kid')} and {option('eab_hmac_key')} from your CA account")
        registration = messages.NewRegistration.from_data(
            email=email, terms_of_service_agreed=True if agree_tos or terms else None,
            external_account_binding=eab)
        try:
            regr = client.new_account(registration)
        except acme_errors.ConflictError as existing:
            return _use_account(session, existing.location)
        session.account_uri = regr.uri
        return regr.uri


def find_account(session: Session) -> str | None:
    """The URL of the account this session's key belongs to, or None if the CA knows no such account."""
    from acme import errors as acme_errors
    from acme import messages

    with ca_errors(session.directory, "the account lookup"):
        try:
            session.client.new_account(messages.NewRegistration(only_return_existing=True))
        except acme_errors.ConflictError as existing:
            return _use_account(session, existing.location)
        except messages.Error as problem:
            if problem.code != "accountDoesNotExist":
                raise
    return None


def _use_account(session: Session, uri: str) -> str:
    from acme import messages

    session.client.net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
    session.account_uri = uri
    return uri


def open_account(out_dir: Path, directory: str, ca_file: str | None, email: str | None, agree_tos: bool,
                 eab: tuple[str | None, str | None] = (None, None), cache: dict | None = None) -> Session:
    """A connected session with the account of ``out_dir`` at ``directory`` (made and saved if new).

    A given ``email`` that differs from the saved one updates the account's contact at the CA, so
    ``--email`` is never silently ignored. ``cache`` (directory -> Session) spares repeated lookups.
    """
    cache_key = (directory, ca_file)
    if cache is not None and cache_key in cache:
        return cache[cache_key]
    account = AccountFiles.for_directory(out_dir, directory)
    _finish_rollover(account, ca_file)
    key_pem = account.load_key_pem()
    fresh = key_pem is None
    if fresh:
        key_pem = new_account_key_pem()
    session = connect(directory, key_pem, ca_file)
    uri = ensure_account(session, email, agree_tos, known_uri=None if fresh else account.uri,
                         eab_kid=eab[0], eab_hmac_key=eab[1])
    account.directory_ca_file = ca_file
    if fresh or uri != account.uri:
        out_dir.mkdir(parents=True, exist_ok=True)
        account.save(key_pem if fresh else None, uri, email)
    elif email is not None and email != account.email:
        _update_contact(session, email)
        account.save(None, uri, email)
    if cache is not None:
        cache[cache_key] = session
    return session


def _finish_rollover(account: AccountFiles, ca_file: str | None) -> None:
    """A rollover that stopped between the CA's answer and the rename left ``account-key.next.pem``:
    if the CA knows the account by that key now, it becomes the key; otherwise it is dropped."""
    next_pem = account.load_next_key_pem()
    if next_pem is None or account.directory is None:
        return
    session = connect(account.directory, next_pem, ca_file)
    if find_account(session):
        account.promote_next_key()
    else:
        account.drop_next_key()


# --- account commands ----------------------------------------------------------------------------


def pick_account(out_dir: Path, directory: str | None) -> AccountFiles:
    """The account under ``out_dir`` at ``directory``; without one, the only account kept there."""
    out_dir = Path(out_dir)
    if directory:
        account = AccountFiles.for_directory(out_dir, resolve_directory(directory))
        if account.load_key_pem() is None and account.load_next_key_pem() is None:
            raise InputError(f"no account for {account.directory} under {out_dir}",
                             fix="issue a certificate first (it registers the account), or check the directory")
        return account
    accounts = AccountFiles.all(out_dir)
    if not accounts:
        raise InputError(f"no ACME account under {out_dir}", fix="issue a certificate first; it registers one")
    if len(accounts) > 1:
        known = ", ".join(a.directory or a.path.name for a in accounts)
        raise InputError(f"{out_dir} keeps accounts at several CAs", known, "name the CA's directory")
    account = accounts[0]
    if not account.directory:
        raise InputError(f"{account.path / 'account.json'} names no directory", fix="name the CA's directory")
    return account


def show_account(out_dir: str | Path, directory: str | None = None,
                 directory_ca_file: str | Path | None = None) -> AccountInfo:
    """The account as the CA sees it now (a POST-as-GET of its URL)."""
    account, session = _connected(out_dir, directory, directory_ca_file)
    return _info(session, account, _fetch(session))


def update_email(out_dir: str | Path, email: str | None, directory: str | None = None,
                 directory_ca_file: str | Path | None = None) -> AccountInfo:
    """Set the account's contact to ``email`` (None or "": no contact) at the CA, and keep it locally."""
    account, session = _connected(out_dir, directory, directory_ca_file)
    body = _update_contact(session, email or None)
    account.directory_ca_file = session.directory_ca_file
    account.save(None, session.account_uri or "", email or None)
    return _info(session, account, body)


def rollover_key(out_dir: str | Path, directory: str | None = None, directory_ca_file: str | Path | None = None,
                 key_type: str = "ec:p256") -> AccountInfo:
    """Replace the account key with a new one (RFC 8555 7.3.5); the account and its URL stay.

    The new key is saved next to the old one before the CA is asked, and becomes the account key
    once the CA agreed, so no moment exists where the only copy of the key the CA knows is in memory.
    """
    from acme import jws

    account, session = _connected(out_dir, directory, directory_ca_file)
    if not session.offers("keyChange"):
        raise NetworkError(f"the CA at {session.directory} offers no key rollover", "its directory has no keyChange",
                           "register a new account instead")
    old_thumbprint = _thumbprint(session.client.net.key)
    new_pem = new_account_key_pem(key_type)
    new_jwk, new_alg = jwk_of(new_pem)
    url = session.client.directory["keyChange"]
    inner = jws.JWS.sign(json.dumps({"account": session.account_uri,
                                     "oldKey": session.client.net.key.public_key().to_partial_json()}).encode(),
                         key=new_jwk, alg=new_alg, nonce=None, url=url)
    account.save_next_key(new_pem)
    try:
        with ca_errors(session.directory, "the key rollover"):
            session.post(url, json.loads(inner.json_dumps()))
    except BaseException:
        account.drop_next_key()
        raise
    account.promote_next_key()
    session.client.net.key, session.client.net.alg = new_jwk, new_alg
    info = _info(session, account, _fetch(session))
    info.previous_thumbprint = old_thumbprint
    return info


def deactivate(out_dir: str | Path, directory: str | None = None,
               directory_ca_file: str | Path | None = None) -> AccountInfo:
    """Deactivate the account at the CA for good (RFC 8555 7.3.6) and move its files to accounts/retired/.

    The CA refuses every later request signed by that key; the next ``issue`` registers a new account.
    Certificates already issued stay valid.
    """
    account, session = _connected(out_dir, directory, directory_ca_file)
    with ca_errors(session.directory, "the deactivation"):
        body = session.post(session.account_uri, {"status": "deactivated"}).json()
    info = _info(session, account, body)
    info.retired_to = account.retire()
    return info


def _connected(out_dir: str | Path, directory: str | None,
               directory_ca_file: str | Path | None) -> tuple[AccountFiles, Session]:
    account = pick_account(Path(out_dir), directory)
    ca_file = str(Path(directory_ca_file).resolve()) if directory_ca_file else account.directory_ca_file
    _finish_rollover(account, ca_file)
    key_pem = account.load_key_pem()
    if key_pem is None:
        raise InputError(f"{account.key_path} is missing", fix="issue a certificate again; it registers a new account")
    session = connect(account.directory or LETSENCRYPT, key_pem, ca_file)
    if not find_account(session):
        raise NetworkError(f"the CA at {session.directory} knows no account for {account.key_path}",
                           "it was deactivated, or the CA forgot it",
                           "issue a certificate again; it registers a new account")
    return account, session


def _fetch(session: Session) -> dict[str, Any]:
    with ca_errors(session.directory, "reading the account"):
        return session.post(session.account_uri, None).json()


def _update_contact(session: Session, email: str | None) -> dict[str, Any]:
    with ca_errors(session.directory, "the contact update"):
        return session.post(session.account_uri, {"contact": [f"mailto:{email}"] if email else []}).json()


def _info(session: Session, account: AccountFiles, body: dict[str, Any]) -> AccountInfo:
    key = session.client.net.key
    return AccountInfo(
        directory=session.directory, uri=session.account_uri or "", status=str(body.get("status", "?")),
        contact=[str(c) for c in body.get("contact") or []], key_type=_key_type(key), thumbprint=_thumbprint(key),
        path=account.path, orders=body.get("orders"))


def _thumbprint(jwk) -> str:
    import josepy as jose

    return jose.b64encode(jwk.thumbprint()).decode()


def _key_type(jwk) -> str:
    import josepy as jose

    # jwk.key is josepy's comparable wrapper: isinstance() on it does not see the cryptography type.
    if isinstance(jwk, jose.JWKEC):
        return {256: "ec:p256", 384: "ec:p384", 521: "ec:p521"}.get(jwk.key.curve.key_size, "ec")
    return f"rsa:{jwk.key.key_size}"


def staging_of(directory: str) -> str:
    """Where a dry run orders: Let's Encrypt's staging CA for its production CA, else the CA itself."""
    return LETSENCRYPT_STAGING if directory == LETSENCRYPT else directory


__all__ = ["AccountInfo", "ensure_account", "find_account", "open_account", "pick_account", "show_account",
           "update_email", "rollover_key", "deactivate", "staging_of"]
