"""Driving an RFC 8555 CA with the `acme` library: account, order, challenges, finalize, download, revoke.

The `acme` package gives typed protocol objects and signed requests; this module adds what a tool that
runs unattended needs on top: ``badNonce`` retried as often as the CA asks (Pebble rejects 5% of nonces
on purpose), ``Retry-After`` honoured, prompt polling (50 ms doubling to 1 s, not acme's fixed 1 s
sleeps), and every failure turned into one :class:`~tlskit.errors.NetworkError` line that carries the
CA's problem document.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlskit.acme.challenges import Pending, Solver
from tlskit.errors import InputError, NetworkError, TlskitError

if TYPE_CHECKING:
    from acme import client as acme_client
    from acme import messages

LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
NAMED_DIRECTORIES = {"letsencrypt": LETSENCRYPT, "letsencrypt-staging": LETSENCRYPT_STAGING}

_NONCE_RETRIES = 10
_MAX_RETRY_AFTER = 60.0        # longer waits than this are the CA saying "not now": fail instead
_POLL_FIRST, _POLL_MAX = 0.05, 1.0
DEFAULT_TIMEOUT = 120.0

Progress = Callable[[str], None]


def resolve_directory(value: str | None) -> str:
    """``None`` -> Let's Encrypt; ``letsencrypt-staging`` -> its URL; any https URL as given."""
    if not value:
        return LETSENCRYPT
    if value.lower() in NAMED_DIRECTORIES:
        return NAMED_DIRECTORIES[value.lower()]
    if not value.startswith(("https://", "http://")):
        raise InputError(f"unknown ACME directory {value!r}",
                         fix=f"give a URL or one of: {', '.join(NAMED_DIRECTORIES)}")
    return value


# --- the network layer ---------------------------------------------------------------------------


def _network_class():
    from acme import client as acme_client
    from acme import messages

    class Network(acme_client.ClientNetwork):
        """acme's ClientNetwork, retrying badNonce until it works and waiting out short Retry-After."""

        last_response = None

        def _send_request(self, method, url, *args, **kwargs):
            response = super()._send_request(method, url, *args, **kwargs)
            self.last_response = response
            return response

        def get(self, url, *args, **kwargs):
            for attempt in range(3):
                try:
                    return super().get(url, *args, **kwargs)
                except messages.Error:
                    wait = _retry_after_seconds(self.last_response)
                    if wait is None or attempt == 2:
                        raise
                    time.sleep(wait)
            raise AssertionError("unreachable")

        def post(self, *args, **kwargs):
            waits = 0
            for attempt in range(_NONCE_RETRIES):
                try:
                    return self._post_once(*args, **kwargs)
                except messages.Error as error:
                    # RFC 8555 6.5: a badNonce answer is retried with a fresh nonce, as often as needed.
                    if error.code == "badNonce" and attempt < _NONCE_RETRIES - 1:
                        continue
                    wait = _retry_after_seconds(self.last_response)
                    if wait is not None and waits < 2 and error.code in ("rateLimited", "serverInternal", None):
                        waits += 1
                        time.sleep(wait)
                        continue
                    raise
            raise AssertionError("unreachable")

    return Network


