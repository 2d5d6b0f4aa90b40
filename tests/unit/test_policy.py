"""The request gate: allowed addresses -> credentials -> method privilege (method overrides too) -> limits.

The gate is driven directly with ASGI scopes; the authenticator is a stand-in that answers by secret and
records what it was asked, so each step's exact answer (status, body, headers, log reason) is checked.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json

import pytest

from tlskit.server import bodies
from tlskit.server.auth import Refused
from tlskit.server.client_certs import ClientCertificate
from tlskit.server.credentials import Credential, CredentialReader
from tlskit.server.limits import Decision, Limits, MemoryLimiter
from tlskit.server.policy import METHOD_OVERRIDES, Denial, Gate, Passed
from tlskit.server.users import User

ALICE = User("alice", frozenset({"GET", "POST"}))
ADMIN = User("admin", frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"}), max_requests=2, max_concurrent=0)
LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
UNAUTHORIZED_BODY = {"error": "unauthorized", "detail": "missing, wrong or malformed credentials"}
CHALLENGE = (b"www-authenticate", b'Basic realm="tlskit", charset="UTF-8"')
V4_AUTHORIZATION = (b"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, "
                    b"SignedHeaders=host;x-amz-date, Signature=" + b"0" * 64)


class StandInAuthenticator:
    """Answers by the credential's secret; records every question (credential, address, signed request)."""

    def __init__(self, answers: dict[str, User | Refused], signed_keys: tuple[str, ...] = ()) -> None:
        self.answers = answers
        self.signed_keys = set(signed_keys)
        self.asked: list[tuple[Credential, str, object]] = []

    async def authenticate(self, credential, address="", request=None):
        self.asked.append((credential, address, request))
        return self.answers.get(credential.secret, Refused(401, "credentials"))

    def is_signed_key(self, credential) -> bool:
        return credential.secret in self.signed_keys


class RecordingLimiter(MemoryLimiter):
    """The in-process limiter on a stopped clock, recording what the gate asks of it."""

    def __init__(self) -> None:
        super().__init__(clock=lambda: 1000.0)
        self.asked: list[tuple[str, Limits]] = []
        self.released: list[str] = []
        self.released_decisions: list[Decision | None] = []

    def acquire(self, user, limits):
        self.asked.append((user, limits))
        return super().acquire(user, limits)

    def release(self, user, decision=None):
        self.released.append(user)
        self.released_decisions.append(decision)
        super().release(user, decision)


def make_gate(answers=None, *, networks=LOOPBACK, limiter=None, default_limits=Limits(), realm="tlskit",
              allow_query_token=False, signed_keys=()) -> Gate:
    authenticator = StandInAuthenticator({"alice-token": ALICE, "admin-token": ADMIN} if answers is None else answers,
                                         signed_keys)
    reader = CredentialReader(("X-API-Key",), allow_query_token)
    return Gate(authenticator, reader, networks, realm, limiter, default_limits)


def scope(method="GET", headers=(), query=b"", path="/api", **extra) -> dict:
    return {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": query,
            "headers": list(headers), **extra}


def bearer(token: str) -> tuple[bytes, bytes]:
    return (b"authorization", b"Bearer " + token.encode())


def admit(gate: Gate, request: dict, ip: str = "127.0.0.1", receive=None):
    return asyncio.run(gate.admit(request, ip, receive))


def messages(*chunks: dict):
    """An ASGI receive that hands out ``chunks`` in order, recording how many were taken."""
    given = []

    async def receive():
        given.append(chunks[len(given)])
        return given[-1]

    receive.given = given
    return receive


def body_of(denial: Denial) -> dict:
    return json.loads(denial.body)


# --- addresses -------------------------------------------------------------------------------------


def test_only_allowed_networks_get_in_and_the_refusal_says_why():
    gate = make_gate()
    denial = admit(gate, scope(headers=[bearer("alice-token")]), ip="192.0.2.1")
    assert isinstance(denial, Denial)
    assert (denial.status, denial.headers, denial.reason, denial.user) == (403, [], "address", None)
    assert denial.body == b'{"error":"forbidden","detail":"client address not allowed"}'
    assert gate.authenticator.asked == []  # refused before any credential is looked at
    assert isinstance(admit(gate, scope(headers=[bearer("alice-token")]), ip="127.8.9.10"), Passed)


