"""The network layer under every ACME operation: a connected :class:`Session` on the `acme` library.

The `acme` package gives typed protocol objects and signed requests; this module adds what a tool that
runs unattended needs on top: ``badNonce`` retried as often as the CA asks (Pebble rejects 5% of nonces
on purpose), short ``Retry-After`` waits honoured, and every failure turned into one
:class:`~tlskit.errors.NetworkError` line that carries the CA's problem document. What is done with a
session lives beside it: ``accounts`` (the account), ``orders`` (one order to the end, revocation),
``renewal`` (ARI).
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

from tlskit.errors import InputError, NetworkError, TlskitError, option

if TYPE_CHECKING:
    from acme import client as acme_client
    from acme import messages

LETSENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
NAMED_DIRECTORIES = {"letsencrypt": LETSENCRYPT, "letsencrypt-staging": LETSENCRYPT_STAGING}

# A retry costs one fresh nonce and one POST, no wait. With a CA that rejects half its nonces (Pebble's
# PEBBLE_WFE_NONCEREJECT=50) 10 tries failed one POST in 1024, a few issuances in a hundred; 30 fail one
# in 10^9. Still a bound: a CA that rejects every nonce ends in one error, not a loop.
_NONCE_RETRIES = 30
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
def ca_errors(directory: str, doing: str) -> Iterator[None]:
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
        raise NetworkError(f"cannot verify the TLS certificate of {directory}", first_reason(exc),
                           f"pass {option('directory_ca_file')} with the CA's certificate if it is a private CA") from None
    except requests.exceptions.Timeout:
        raise NetworkError(f"the ACME server {directory} timed out while {doing}",
                           fix="try again later") from None
    except requests.exceptions.ConnectionError as exc:
        raise NetworkError(f"cannot reach the ACME server {directory}", first_reason(exc),
                           f"check {option('directory')} and the network") from None
    except requests.exceptions.RequestException as exc:
        raise NetworkError(f"request to the ACME server {directory} failed", first_reason(exc),
                           f"check {option('directory')}") from None
    except acme_errors.ClientError as exc:
        raise NetworkError(f"unexpected answer from {directory} while {doing}", first_reason(exc),
                           f"check that {option('directory')} is an ACME directory URL") from None
    except acme_errors.Error as exc:
        raise NetworkError(f"ACME error while {doing}", first_reason(exc), "try again later") from None
    except ValueError as exc:  # JSON that is not what ACME says it must be
        raise NetworkError(f"unexpected answer from {directory} while {doing}", first_reason(exc),
                           f"check that {option('directory')} is an ACME directory URL") from None


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
        "externalAccountRequired": f"pass {option('eab_kid')} and {option('eab_hmac_key')} from your CA",
        "unauthorized": "check that the names point at this machine and the challenge can be answered",
        "connection": "check that the CA can reach this machine on the challenge port",
        "dns": "check the names' DNS records",
        "alreadyRevoked": "nothing to do",
        "badCSR": "check the CSR's names and key",
        "userActionRequired": "visit the CA's terms of service and agree",
        "invalidContact": f"check {option('email')}",
    }.get(problem.code or "", "check the request against the CA's message")


def first_reason(exc: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 error chain, e.g. 'Connection refused'."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "certificate verify failed",
                   "timed out", "No route to host", "Temporary failure in name resolution"):
        if marker in text:
            return marker
    return " ".join(text.split())[:200] or type(exc).__name__


# --- session -------------------------------------------------------------------------------------


@dataclass
class Session:
    """A connected client with its account: what every ACME operation needs."""

    client: acme_client.ClientV2
    directory: str
    account_uri: str | None = None
    directory_ca_file: str | None = None

    def offers(self, resource: str) -> bool:
        """Whether the CA's directory names ``resource`` (``renewalInfo``, ``keyChange``...)."""
        return resource in self.client.directory.to_partial_json()

    def profiles(self) -> dict[str, str]:
        """The certificate profiles the directory advertises (name -> description), maybe none."""
        meta = getattr(self.client.directory, "meta", None)
        profiles = getattr(meta, "profiles", None)
        try:
            return {str(name): str(text) for name, text in dict(profiles or {}).items()}
        except (TypeError, ValueError):  # not an object: the CA offers nothing usable
            return {}

    def post(self, url: str, payload: dict[str, Any] | None):
        """A signed POST of ``payload`` (None: POST-as-GET) with the account's key, badNonce retried."""
        client = self.client
        body = None if payload is None else JsonPayload(payload)
        return client.net.post(url, body, new_nonce_url=client.directory["newNonce"])


class JsonPayload:
    """A JSON object as the `acme` library's signer wants it (``{}`` says "validate now", RFC 8555 7.5.1)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def json_dumps(self, **kwargs: Any) -> str:
        import json

        return json.dumps(self.data)

    def to_partial_json(self) -> dict[str, Any]:
        return self.data


def connect(directory: str, account_key_pem: bytes, directory_ca_file: str | Path | None = None,
            timeout: float = 30) -> Session:
    """Fetch the directory with a client signing as ``account_key_pem`` (no account lookup yet)."""
    from acme import client as acme_client

    from tlskit import __version__

    jwk, alg = jwk_of(account_key_pem)
    verify: bool | str = str(directory_ca_file) if directory_ca_file else True
    if directory_ca_file and not Path(directory_ca_file).is_file():
        raise InputError(f"{option('directory_ca_file')} {directory_ca_file} does not exist", fix="check the path")
    net = _network_class()(key=jwk, alg=alg, verify_ssl=verify, user_agent=f"tlskit/{__version__}",
                           timeout=int(timeout))
    with ca_errors(directory, "fetching its directory"):
        acme_directory = acme_client.ClientV2.get_directory(directory, net)
        if not any(k == "newOrder" for k in acme_directory.to_partial_json()):
            raise NetworkError(f"{directory} is not an ACME directory", "it has no newOrder URL",
                               f"check {option('directory')}")
    return Session(acme_client.ClientV2(acme_directory, net), directory,
                   directory_ca_file=str(directory_ca_file) if directory_ca_file else None)


def jwk_of(key_pem: bytes):
    """The josepy key and signature algorithm of an account key (EC P-256/384/521 or RSA)."""
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


def new_account_key_pem(key_type: str = "ec:p256") -> bytes:
    from tlskit.keys import KeySpec, generate_key, private_key_pem

    spec = KeySpec.parse(key_type)
    if spec.algorithm == "ed25519":
        raise InputError("ACME account keys are EC or RSA", fix="use ec:p256 (default), ec:p384 or rsa:2048")
    return private_key_pem(generate_key(spec))