def _retry_after_seconds(response, default: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta or HTTP date), capped; ``default`` when absent."""
    if response is None:
        return default
    value = response.headers.get("Retry-After")
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        seconds = (when - dt.datetime.now(dt.timezone.utc)).total_seconds()
    if seconds > _MAX_RETRY_AFTER:
        return None if default is None else _MAX_RETRY_AFTER
    return max(seconds, 0.0)


@contextlib.contextmanager
def _ca_errors(directory: str, doing: str) -> Iterator[None]:
    """Turn whatever the network or the CA throws while ``doing`` into one NetworkError line."""
    import requests
    from acme import errors as acme_errors
    from acme import messages

    try:
        yield
    except TlskitError:
        raise
    except messages.Error as problem:
        raise NetworkError(f"the CA refused {doing}", problem_text(problem), _problem_fix(problem)) from None
    except requests.exceptions.SSLError as exc:
        raise NetworkError(f"cannot verify the TLS certificate of {directory}", _first_reason(exc),
                           "pass --directory-ca-file with the CA's certificate if it is a private CA") from None
    except requests.exceptions.Timeout:
        raise NetworkError(f"the ACME server {directory} timed out while {doing}",
                           fix="try again later") from None
    except requests.exceptions.ConnectionError as exc:
        raise NetworkError(f"cannot reach the ACME server {directory}", _first_reason(exc),
                           "check --directory and the network") from None
    except requests.exceptions.RequestException as exc:
        raise NetworkError(f"request to the ACME server {directory} failed", _first_reason(exc),
                           "check --directory") from None
    except acme_errors.ClientError as exc:
        raise NetworkError(f"unexpected answer from {directory} while {doing}", _first_reason(exc),
                           "check that --directory is an ACME directory URL") from None
    except acme_errors.Error as exc:
        raise NetworkError(f"ACME error while {doing}", _first_reason(exc), "try again later") from None
    except ValueError as exc:  # JSON that is not what ACME says it must be
        raise NetworkError(f"unexpected answer from {directory} while {doing}", _first_reason(exc),
                           "check that --directory is an ACME directory URL") from None


def problem_text(problem: messages.Error) -> str:
    """An RFC 7807 problem document in one line: ``type: detail`` (+ subproblems)."""
    typ = str(problem.typ or "about:blank")
    text = f"{typ}: {problem.detail or problem.title or problem.description or 'no detail'}"
    for sub in problem.subproblems or ():
        who = f"{sub.identifier.value}: " if sub.identifier else ""
        text += f"; {who}{sub.detail or sub.typ}"
    return " ".join(text.split())


def _problem_fix(problem: messages.Error) -> str:
    return {
        "rateLimited": "wait and try again later (the CA's rate limit)",
        "rejectedIdentifier": "the CA will not issue for that name; check the names",
        "unsupportedIdentifier": "check the names",
        "externalAccountRequired": "pass --eab-kid and --eab-hmac-key from your CA",
        "unauthorized": "check that the names point at this machine and the challenge can be answered",
        "connection": "check that the CA can reach this machine on the challenge port",
        "dns": "check the names' DNS records",
        "alreadyRevoked": "nothing to do",
        "badCSR": "check the CSR's names and key",
        "userActionRequired": "visit the CA's terms of service and agree",
        "invalidContact": "check --email",
    }.get(problem.code or "", "check the request against the CA's message")


def _first_reason(exc: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 error chain, e.g. 'Connection refused'."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "certificate verify failed",
                   "timed out", "No route to host", "Temporary failure in name resolution"):
        if marker in text:
            return marker
    return " ".join(text.split())[:200] or type(exc).__name__


# --- account -------------------------------------------------------------------------------------


@dataclass
class Session:
    """A connected client with its account: what every ACME operation needs."""

    client: acme_client.ClientV2
    directory: str
    account_uri: str | None = None


def connect(directory: str, account_key_pem: bytes, directory_ca_file: str | Path | None = None,
            timeout: float = 30) -> Session:
    """Fetch the directory with a client signing as ``account_key_pem`` (no account lookup yet)."""
    from acme import client as acme_client

    from tlskit import __version__

    jwk, alg = _jwk(account_key_pem)
    verify: bool | str = str(directory_ca_file) if directory_ca_file else True
    if directory_ca_file and not Path(directory_ca_file).is_file():
        raise InputError(f"--directory-ca-file {directory_ca_file} does not exist", fix="check the path")
    net = _network_class()(key=jwk, alg=alg, verify_ssl=verify, user_agent=f"tlskit/{__version__}",
                           timeout=int(timeout))
    with _ca_errors(directory, "fetching its directory"):
        acme_directory = acme_client.ClientV2.get_directory(directory, net)
        if not any(k == "newOrder" for k in acme_directory.to_partial_json()):
            raise NetworkError(f"{directory} is not an ACME directory", "it has no newOrder URL",
                               "check --directory")
    return Session(acme_client.ClientV2(acme_directory, net), directory)


def _jwk(key_pem: bytes):
    import josepy as jose
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {256: jose.ES256, 384: jose.ES384, 521: jose.ES512}[key.curve.key_size]
        return jose.JWKEC(key=key), alg
    if isinstance(key, rsa.RSAPrivateKey):
        return jose.JWKRSA(key=key), jose.RS256
    raise InputError("the account key is neither EC nor RSA", fix="remove it to let tlskit make a new one")


def new_account_key_pem() -> bytes:
    from tlskit.keys import KeySpec, generate_key, private_key_pem

    return private_key_pem(generate_key(KeySpec.parse("ec:p256")))


def ensure_account(session: Session, email: str | None, agree_tos: bool, known_uri: str | None = None,
                   eab_kid: str | None = None, eab_hmac_key: str | None = None) -> str:
    """Find the account of this key at the CA, or register it; returns the account URL.

    A saved account is looked up with ``onlyReturnExisting`` first, so a CA that forgot it (Pebble
    after a restart) gets the same key registered again instead of a confusing error.
    """
    from acme import errors as acme_errors
    from acme import messages

    client = session.client
    with _ca_errors(session.directory, "the account"):
        if known_uri:
            try:
                client.new_account(messages.NewRegistration(only_return_existing=True))
            except acme_errors.ConflictError as existing:
                return _use_account(session, existing.location)
            except messages.Error as problem:
                if problem.code != "accountDoesNotExist":
                    raise
        meta = getattr(client.directory, "meta", None)
        terms = getattr(meta, "terms_of_service", None) if meta is not None else None
        if terms and not agree_tos:
            raise InputError("the CA asks you to agree to its terms of service", terms,
                             "read them and pass --agree-tos")
        eab = None
        if eab_kid or eab_hmac_key:
            if not (eab_kid and eab_hmac_key):
                raise InputError("--eab-kid and --eab-hmac-key go together", fix="pass both, as your CA gave them")
            try:
                eab = messages.ExternalAccountBinding.from_data(
                    account_public_key=client.net.key.public_key(), kid=eab_kid, hmac_key=eab_hmac_key,
                    directory=client.directory)
            except (ValueError, TypeError) as exc:
                raise InputError("--eab-hmac-key is not base64url", _first_reason(exc),
                                 "copy the HMAC key exactly as your CA gave it") from None
        elif client.external_account_required():
            raise InputError("this CA requires external account binding",
                             fix="pass --eab-kid and --eab-hmac-key from your CA account")
        registration = messages.NewRegistration.from_data(
            email=email, terms_of_service_agreed=True if agree_tos or terms else None,
            external_account_binding=eab)
        try:
            regr = client.new_account(registration)
        except acme_errors.ConflictError as existing:
            return _use_account(session, existing.location)
        session.account_uri = regr.uri
        return regr.uri


def _use_account(session: Session, uri: str) -> str:
    from acme import messages

    session.client.net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
    session.account_uri = uri
    return uri


# --- order ---------------------------------------------------------------------------------------


class _Ready:
    """The empty JSON object a client POSTs to a challenge URL to say "validate now" (RFC 8555 7.5.1)."""

    def json_dumps(self, **kwargs: Any) -> str:
        return "{}"

    def to_partial_json(self) -> dict[str, Any]:
        return {}


def order_certificate(session: Session, csr_pem: bytes, solver: Solver, *, timeout: float = DEFAULT_TIMEOUT,
                      progress: Progress | None = None) -> str:
    """Run one order to the end and return the PEM chain the CA issued (leaf first)."""
    from acme import messages

    say = progress or (lambda text: None)
    deadline = time.monotonic() + timeout
    client, directory = session.client, session.directory
    with _ca_errors(directory, "the order"):
        say("Creating the order")
        orderr = client.new_order(csr_pem)
    pending = _pending_challenges(session, orderr, solver)
    try:
        if pending:
            say(f"Answering {len(pending)} {solver.challenge_type} challenge(s)")
            solver.present(pending)
            with _ca_errors(directory, "the challenge"):
                for item in pending:
                    client.net.post(item.url, _Ready(), new_nonce_url=client.directory["newNonce"])
                say("Waiting for the CA to validate")
                _poll_authorizations(session, orderr, deadline)
    finally:
        solver.cleanup(pending)
    with _ca_errors(directory, "finalizing the order"):
        say("Finalizing the order")
        try:
            client.begin_finalization(orderr)
        except messages.Error as problem:
            if problem.code != "orderNotReady":
                raise
        body, response = _poll_order(session, orderr, deadline, say)
        say("Downloading the certificate")
        certificate = client._post_as_get(body.certificate)
        return certificate.text


def _pending_challenges(session: Session, orderr, solver: Solver) -> list[Pending]:
    import josepy as jose
    from acme import messages

    thumbprint = jose.b64encode(session.client.net.key.thumbprint()).decode()
    pending = []
    for authzr in orderr.authorizations:
        body = authzr.body
        name = body.identifier.value
        if body.status == messages.STATUS_VALID:
            continue  # the CA remembers a recent validation for this account
        if body.status != messages.STATUS_PENDING:
            raise NetworkError(f"the CA's authorization for {name} is {body.status}",
                               fix="try again; the CA will start a new one")
        offered = [c for c in body.challenges if c.to_partial_json().get("type") == solver.challenge_type]
        if not offered:
            kinds = ", ".join(sorted({c.to_partial_json().get("type", "?") for c in body.challenges}))
            hint = "pass --dns-hook (wildcards need dns-01)" if body.wildcard else "choose another challenge"
            raise NetworkError(f"the CA offers no {solver.challenge_type} challenge for {name}",
                               f"it offers {kinds}", hint)
        challb = offered[0]
        token = challb.to_partial_json()["token"]
        pending.append(Pending(name=name, wildcard=bool(body.wildcard), challenge_type=solver.challenge_type,
                               token=token, key_authorization=f"{token}.{thumbprint}", url=challb.uri))
    return pending


def _poll_authorizations(session: Session, orderr, deadline: float) -> None:
    """Poll every authorization until valid; the first invalid one fails with the CA's reason."""
    from acme import messages

    client = session.client
    waiting = [a.uri for a in orderr.authorizations if a.body.status != messages.STATUS_VALID]
    delay = _POLL_FIRST
    while waiting:
        retry_after = None
        for url in list(waiting):
            response = client._post_as_get(url)
            authz = messages.Authorization.from_json(response.json())
            if authz.status == messages.STATUS_VALID:
                waiting.remove(url)
            elif authz.status in (messages.STATUS_PENDING, messages.STATUS_PROCESSING):
                retry_after = _retry_after_seconds(response, retry_after)
            else:
                raise NetworkError(f"the CA could not validate {authz.identifier.value}", _challenge_error(authz),
                                   _validation_fix(authz))
        if waiting:
            delay = _sleep_before_poll(delay, retry_after, deadline, "validating the challenges")


