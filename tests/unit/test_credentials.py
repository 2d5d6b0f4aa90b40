"""Which credential a request presents, read from raw headers: the split of Basic and the precedence order."""

from __future__ import annotations

import base64

import pytest

from tlskit.server.client_certs import ClientCertificate
from tlskit.server.credentials import MAX_PASSWORD_BYTES, Credential, CredentialReader, Malformed, parse_authorization
from tlskit.server.s3auth import S3Authorization


def basic(text: str) -> bytes:
    return b"Basic " + base64.b64encode(text.encode("utf-8"))


@pytest.mark.parametrize("pair, name, password", [
    ("alice:pa:ss:word", "alice", "pa:ss:word"),   # RFC 7617: the user-id cannot contain a colon
    ("alice::", "alice", ":"),
    ("bob:", "bob", ""),
    ("carol:x:", "carol", "x:"),
    ("élise:mot de passe", "élise", "mot de passe"),
])
def test_basic_splits_at_the_first_colon(pair, name, password):
    assert parse_authorization(basic(pair)) == Credential(password, name, "basic")


@pytest.mark.parametrize("pair", ["no-colon", ":password-without-user", ""])
def test_basic_without_a_user_is_malformed(pair):
    assert isinstance(parse_authorization(basic(pair)), Malformed)


CERT = ClientCertificate(der=b"", fingerprint="ab" * 32, subject="CN=dave", common_name="dave")


def read(headers, query=b"", cert=None, **options):
    reader = CredentialReader(key_headers=("X-API-Key", "X-Custom-Key"), **options)
    return reader.read([(k.lower(), v) for k, v in headers], query, cert)


def test_authorization_wins_over_key_headers_query_and_certificate():
    got = read([(b"X-API-Key", b"from-header"), (b"Authorization", b"Bearer from-authorization")],
               b"authtoken=from-query", CERT, allow_query_token=True)
    assert got == Credential("from-authorization", None, "bearer")


def test_key_header_wins_over_query_and_certificate():
    got = read([(b"X-Custom-Key", b"from-custom")], b"authtoken=from-query", CERT, allow_query_token=True)
    assert got == Credential("from-custom", None, "x-custom-key")


def test_first_key_header_sent_wins_when_several_are_sent():
    got = read([(b"X-Custom-Key", b"first"), (b"X-API-Key", b"second")])
    assert got == Credential("first", None, "x-custom-key")


def test_query_token_wins_over_certificate_only_when_allowed():
    assert read([], b"authtoken=from-query", CERT, allow_query_token=True) == Credential("from-query", None, "query")
    assert read([], b"authtoken=from-query", CERT) == Credential(CERT.fingerprint, "dave", "certificate")


def test_certificate_is_the_last_resort_and_nothing_is_none():
    assert read([(b"X-Other", b"x")], b"", CERT) == Credential(CERT.fingerprint, "dave", "certificate")
    assert read([], b"") is None


SIGNATURE = "0" * 64
V4 = (f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request, "
      f"SignedHeaders=host;x-amz-date, Signature={SIGNATURE}")


def reason(found) -> str:
    assert isinstance(found, Malformed), found
    return found.reason


# ---- Authorization ------------------------------------------------------------------------------

def test_the_scheme_is_read_without_case_and_whitespace_around_the_parts_is_ignored():
    encoded = base64.b64encode(b"alice:pw")
    assert parse_authorization(b"  bAsIc   " + encoded + b" \t") == Credential("pw", "alice", "basic")
    assert parse_authorization(b"Bearer   tlk_x  ") == Credential("tlk_x", None, "bearer")
    assert parse_authorization(b"TOKEN tlk_y") == Credential("tlk_y", None, "token")


@pytest.mark.parametrize("value, why", [
    (b"Basic", "no credentials after the scheme"),
    (b"Basic    ", "no credentials after the scheme"),
    (b"Bearer", "no credentials after the scheme"),
    (b"", "no credentials after the scheme"),
    (b"Basic not-base64!", "Basic credentials are not base64 of UTF-8"),
    (b"Basic YWxpY2U6!cHc=", "Basic credentials are not base64 of UTF-8"),   # lenient base64 would skip the '!'
    (b"Basic YWxpY2U6cHc", "Basic credentials are not base64 of UTF-8"),     # padding missing
    (b"Basic " + base64.b64encode(b"alice:\xff"), "Basic credentials are not base64 of UTF-8"),
    (basic("alice"), "Basic credentials have no user:password"),
    (basic(":password"), "Basic credentials have no user:password"),
    (basic(""), "no credentials after the scheme"),
    (b"Bearer t\xc3\xa9", "token is not ASCII"),
    (b"Token \xff", "token is not ASCII"),
    (b"Digest username=alice", "unsupported Authorization scheme"),
    (b"Basicx YWxpY2U6cHc=", "unsupported Authorization scheme"),
    (b"AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request",
     "S3-style header: AWS4-HMAC-SHA256 needs Credential, SignedHeaders and Signature"),
    (b"AWS AKIDEXAMPLE", "S3-style header: AWS needs KEY:SIGNATURE"),
    (b"aws AKIDEXAMPLE:sig", "S3-style header: not an S3-style scheme"),   # the S3 schemes are case-sensitive
])
def test_an_unreadable_authorization_is_malformed_with_its_reason(value, why):
    assert reason(parse_authorization(value)) == why


