"""The per-request gate: trusted IPs -> credentials -> method privilege -> limits.

Each step either lets the request through or produces a :class:`Denial` (status, JSON body, headers).
The gate never raises for anything a client sends.

Method privileges count every method a request asks for: its own, and the one a method-override header
(``X-HTTP-Method-Override``, ``X-HTTP-Method``, ``X-Method-Override``) names, since Rails, Laravel and
Express apps behind the proxy obey those. A GET,POST user's POST that asks for DELETE is a 403.

``Gate(limiter=...)`` takes any object with

- ``acquire(user: str, limits: Limits) -> Decision`` (:class:`tlskit.server.limits.Limiter`), where
  ``limits`` are the user's own values, or the server's ``--max-requests``/``--max-concurrent``
  defaults when the user's are unset (0 means unlimited);
- ``release(user: str, decision)``, called exactly once after an admitted request finishes (even on
  error), with the request's own Decision.

``acquire`` may return an awaitable instead (Redis decides over the network); a Decision with status
503 (the store cannot decide and ``--limits-fail closed``) is answered 503 with its Retry-After.

Without a limiter everything is admitted. Refusals become 429 with the decision's headers
(``Retry-After`` among them); admitted requests carry the decision's headers too (RateLimit-*).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
from dataclasses import dataclass, field

from tlskit.server.auth import Authenticator, Refused, SignedRequest
from tlskit.server.credentials import CredentialReader, Malformed
from tlskit.server import bodies
from tlskit.server.limits import Decision, Limits
from tlskit.server.trusted_proxy import address_key
from tlskit.server.metrics import METRICS_PATH
from tlskit.server.users import METRICS_PRIVILEGE, User

METHOD_OVERRIDES = (b"x-http-method-override", b"x-http-method", b"x-method-override")


@dataclass
class Denial:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    reason: str = ""     # for the log, never echoed with secrets
    user: str | None = None   # set when the user was authenticated (403 method, 429), for the log


@dataclass
class Passed:
    user: User
    headers: list[tuple[bytes, bytes]]   # to add to the response (limit headers)
    limited: bool                        # release() is owed when the request ends
    source: str = ""                     # how the user authenticated ("basic", "bearer", "certificate"...)
    decision: Decision | None = None     # the limiter's, for /api/me
    scope: dict | None = None            # replaces the request's scope (a body credential was taken out)
    receive: object = None               # replaces the request's receive (a body already read)


def _json(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


class Gate:
    def __init__(self, authenticator: Authenticator, reader: CredentialReader, networks, realm: str = "tlskit",
                 limiter=None, default_limits: Limits = Limits()) -> None:
        self.authenticator = authenticator
        self.reader = reader
        self.networks = tuple(networks)
        self.limiter = limiter
        self.default_limits = default_limits
        challenge = f'Basic realm="{realm}", charset="UTF-8"'.encode()
        self._unauthorized = Denial(401, _json({"error": "unauthorized",
                                                "detail": "missing, wrong or malformed credentials"}),
                                    [(b"www-authenticate", challenge)], "credentials")
        # The same answer (a client learns nothing from it); the reasons differ for the metrics.
        self._missing = dataclasses.replace(self._unauthorized, reason="missing credentials")
        self._malformed = dataclasses.replace(self._unauthorized, reason="malformed credentials")
        self._forbidden_ip = Denial(403, _json({"error": "forbidden", "detail": "client address not allowed"}),
                                    reason="address")
        self._unavailable = Denial(503, _json({"error": "unavailable",
                                               "detail": "credentials cannot be checked right now; retry"}),
                                   [(b"retry-after", b"5")], "users database")
        self._allowed_ips: dict[str, bool] = {}

    def ip_allowed(self, ip: str) -> bool:
        known = self._allowed_ips.get(ip)
        if known is None:
            try:
                address = ipaddress.ip_address(ip.partition("%")[0])
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                    address = address.ipv4_mapped
                known = any(address.version == n.version and address in n for n in self.networks)
            except ValueError:
                known = False
            if len(self._allowed_ips) > 65536:
                self._allowed_ips.clear()
            self._allowed_ips[ip] = known
        return known

    def reconfigure(self, networks=None, default_limits: Limits | None = None) -> None:
        """New allowed networks or default limits (a SIGHUP reload), for the requests that come next."""
        if networks is not None:
            self.networks = tuple(networks)
            self._allowed_ips = {}
        if default_limits is not None:
            self.default_limits = default_limits

    def limits_for(self, user: User) -> Limits:
        return Limits.resolve(user.max_requests, user.max_concurrent, self.default_limits)

    async def admit(self, scope: dict, ip: str, receive=None) -> Passed | Denial:
        if not self.ip_allowed(ip):
            return self._forbidden_ip
        credential = self.reader.read(scope["headers"], scope["query_string"], scope.get("tlskit.client_cert"))
        body = None
        if credential is None and self.reader.allow_query_token and receive is not None and bodies.is_form(scope):
            taken = await self._form_credential(scope, receive)
            if isinstance(taken, Denial):
                return taken
            credential, scope, body = taken
        if credential is None:
            return self._missing
        if isinstance(credential, Malformed):
            return self._malformed
        signed = None
        if credential.s3 is not None:
            if credential.s3.version == 4 and receive is not None and self.authenticator.is_signed_key(credential):
                if bodies.header(scope, b"x-amz-content-sha256") is None and bodies.has_body(scope):
                    body = await self._read(receive)
                    if isinstance(body, Denial):
                        return body
            signed = SignedRequest(scope["method"], scope.get("raw_path") or scope["path"].encode(),
                                   scope["query_string"], scope["headers"],
                                   body if body is not None else (None if bodies.has_body(scope) else b""),
                                   datetime.datetime.now(datetime.timezone.utc))
        user = await self.authenticator.authenticate(credential, address_key(ip), signed)
        if isinstance(user, Refused):
            return self._refusal(user)
        passed = await self._privileges_and_limits(scope, user)
        if isinstance(passed, Passed):
            passed.source = credential.source
            if body is not None:
                passed.scope = scope
                passed.receive = bodies.Replay(body, receive)
        return passed

    async def _read(self, receive) -> bytes | Denial:
        try:
            return await bodies.read_body(receive)
        except bodies.TooLarge:
            return Denial(413, _json({"error": "payload too large",
                                      "detail": f"the body is over {bodies.MAX_BODY} bytes"}), reason="body")
        except bodies.ClientGone:
            return Denial(400, _json({"error": "bad request", "detail": "the client went away"}), reason="body")

    async def _form_credential(self, scope, receive):
        """CData's form post: ``authtoken`` as a form field; the other fields go on to the handler."""
        from tlskit.server import query
        from tlskit.server.credentials import Credential

        body = await self._read(receive)
        if isinstance(body, Denial):
            return body
        try:
            token, fields = bodies.form_token(body)
        except query.AmbiguousQuery:
            return self._unauthorized
        if not token:
            return None, scope, body
        new_scope, new_body = bodies.without_body_credential(scope, fields)
        return Credential(token, None, "form"), new_scope, new_body

    async def _privileges_and_limits(self, scope, user) -> Passed | Denial:
        method = scope["method"]
        if scope["path"] == METRICS_PATH and METRICS_PRIVILEGE in user.methods and method in ("GET", "HEAD"):
            return Passed(user, [], False)       # a scrape needs no GET privilege and spends no quota
        for name, value in scope["headers"]:
            if name in METHOD_OVERRIDES:
                overridden = value.decode("latin-1").strip().upper()
                if not user.may(overridden):
                    return Denial(403, _json({"error": "forbidden", "detail": f"user may not {overridden}",
                                              "allowed": sorted(user.methods)}), reason="method", user=user.name)
        if not user.may(method):
            return Denial(403, _json({"error": "forbidden", "detail": f"user may not {method}",
                                      "allowed": sorted(user.methods)}), reason="method", user=user.name)
        if self.limiter is None:
            return Passed(user, [], False)
        decision = self.limiter.acquire(user.name, self.limits_for(user))
        if decision.__class__ is not Decision:
            decision = await decision        # a shared store (Redis) decides over the network
        headers = decision.headers()
        if not decision.allowed:
            if decision.status == 503:
                return Denial(503, _json({"error": "unavailable", "detail": "limits cannot be checked right now; "
                                          "retry", "retry_after": decision.retry_after}), headers, "limits store",
                              user.name)
            return Denial(429, _json({"error": "too many requests", "retry_after": decision.retry_after}),
                          headers, "limit", user.name)
        return Passed(user, headers, True, decision=decision)

    def _refusal(self, refused: Refused) -> Denial:
        if refused.status == 401:
            return self._unauthorized
        if refused.status == 503:
            return self._unavailable
        return Denial(429, _json({"error": "too many requests", "detail": refused.reason,
                                  "retry_after": refused.retry_after}),
                      [(b"retry-after", str(refused.retry_after).encode())], refused.reason)

    def release(self, passed: Passed) -> None:
        if passed.limited:
            self.limiter.release(passed.user.name, passed.decision)
