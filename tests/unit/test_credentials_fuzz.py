"""Fuzzing the parsers of the newer credential forms in-process, through the server's own gate: SigV4 and
V2 ``Authorization`` headers (signed mode, against a real key pair), CData form bodies, and the fields of
client certificates. Whatever arrives, the answer is the 401 a wrong password gets, or the user it
proves; never an exception."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tlskit.server.auth import Authenticator
from tlskit.server.credentials import CredentialReader
from tlskit.server.policy import Denial, Gate, Passed
from tlskit.server.trusted_proxy import parse_networks
from tlskit.server.users import User, hash_password

pytestmark = pytest.mark.filterwarnings("ignore:Attribute.s length:UserWarning")
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY_ID = "TLKAFUZZFUZZFUZZFUZZ"
SECRET = "fuzz-secret-fuzz-secret-fuzz-secret-0123"


class _Users:
    """A users store as the Authenticator reads one: alice (password, a key pair) and certuser (a pin)."""

    location = "fuzz"

    def __init__(self) -> None:
        self.users = [User("alice", frozenset({"GET", "POST"}), password_hash=hash_password("right"),
                           s3_keys={KEY_ID: SECRET}, s3_key_ids=[KEY_ID]),
                      User("certuser", frozenset({"GET"}), cert_fingerprints=["ab" * 32])]

    def set_busy_timeout(self, milliseconds: int) -> None:
        pass

    def changed(self) -> bool:
        return False

    def all(self):
        return self.users

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def gate():
    loop = asyncio.new_event_loop()
    authenticator = Authenticator(_Users())
    built = Gate(authenticator, CredentialReader(("X-API-Key",), allow_query_token=True),
                 parse_networks(["127.0.0.1"]))
    built.loop = loop
    built.wrong = _admit(built, _scope(headers=[(b"authorization", b"Basic YWxpY2U6d3Jvbmc=")]))   # alice:wrong
    assert built.wrong.status == 401
    yield built
    authenticator.close()
    loop.close()


def _scope(method: str = "GET", headers=(), client_cert=None, query: bytes = b"") -> dict:
    return {"type": "http", "method": method, "path": "/api/products/1", "raw_path": b"/api/products/1",
            "query_string": query, "headers": [(b"host", b"localhost:8443"), *headers],
            "tlskit.client_cert": client_cert}


def _admit(gate, scope, body: bytes | None = None):
    async def receive():
        return {"type": "http.request", "body": body or b"", "more_body": False}

    return gate.loop.run_until_complete(gate.admit(scope, "127.0.0.1", receive if body is not None else None))


def _is_wrong_password(gate, outcome) -> bool:
    return (isinstance(outcome, Denial) and outcome.status == 401 and outcome.body == gate.wrong.body
            and outcome.headers == gate.wrong.headers)


# --- SigV4 and V2 headers ------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=40)
HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)


def sigv4_header() -> st.SearchStrategy[str]:
    key = st.one_of(st.just(KEY_ID), TEXT)
    date = st.one_of(st.just(dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")), st.from_regex(r"[0-9]{8}", fullmatch=True),
                     TEXT)
    scope = st.tuples(key, date, TEXT, TEXT, st.sampled_from(["aws4_request", "aws4", ""])).map("/".join)
    signed = st.lists(st.sampled_from(["host", "x-amz-date", "Host", "", "x-amz-content-sha256", "content-type"]),
                      max_size=5).map(";".join)
    signature = st.one_of(HEX64, TEXT)
    parts = st.tuples(scope, signed, signature).map(
        lambda p: f"AWS4-HMAC-SHA256 Credential={p[0]}, SignedHeaders={p[1]}, Signature={p[2]}")
    return st.one_of(parts, st.tuples(st.just("AWS4-HMAC-SHA256 "), TEXT).map("".join),
                     st.tuples(st.sampled_from(["AWS ", "AWS4-HMAC-SHA256 ", "AWS4 "]), st.just(KEY_ID), TEXT).map("".join))


@FAST
@given(header=sigv4_header(), amz_date=st.one_of(st.none(), TEXT, st.from_regex(r"[0-9]{8}T[0-9]{6}Z", fullmatch=True)),
       content_sha=st.one_of(st.none(), HEX64, st.just("UNSIGNED-PAYLOAD"), TEXT))
@example(header=f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20260101/us-east-1/s3/aws4_request, "
                "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64, amz_date="20260101T000000Z", content_sha=None)
@example(header=f"AWS {KEY_ID}:bm90IGEgc2lnbmF0dXJl", amz_date=None, content_sha=None)
def test_any_s3_authorization_header_is_a_wrong_password_or_nothing_worse(gate, header, amz_date, content_sha):
    headers = [(b"authorization", header.encode("latin-1"))]
    if amz_date is not None:
        headers.append((b"x-amz-date", amz_date.encode("latin-1")))
    if content_sha is not None:
        headers.append((b"x-amz-content-sha256", content_sha.encode("latin-1")))
    assert _is_wrong_password(gate, _admit(gate, _scope(headers=headers), b""))


def test_a_good_signature_still_passes_so_the_fuzz_above_means_something(gate):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url="https://localhost:8443/api/products/1")
    SigV4Auth(Credentials(KEY_ID, SECRET), "execute-api", "eu-west-1").add_auth(request)
    headers = [(name.lower().encode(), value.encode() if isinstance(value, str) else value)
               for name, value in request.headers.items() if name.lower() != "host"]
    outcome = _admit(gate, _scope(headers=headers), b"")
    assert isinstance(outcome, Passed) and outcome.user.name == "alice"


# --- CData form bodies -----------------------------------------------------------------------------

FORM_CHARS = st.sampled_from(list("=&%+;@ authokenAUTH0129\x00é"))


@FAST
@given(body=st.one_of(st.text(FORM_CHARS, max_size=120).map(lambda t: t.encode("utf-8")), st.binary(max_size=120),
                      st.lists(st.tuples(st.sampled_from(["authtoken", "@authtoken", "AuthToken", "name", ""]), TEXT),
                               max_size=5).map(lambda kv: "&".join(f"{k}={v}" for k, v in kv).encode("latin-1"))))
@example(body=b"authtoken=a&authtoken=b")
@example(body=b"authtoken=%ZZ")
def test_any_form_body_is_a_wrong_password_or_nothing_worse(gate, body):
    scope = _scope("POST", headers=[(b"content-type", b"application/x-www-form-urlencoded"),
                                    (b"content-length", str(len(body)).encode())])
    assert _is_wrong_password(gate, _admit(gate, scope, body))


# --- client certificate fields ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def issuer():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


CN = st.one_of(st.text(max_size=70), st.sampled_from(["alice", "certuser", "alice\x00", " alice", "ALICE", "a:b"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(common_names=st.lists(CN, max_size=3), organisation=st.one_of(st.none(), st.text(min_size=1, max_size=30)))
def test_any_certificate_subject_is_its_user_or_a_wrong_password(gate, issuer, common_names, organisation):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    from tlskit.server.client_certs import ClientCertificate

    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False) for cn in common_names]
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name(attributes)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(x509.Name([]) if not attributes else name)
            .public_key(issuer.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(issuer, hashes.SHA256()))
    presented = ClientCertificate.from_der(cert.public_bytes(Encoding.DER))
    outcome = _admit(gate, _scope(client_cert=presented))
    first = common_names[0] if common_names else None
    if first == "alice":      # unpinned: any verified certificate naming alice is alice
        assert isinstance(outcome, Passed) and outcome.user.name == "alice"
    else:                      # certuser is pinned to another fingerprint; the rest are nobody
        assert _is_wrong_password(gate, outcome), (common_names, outcome)


# --- what users type: pins and revocation reasons -----------------------------------------------------

@FAST
@given(text=st.one_of(st.text(max_size=300), st.text("0123456789abcdefABCDEF:", max_size=100)))
@example(text="x" * 300)
def test_a_pin_is_a_fingerprint_or_one_input_error(text):
    from tlskit.errors import InputError
    from tlskit.server.users_credentials import pin_of

    try:
        pin = pin_of(text)
    except InputError as exc:
        assert "\n" not in exc.message
        return
    assert len(pin.fingerprint) == 64 and set(pin.fingerprint) <= set("0123456789abcdef")


@FAST
@given(text=st.text(max_size=40))
def test_a_revocation_reason_is_known_or_one_input_error(text):
    from tlskit.errors import InputError
    from tlskit.revocation.local_ca import REASONS, parse_reason

    try:
        assert parse_reason(text) in REASONS
    except InputError as exc:
        assert "use one of" in exc.message