def test_addresses_match_networks_as_clients_arrive():
    gate = make_gate(networks=[ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fe80::/10")])
    assert gate.ip_allowed("10.1.2.3")
    assert not gate.ip_allowed("11.0.0.1")
    assert gate.ip_allowed("::ffff:10.9.9.9")        # an IPv4 client on a dual-stack socket
    assert not gate.ip_allowed("::ffff:11.0.0.1")
    assert gate.ip_allowed("fe80::1%eth0")           # a link-local address with its zone
    assert gate.ip_allowed("fe80::1%eth0%1")         # everything after the first % is the zone
    assert not gate.ip_allowed("fec0::1%eth0")
    assert not gate.ip_allowed("2001:db8::1")
    assert gate.ip_allowed("not-an-address") is False
    assert gate.ip_allowed("not-an-address") is False  # remembered as a plain no
    assert gate.ip_allowed("") is False
    v6_only = make_gate(networks=[ipaddress.ip_network("::/0")])
    assert not v6_only.ip_allowed("192.0.2.1")  # ::/0 is every IPv6 address, not every address
    assert v6_only.ip_allowed("2001:db8::1")
    assert not make_gate(networks=[]).ip_allowed("127.0.0.1")


def test_address_answers_are_remembered_and_the_memory_is_bounded():
    gate = make_gate(networks=[ipaddress.ip_network("10.0.0.0/8")])
    assert gate.ip_allowed("10.0.0.1") and not gate.ip_allowed("192.0.2.1")
    gate.networks = ()
    assert gate.ip_allowed("10.0.0.1") and not gate.ip_allowed("192.0.2.1")  # answered from memory
    for i in range(70000):
        gate.ip_allowed(f"192.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
        assert len(gate._allowed_ips) <= 65537
    assert not gate.ip_allowed("10.0.0.1")  # forgotten when the memory was cleared: asked again


# --- credentials -----------------------------------------------------------------------------------


def test_defaults_are_the_tlskit_realm_and_no_limits():
    authenticator = StandInAuthenticator({"alice-token": ALICE})
    gate = Gate(authenticator, CredentialReader(), LOOPBACK)
    assert admit(gate, scope()).headers == [CHALLENGE]
    assert gate.limiter is None and gate.default_limits == Limits()
    assert admit(gate, scope(headers=[bearer("alice-token")])) == Passed(ALICE, [], False, "bearer")


def test_a_verified_client_certificate_is_a_credential():
    gate = make_gate({"ab12": ALICE})
    certificate = ClientCertificate(b"", "ab12", "CN=alice", "alice")
    passed = admit(gate, scope(**{"tlskit.client_cert": certificate}))
    assert isinstance(passed, Passed) and passed.source == "certificate"
    assert gate.authenticator.asked[0][0] == Credential("ab12", "alice", "certificate")


def test_a_query_token_is_read_only_when_allowed():
    request = scope(query=b"x=1&authtoken=alice-token")
    assert admit(make_gate(), request).status == 401
    passed = admit(make_gate(allow_query_token=True), request)
    assert isinstance(passed, Passed) and passed.source == "query"



def test_no_credential_is_a_401_with_the_basic_challenge():
    gate = make_gate()
    denial = admit(gate, scope())
    assert (denial.status, denial.headers, denial.reason, denial.user) == (401, [CHALLENGE], "missing credentials",
                                                                           None)
    assert denial.body == b'{"error":"unauthorized","detail":"missing, wrong or malformed credentials"}'
    realm = admit(make_gate(realm="files"), scope())
    assert realm.headers == [(b"www-authenticate", b'Basic realm="files", charset="UTF-8"')]


def test_malformed_and_wrong_credentials_get_the_same_401():
    gate = make_gate()
    missing = admit(gate, scope())
    malformed = admit(gate, scope(headers=[(b"authorization", b"Digest nonsense")]))
    wrong = admit(gate, scope(headers=[bearer("nobody")]))
    # The client learns nothing from which; only the log (and the metrics) tell them apart.
    for denial in (missing, malformed, wrong):
        assert (denial.status, body_of(denial), denial.headers, denial.user) == (401, UNAUTHORIZED_BODY,
                                                                                 [CHALLENGE], None)
    assert [d.reason for d in (missing, malformed, wrong)] == ["missing credentials", "malformed credentials",
                                                               "credentials"]
    assert [credential.secret for credential, _, _ in gate.authenticator.asked] == ["nobody"]


def test_the_authenticators_refusals_become_answers():
    gate = make_gate({"busy": Refused(503, "users database unavailable", 5),
                      "slow": Refused(429, "too many failed logins", 17)})
    unavailable = admit(gate, scope(headers=[bearer("busy")]))
    assert (unavailable.status, unavailable.headers, unavailable.reason) == (503, [(b"retry-after", b"5")],
                                                                              "users database")
    assert body_of(unavailable) == {"error": "unavailable", "detail": "credentials cannot be checked right now; retry"}
    throttled = admit(gate, scope(headers=[bearer("slow")]))
    assert (throttled.status, throttled.headers, throttled.reason) == (429, [(b"retry-after", b"17")],
                                                                        "too many failed logins")
    assert throttled.body == b'{"error":"too many requests","detail":"too many failed logins","retry_after":17}'


def test_the_authenticator_is_asked_with_the_clients_address_block():
    gate = make_gate(networks=[ipaddress.ip_network("::/0"), ipaddress.ip_network("0.0.0.0/0")])
    passed = admit(gate, scope(headers=[bearer("alice-token")]), ip="2001:db8:1:2:3:4:5:6")
    assert isinstance(passed, Passed) and passed.user is ALICE
    admit(gate, scope(headers=[(b"x-api-key", b"alice-token")]), ip="192.0.2.7")
    (first, address, signed), (second, address_v4, _) = gate.authenticator.asked
    assert (first, address, signed) == (Credential("alice-token", None, "bearer"), "2001:db8:1:2::/64", None)
    assert (second.source, address_v4) == ("x-api-key", "192.0.2.7")


def test_a_passed_request_says_who_and_how_and_owes_no_release_without_a_limiter():
    gate = make_gate()
    passed = admit(gate, scope(headers=[bearer("alice-token")]))
    assert passed == Passed(ALICE, [], False, "bearer")
    gate.release(passed)  # nothing to release: must not touch a limiter


# --- method privileges -----------------------------------------------------------------------------


def test_a_method_the_user_lacks_is_a_403_that_lists_what_they_may():
    gate = make_gate()
    denial = admit(gate, scope("DELETE", [bearer("alice-token")]))
    assert (denial.status, denial.headers, denial.reason, denial.user) == (403, [], "method", "alice")
    assert denial.body == b'{"error":"forbidden","detail":"user may not DELETE","allowed":["GET","POST"]}'
    for method in ("GET", "POST", "HEAD", "OPTIONS"):
        assert isinstance(admit(gate, scope(method, [bearer("alice-token")])), Passed), method


@pytest.mark.parametrize("header", METHOD_OVERRIDES)
def test_a_method_override_counts_as_the_method_it_names(header):
    gate = make_gate()
    denial = admit(gate, scope("POST", [bearer("alice-token"), (header, b" delete ")]))
    assert (denial.status, denial.reason, denial.user) == (403, "method", "alice")
    assert body_of(denial) == {"error": "forbidden", "detail": "user may not DELETE", "allowed": ["GET", "POST"]}
    assert isinstance(admit(gate, scope("POST", [bearer("alice-token"), (header, b"get")])), Passed)


def test_every_override_header_is_checked_and_the_own_method_too():
    assert METHOD_OVERRIDES == (b"x-http-method-override", b"x-http-method", b"x-method-override")
    gate = make_gate()
    headers = [bearer("alice-token"), (b"x-http-method", b"POST"), (b"x-method-override", b"PUT")]
    assert body_of(admit(gate, scope("GET", headers)))["detail"] == "user may not PUT"
    # An allowed override does not make a forbidden own method allowed.
    denial = admit(gate, scope("PATCH", [bearer("alice-token"), (b"x-http-method-override", b"GET")]))
    assert body_of(denial)["detail"] == "user may not PATCH"
    # Not an override header: ignored.
    assert isinstance(admit(gate, scope("GET", [bearer("alice-token"), (b"x-method", b"DELETE")])), Passed)


def test_an_override_is_read_as_latin_1_bytes():
    gate = make_gate()
    denial = admit(gate, scope("POST", [bearer("alice-token"), (b"x-http-method-override", b"G\xc9T")]))
    assert body_of(denial)["detail"] == "user may not G\u00c9T"


# --- limits ----------------------------------------------------------------------------------------


def test_admitted_requests_carry_the_limiters_headers_and_owe_one_release():
    limiter = RecordingLimiter()
    gate = make_gate(limiter=limiter, default_limits=Limits(max_requests=10, max_concurrent=3))
    passed = admit(gate, scope(headers=[bearer("alice-token")]))
    assert isinstance(passed, Passed) and passed.limited
    assert passed.headers == [(b"ratelimit-limit", b"10"), (b"ratelimit-remaining", b"9"),
                              (b"ratelimit-reset", b"3600"), (b"ratelimit-policy", b"10;w=3600")]
    assert passed.decision == Decision(True, limit=10, remaining=9, reset=3600)
    assert limiter.asked == [("alice", Limits(10, 3))]  # the server's defaults for a user without their own
    assert limiter.in_flight("alice") == 1
    gate.release(passed)
    assert limiter.released == ["alice"] and limiter.in_flight("alice") == 0
    assert limiter.released_decisions == [passed.decision]  # a shared store finds the request's slot by it


def test_a_users_own_limits_replace_the_defaults():
    limiter = RecordingLimiter()
    gate = make_gate(limiter=limiter, default_limits=Limits(max_requests=10, max_concurrent=3))
    assert gate.limits_for(ADMIN) == Limits(2, 0)
    assert gate.limits_for(ALICE) == Limits(10, 3)
    assert gate.limits_for(User("half", frozenset({"GET"}), max_requests=None, max_concurrent=1)) == Limits(10, 1)
    for _ in range(2):
        gate.release(admit(gate, scope(headers=[bearer("admin-token")])))
    denial = admit(gate, scope(headers=[bearer("admin-token")]))
    assert (denial.status, denial.reason, denial.user) == (429, "limit", "admin")
    assert denial.body == b'{"error":"too many requests","retry_after":3600}'
    assert denial.headers == [(b"ratelimit-limit", b"2"), (b"ratelimit-remaining", b"0"),
                              (b"ratelimit-reset", b"3600"), (b"ratelimit-policy", b"2;w=3600"),
                              (b"retry-after", b"3600")]
    assert limiter.asked == [("admin", Limits(2, 0))] * 3
    assert limiter.released == ["admin", "admin"]  # the refused request owes nothing


def test_a_forbidden_method_spends_no_quota():
    limiter = RecordingLimiter()
    gate = make_gate(limiter=limiter, default_limits=Limits(max_requests=1))
    assert admit(gate, scope("DELETE", [bearer("alice-token")])).status == 403
    assert limiter.asked == []
    assert isinstance(admit(gate, scope("GET", [bearer("alice-token")])), Passed)


# --- credentials in the body -----------------------------------------------------------------------

FORM_TYPE = (b"content-type", b"application/x-www-form-urlencoded; charset=utf-8")


def test_a_form_posts_authtoken_lets_it_in_and_the_handler_gets_the_other_fields():
    gate = make_gate(allow_query_token=True)
    form = scope("POST", [FORM_TYPE, (b"content-length", b"28")])
    receive = messages({"type": "http.request", "body": b"authtoken=alice-token&", "more_body": True},
                       {"type": "http.request", "body": b"a=1&b=", "more_body": False},
                       {"type": "http.disconnect"})
    passed = admit(gate, form, receive=receive)
    assert isinstance(passed, Passed) and passed.user is ALICE and passed.source == "form"
    assert gate.authenticator.asked[0][0] == Credential("alice-token", None, "form")
    assert passed.scope["headers"] == [FORM_TYPE, (b"content-length", b"6")]
    assert passed.scope["tlskit.form"] == [("a", "1"), ("b", "")]
    assert asyncio.run(passed.receive()) == {"type": "http.request", "body": b"a=1&b=", "more_body": False}
    # After the body, the handler hears from the client itself (a disconnect, say).
    assert asyncio.run(passed.receive()) == {"type": "http.disconnect"}


def test_a_form_without_a_token_or_with_two_is_a_401():
    gate = make_gate(allow_query_token=True)
    form = scope("POST", [FORM_TYPE, (b"content-length", b"3")])
    denial = admit(gate, form, receive=messages({"type": "http.request", "body": b"a=1"}))
    assert (denial.status, denial.headers) == (401, [CHALLENGE])
    two = messages({"type": "http.request", "body": b"authtoken=alice-token&authtoken=x"})
    assert admit(gate, form, receive=two).status == 401
    assert gate.authenticator.asked == []


def test_a_form_body_is_read_only_when_query_tokens_are_allowed_and_none_other_came():
    receive = messages({"type": "http.request", "body": b"authtoken=alice-token"})
    form = scope("POST", [FORM_TYPE, (b"content-length", b"21")])
    assert admit(make_gate(), form, receive=receive).status == 401
    assert receive.given == []
    with_bearer = scope("POST", [FORM_TYPE, bearer("alice-token")])
    passed = admit(make_gate(allow_query_token=True), with_bearer, receive=receive)
    assert isinstance(passed, Passed) and passed.source == "bearer" and passed.scope is None
    assert receive.given == []
    not_a_form = scope("POST", [(b"content-type", b"text/plain"), (b"content-length", b"21")])
    assert admit(make_gate(allow_query_token=True), not_a_form, receive=receive).status == 401
    assert receive.given == []
    assert admit(make_gate(allow_query_token=True), form, receive=None).status == 401


def test_an_unreadable_form_body_is_answered_without_asking_who():
    gate = make_gate(allow_query_token=True)
    form = scope("POST", [FORM_TYPE, (b"content-length", b"2000000")])
    huge = messages({"type": "http.request", "body": b"a" * bodies.MAX_BODY, "more_body": True},
                    {"type": "http.request", "body": b"a", "more_body": False})
    too_large = admit(gate, form, receive=huge)
    assert (too_large.status, too_large.headers, too_large.reason) == (413, [], "body")
    assert body_of(too_large) == {"error": "payload too large", "detail": "the body is over 1048576 bytes"}
    gone = admit(gate, form, receive=messages({"type": "http.disconnect"}))
    assert (gone.status, gone.reason) == (400, "body")
    assert gone.body == b'{"error":"bad request","detail":"the client went away"}'
    assert gate.authenticator.asked == []


def test_a_signed_s3_key_gets_the_body_it_signed():
    gate = make_gate({"AKID": ADMIN}, signed_keys=("AKID",))
    request = scope("PUT", [(b"authorization", V4_AUTHORIZATION), (b"content-length", b"5")], query=b"acl",
                    path="/bucket/key")
    request["raw_path"] = b"/bucket/k%65y"
    before = datetime.datetime.now(datetime.timezone.utc)
    passed = admit(gate, request, receive=messages({"type": "http.request", "body": b"hello"}))
    after = datetime.datetime.now(datetime.timezone.utc)
    assert isinstance(passed, Passed) and passed.source == "s3"
    signed = gate.authenticator.asked[0][2]
    assert (signed.method, signed.raw_path, signed.query, signed.headers, signed.body) == (
        "PUT", b"/bucket/k%65y", b"acl", request["headers"], b"hello")
    assert before <= signed.now <= after and signed.now.tzinfo is datetime.timezone.utc
    assert passed.scope is request
    assert asyncio.run(passed.receive()) == {"type": "http.request", "body": b"hello", "more_body": False}


def test_a_signed_request_without_raw_path_signs_the_path():
    gate = make_gate({"AKID": ADMIN}, signed_keys=("AKID",))
    request = scope("GET", [(b"authorization", V4_AUTHORIZATION)], path="/bucket/ké")
    del request["raw_path"]
    assert isinstance(admit(gate, request, receive=messages()), Passed)
    signed = gate.authenticator.asked[0][2]
    assert (signed.raw_path, signed.body) == ("/bucket/ké".encode(), b"")  # no body: the empty one is signed


def test_an_s3_body_is_not_read_when_its_hash_is_declared_or_the_key_is_a_token():
    declared = [(b"authorization", V4_AUTHORIZATION), (b"content-length", b"5"),
                (b"x-amz-content-sha256", b"UNSIGNED-PAYLOAD")]
    for gate, headers in [(make_gate({"AKID": ADMIN}, signed_keys=("AKID",)), declared),
                          (make_gate({"AKID": ADMIN}), declared[:2])]:
        receive = messages({"type": "http.request", "body": b"hello"})
        passed = admit(gate, scope("PUT", headers), receive=receive)
        assert isinstance(passed, Passed) and passed.scope is None and passed.receive is None
        assert receive.given == []
        assert gate.authenticator.asked[0][2].body is None  # a body is coming, but the signature needs none
    version2 = make_gate({"AKID": ADMIN}, signed_keys=("AKID",))
    receive = messages({"type": "http.request", "body": b"hello"})
    passed = admit(version2, scope("PUT", [(b"authorization", b"AWS AKID:c2lnbmF0dXJl"),
                                           (b"content-length", b"5")]), receive=receive)
    assert isinstance(passed, Passed) and receive.given == []
    assert version2.authenticator.asked[0][2].body is None
    no_receive = make_gate({"AKID": ADMIN}, signed_keys=("AKID",))
    assert isinstance(admit(no_receive, scope("PUT", declared[:2]), receive=None), Passed)


def test_an_unreadable_signed_body_is_answered_without_asking_who():
    gate = make_gate({"AKID": ADMIN}, signed_keys=("AKID",))
    request = scope("PUT", [(b"authorization", V4_AUTHORIZATION), (b"transfer-encoding", b"chunked")])
    denial = admit(gate, request, receive=messages({"type": "http.disconnect"}))
    assert (denial.status, denial.reason) == (400, "body")
    assert gate.authenticator.asked == []


def test_a_limiter_may_answer_later():
    class NetworkLimiter(RecordingLimiter):
        def acquire(self, user, limits):
            decision = super().acquire(user, limits)

            async def later():
                await asyncio.sleep(0)
                return decision

            return later()

    gate = make_gate(limiter=NetworkLimiter(), default_limits=Limits(max_requests=1))
    passed = admit(gate, scope(headers=[bearer("alice-token")]))
    assert isinstance(passed, Passed) and passed.decision == Decision(True, limit=1, remaining=0, reset=3600)
    assert admit(gate, scope(headers=[bearer("alice-token")])).status == 429


def test_a_limits_store_that_cannot_decide_is_a_503():
    class DownLimiter(RecordingLimiter):
        def acquire(self, user, limits):
            self.asked.append((user, limits))
            return Decision(False, retry_after=5, reason="limits store unavailable", limit=limits.max_requests,
                            status=503)

    gate = make_gate(limiter=DownLimiter(), default_limits=Limits(max_requests=3))
    denial = admit(gate, scope(headers=[bearer("alice-token")]))
    assert (denial.status, denial.reason, denial.user) == (503, "limits store", "alice")
    assert denial.body == (b'{"error":"unavailable","detail":"limits cannot be checked right now; retry",'
                           b'"retry_after":5}')
    assert denial.headers == [(b"ratelimit-limit", b"3"), (b"ratelimit-remaining", b"0"),
                              (b"ratelimit-reset", b"0"), (b"ratelimit-policy", b"3;w=3600"),
                              (b"retry-after", b"5")]


def test_reconfigure_changes_the_networks_and_default_limits_for_the_next_requests():
    limiter = RecordingLimiter()
    gate = make_gate(limiter=limiter, default_limits=Limits(max_requests=5))
    assert gate.ip_allowed("127.0.0.1") and not gate.ip_allowed("192.0.2.1")
    gate.reconfigure(networks=[ipaddress.ip_network("192.0.2.0/24")])
    assert gate.networks == (ipaddress.ip_network("192.0.2.0/24"),)
    assert not gate.ip_allowed("127.0.0.1") and gate.ip_allowed("192.0.2.1")  # nothing answered from before
    assert gate.default_limits == Limits(max_requests=5)
    gate.reconfigure(default_limits=Limits(max_concurrent=1))
    assert gate.default_limits == Limits(max_concurrent=1) and gate.ip_allowed("192.0.2.1")
    gate.reconfigure()
    assert gate.default_limits == Limits(max_concurrent=1) and gate.ip_allowed("192.0.2.1")
    admit(gate, scope(headers=[bearer("alice-token")]), ip="192.0.2.9")
    assert limiter.asked == [("alice", Limits(0, 1))]


def test_a_metrics_scraper_needs_no_get_privilege_and_spends_no_quota():
    scraper = User("prometheus", frozenset({"METRICS"}), max_requests=1)
    limiter = RecordingLimiter()
    gate = make_gate({"scrape": scraper, "alice-token": ALICE}, limiter=limiter)
    for method in ("GET", "HEAD", "GET"):
        passed = admit(gate, scope(method, [bearer("scrape")], path="/metrics"))
        assert passed == Passed(scraper, [], False, "bearer"), method
    assert limiter.asked == []
    assert body_of(admit(gate, scope("POST", [bearer("scrape")], path="/metrics")))["detail"] == "user may not POST"
    assert body_of(admit(gate, scope("GET", [bearer("scrape")], path="/api")))["detail"] == "user may not GET"
    # A user without the privilege reads /metrics only as any GET, counted.
    passed = admit(gate, scope("GET", [bearer("alice-token")], path="/metrics"))
    assert isinstance(passed, Passed) and passed.limited and limiter.asked == [("alice", Limits())]
