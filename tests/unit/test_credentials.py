"""Which credential a request presents, read from raw headers: the split of Basic and the precedence order."""

from __future__ import annotations

import base64

import pytest

from tlskit.server.client_certs import ClientCertificate
from tlskit.server.credentials import Credential, CredentialReader, Malformed, parse_authorization


def basic(text: str) -> bytes:
    return b"Basic " + base64.b64encode(text.encode("utf-8"))


@pytest.mark.parametrize("pair, name, password", [
    ("alice:pa:ss:word", "alice", "pa:ss:word"),   # RFC 7617: the user-id cannot contain a colon
    ("alice::", "alice", ":"),
    ("bob:", "bob", ""),
    ("carol:x:", "carol", "x:"),
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