def _poll_order(session: Session, orderr, deadline: float, say: Progress):
    from acme import messages

    client = session.client
    delay = _POLL_FIRST
    while True:
        response = client._post_as_get(orderr.uri)
        body = messages.Order.from_json(response.json())
        if body.status == messages.STATUS_VALID and body.certificate:
            return body, response
        if body.status == messages.STATUS_INVALID:
            why = problem_text(body.error) if body.error else "the order became invalid"
            raise NetworkError("the CA did not issue the certificate", why, "try again")
        if body.status == messages.STATUS_READY:
            client.begin_finalization(orderr)
        delay = _sleep_before_poll(delay, _retry_after_seconds(response), deadline, "issuing the certificate")


def _sleep_before_poll(delay: float, retry_after: float | None, deadline: float, doing: str) -> float:
    """Sleep until the next poll: the CA's Retry-After if it sent one, else a short doubling delay."""
    wait = retry_after if retry_after is not None else delay
    left = deadline - time.monotonic()
    if left <= 0:
        raise NetworkError(f"the CA took too long {doing}", "timed out", "try again later, or raise --timeout")
    time.sleep(min(wait, left))
    return min(delay * 2, _POLL_MAX)


def _challenge_error(authz) -> str:
    for challenge in authz.challenges:
        if challenge.error is not None:
            return problem_text(challenge.error)
    return f"authorization {authz.status}"


def _validation_fix(authz) -> str:
    for challenge in authz.challenges:
        if challenge.error is not None:
            return _problem_fix(challenge.error)
    return "check that the challenge can be answered"


# --- revoke --------------------------------------------------------------------------------------


def revoke(session: Session, certificate_der: bytes, reason: int = 0) -> None:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(certificate_der)
    with _ca_errors(session.directory, "the revocation"):
        session.client.revoke(cert, reason)