def test_a_basic_password_is_limited_in_utf8_bytes_before_any_hashing():
    assert MAX_PASSWORD_BYTES == 1024
    assert parse_authorization(basic("a:" + "x" * 1024)) == Credential("x" * 1024, "a", "basic")
    assert reason(parse_authorization(basic("a:" + "x" * 1025))) == "password too long"
    # 512 two-byte characters are 1024 bytes; one more is too long, though only 513 characters.
    assert parse_authorization(basic("a:" + "é" * 512)) == Credential("é" * 512, "a", "basic")
    assert reason(parse_authorization(basic("a:" + "é" * 513))) == "password too long"


def test_s3_style_headers_present_their_access_key():
    v4 = parse_authorization(V4.encode())
    assert v4 == Credential("AKIDEXAMPLE", None, "s3", S3Authorization(
        4, "AKIDEXAMPLE", SIGNATURE, "20260101", "us-east-1", "s3", ("host", "x-amz-date")))
    v2 = parse_authorization(b"AWS AKIDEXAMPLE:c2lnbmF0dXJl")
    assert v2 == Credential("AKIDEXAMPLE", None, "s3", S3Authorization(2, "AKIDEXAMPLE", "c2lnbmF0dXJl"))
    # The whole header is what the S3 parser reads, Latin-1 as HTTP sends it.
    assert parse_authorization("AWS clé:sig".encode("latin-1")).secret == "clé"


# ---- which credential a request presents --------------------------------------------------------

def test_authorization_comes_first_wherever_it_stands():
    reader = CredentialReader(allow_query_token=True)
    headers = [(b"x-api-key", b"from-header"), (b"authorization", b"Bearer from-authorization"),
               (b"authorization", b"Bearer second")]
    assert reader.read(headers, b"authtoken=from-query") == Credential("from-authorization", None, "bearer")
    assert reason(reader.read([(b"x-api-key", b"k"), (b"authorization", b"Basic")], b"")) == \
        "no credentials after the scheme"


def test_the_default_key_header_is_x_api_key_and_the_first_key_header_counts():
    reader = CredentialReader()
    assert reader.read([(b"x-api-key", b"  tlk_1 ")], b"") == Credential("tlk_1", None, "x-api-key")
    assert reader.read([(b"x-cdata-authtoken", b"tlk_1")], b"") is None
    custom = CredentialReader(key_headers=("X-CData-Authtoken", "X-API-Key"))
    headers = [(b"accept", b"*/*"), (b"x-cdata-authtoken", b"first"), (b"x-api-key", b"second")]
    assert custom.read(headers, b"") == Credential("first", None, "x-cdata-authtoken")
    assert custom.read([(b"x-api-key", b"k\xe9")], b"") == Credential("k\xe9", None, "x-api-key")


def test_an_empty_key_header_is_malformed():
    assert reason(CredentialReader().read([(b"x-api-key", b"   ")], b"")) == "empty key header"


def test_the_query_token_is_read_only_when_allowed():
    assert CredentialReader().read([], b"authtoken=tlk_q") is None
    reader = CredentialReader(allow_query_token=True)
    assert reader.read([], b"a=1&@authtoken=tlk_q") == Credential("tlk_q", None, "query")
    assert reader.read([(b"x-api-key", b"tlk_h")], b"authtoken=tlk_q") == Credential("tlk_h", None, "x-api-key")
    assert reason(reader.read([], b"authtoken=")) == "empty authtoken"
    assert reason(reader.read([], b"authtoken=a&authtoken=b")) == "query: the token is named more than once"
    assert reader.read([], b"a=1") is None
    assert reader.read([], b"") is None


def test_a_client_certificate_counts_only_when_nothing_else_is_presented():
    cert = ClientCertificate(b"", "ab" * 32, "CN=alice", "alice")
    reader = CredentialReader(allow_query_token=True)
    assert reader.read([], b"", cert) == Credential("ab" * 32, "alice", "certificate")
    assert reader.read([], b"a=1", cert) == Credential("ab" * 32, "alice", "certificate")
    assert reader.read([(b"authorization", b"Bearer t")], b"", cert) == Credential("t", None, "bearer")
    assert reader.read([], b"authtoken=q", cert) == Credential("q", None, "query")
    nameless = ClientCertificate(b"", "ab" * 32, "O=nobody", None)
    assert reason(reader.read([], b"", nameless)) == "client certificate without a CN"
    refused = ClientCertificate(b"", "ab" * 32, "CN=alice", "alice", refusal="client certificate revoked")
    assert reason(reader.read([], b"", refused)) == "client certificate revoked"
    assert reader.read([], b"") is None
