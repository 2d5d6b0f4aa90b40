"""One certificate order driven to the end (RFC 8555 7.4): new order, challenges, finalize, download,
the preferred chain among the CA's alternates; and revocation.

Polling starts at 50 ms and doubles to 1 s (the `acme` library sleeps a fixed second per poll), and a
``Retry-After`` from the CA wins over that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tlskit.acme.challenges import Pending, Solver
from tlskit.acme.client import (_POLL_FIRST, _POLL_MAX, DEFAULT_TIMEOUT, Progress, Session, _problem_fix,
                                _retry_after_seconds, ca_errors, problem_text)
from tlskit.errors import InputError, NetworkError

if TYPE_CHECKING:
    from cryptography import x509


@dataclass
class Downloaded:
    """The chain the CA issued, as kept: leaf first."""

    fullchain_pem: str
    top_issuer: str | None          # issuer CN of the chain's last certificate (what --preferred-chain names)
    alternates: int                 # how many other chains the CA offered
    preferred_found: bool | None    # None: no preference given


def check_profile(session: Session, profile: str) -> None:
    """Refuse a profile the directory does not advertise, before any order is made."""
    offered = session.profiles()
    if not offered:
        raise InputError(f"the CA at {session.directory} offers no certificate profiles",
                         "its directory has no meta.profiles", "order without a profile")
    if profile not in offered:
        raise InputError(f"the CA offers no profile {profile!r}", f"it offers {', '.join(sorted(offered))}",
                         "choose one of those")


def order_certificate(session: Session, csr_pem: bytes, solver: Solver, *, profile: str | None = None,
                      replaces: str | None = None, preferred_chain: str | None = None,
                      timeout: float = DEFAULT_TIMEOUT, progress: Progress | None = None) -> Downloaded:
    """Run one order to the end and return the chain the CA issued (leaf first).

    ``replaces`` is the ARI certificate ID of the certificate this one renews (RFC 9773 section 5),
    sent only when the CA offers renewalInfo; ``preferred_chain`` picks among the alternate chains.
    """
    from acme import messages

    say = progress or (lambda text: None)
    deadline = time.monotonic() + timeout
    client, directory = session.client, session.directory
    if profile:
        check_profile(session, profile)
    with ca_errors(directory, "the order"):
        say("Creating the order")
        orderr = _new_order(session, csr_pem, profile, replaces if session.offers("renewalInfo") else None)
    pending = _pending_challenges(session, orderr, solver)
    try:
        if pending:
            say(f"Answering {len(pending)} {solver.challenge_type} challenge(s)")
            solver.present(pending)
            with ca_errors(directory, "the challenge"):
                for item in pending:
                    session.post(item.url, {})
                say("Waiting for the CA to validate")
                _poll_authorizations(session, orderr, deadline)
    finally:
        solver.cleanup(pending)
    with ca_errors(directory, "finalizing the order"):
        say("Finalizing the order")
        try:
            client.begin_finalization(orderr)
        except messages.Error as problem:
            if problem.code != "orderNotReady":
                raise
        body = _poll_order(session, orderr, deadline)
        say("Downloading the certificate")
        return _download(session, body.certificate, preferred_chain)


def _new_order(session: Session, csr_pem: bytes, profile: str | None, replaces: str | None):
    """newOrder with the identifiers of the CSR, plus ``profile`` and ``replaces`` when given."""
    from acme import messages

    from tlskit.acme.identifiers import ip_or_none, names_in_request
    from tlskit.files import parse_bundle

    client = session.client
    request = parse_bundle(csr_pem, "CSR").csrs[0]
    identifiers = [{"type": "ip" if ip_or_none(name) else "dns", "value": name} for name in names_in_request(request)]
    payload: dict = {"identifiers": identifiers}
    if profile:
        payload["profile"] = profile
    if replaces:
        payload["replaces"] = replaces
    response = session.post(client.directory["newOrder"], payload)
    body = messages.Order.from_json(response.json())
    authorizations = [client._authzr_from_response(client._post_as_get(url), uri=url) for url in body.authorizations]
    return messages.OrderResource(body=body, uri=response.headers.get("Location"), authorizations=authorizations,
                                  csr_pem=csr_pem)


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
            hint = "answer dns-01 (wildcards need it)" if body.wildcard else "choose another challenge"
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


def _poll_order(session: Session, orderr, deadline: float):
    from acme import messages

    client = session.client
    delay = _POLL_FIRST
    while True:
        response = client._post_as_get(orderr.uri)
        body = messages.Order.from_json(response.json())
        if body.status == messages.STATUS_VALID and body.certificate:
            return body
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
        raise NetworkError(f"the CA took too long {doing}", "timed out", "try again later, or allow more time")
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


# --- the certificate and its alternate chains ---------------------------------------------------


def _download(session: Session, url: str, preferred: str | None) -> Downloaded:
    """The default chain, or with ``preferred`` the first chain whose top certificate's issuer CN is
    that name (certbot's and lego's rule). Alternates come as ``Link: <url>;rel="alternate"`` (RFC
    8555 7.4.2) and are fetched only while the default does not match. No match keeps the default."""
    client = session.client
    response = client._post_as_get(url)
    default = response.text
    alternates = client._get_links(response, "alternate")
    default_top = top_issuer_cn(default)
    if not preferred:
        return Downloaded(default, default_top, len(alternates), None)
    if _same_cn(default_top, preferred):
        return Downloaded(default, default_top, len(alternates), True)
    for alternate in alternates:
        chain = client._post_as_get(alternate).text
        top = top_issuer_cn(chain)
        if _same_cn(top, preferred):
            return Downloaded(chain, top, len(alternates), True)
    return Downloaded(default, default_top, len(alternates), False)


def _same_cn(found: str | None, wanted: str) -> bool:
    return found is not None and found.strip().casefold() == wanted.strip().casefold()


def top_issuer_cn(chain_pem: str | bytes) -> str | None:
    """The issuer CN of the last certificate of a PEM chain (the root it leads to)."""
    from cryptography import x509

    from tlskit.names import common_name

    data = chain_pem.encode() if isinstance(chain_pem, str) else chain_pem
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise NetworkError("the CA sent no certificate", "the download was not a PEM chain",
                           "try again later or report it to the CA")
    return common_name(certificates[-1].issuer)


# --- revoke --------------------------------------------------------------------------------------


def revoke(session: Session, certificate: x509.Certificate, reason: int = 0) -> None:
    with ca_errors(session.directory, "the revocation"):
        session.client.revoke(certificate, reason)


__all__ = ["Downloaded", "check_profile", "order_certificate", "revoke", "top_issuer_cn"]
