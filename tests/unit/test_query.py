"""The ``authtoken`` query parameter: one reading of a query for the credential reader, the log and the proxy."""

from __future__ import annotations

import pytest

from tlskit.server import query
from tlskit.server.query import AmbiguousQuery, Part


def test_parts_split_on_ampersand_and_semicolon_and_decode_names_and_values():
    assert query.parts(b"a=1;b=x+y&&c=%41%2b&flag&=v;") == [
        Part(b"a=1", "a", "1"),
        Part(b"b=x+y", "b", "x y"),
        Part(b"c=%41%2b", "c", "A+"),
        Part(b"flag", "flag", ""),
        Part(b"=v", "", "v"),
    ]
    # Only the first "=" separates the name: the value keeps the others.
    assert query.parts(b"k=a=b") == [Part(b"k=a=b", "k", "a=b")]
    assert query.parts(b"") == []


@pytest.mark.parametrize("raw, reason", [
    (b"a=%zz", "a bad percent escape"),
    (b"a=%4", "a bad percent escape"),
    (b"a=%", "a bad percent escape"),
    (b"%g0=1", "a bad percent escape"),
    (b"a=%ff", "not UTF-8 after decoding"),
    (b"a=\xff", "not UTF-8 after decoding"),
    (b"%c3=1", "not UTF-8 after decoding"),
])
def test_a_part_that_cannot_be_decoded_one_way_is_ambiguous(raw, reason):
    with pytest.raises(AmbiguousQuery) as caught:
        query.parts(raw)
    assert str(caught.value) == reason


def test_well_formed_escapes_of_either_case_decode():
    assert query.parts(b"n=%C3%A9%c3%a9") == [Part(b"n=%C3%A9%c3%a9", "n", "éé")]


@pytest.mark.parametrize("name, is_token", [
    ("authtoken", True), ("AuthToken", True), ("@authtoken", True), ("@@AUTHTOKEN", True),
    ("authtokens", True), ("authtoken=x", True),
    ("token", False), ("xauthtoken", False), ("auth token", False), ("", False),
])
def test_which_names_count_as_the_token(name, is_token):
    assert Part(b"", name, "").is_token is is_token


@pytest.mark.parametrize("raw, mentions", [
    (b"", False), (b"a=1&b=2", False),
    (b"authtoken=x", True), (b"AUTHTOKEN=x", True), (b"ToKeN", True),
    (b"a=%41", True),             # an escape may spell the name
    (b"a+b=1", True),             # so may a plus (a space)
])
def test_the_cheap_pre_check_never_misses_a_spelling(raw, mentions):
    assert query.mentions_token(raw) is mentions


@pytest.mark.parametrize("raw, token", [
    (b"authtoken=tlk_abc", "tlk_abc"),
    (b"limit=1&AuthToken=tlk_abc;x=2", "tlk_abc"),
    (b"@authtoken=tlk_abc", "tlk_abc"),
    (b"%61uthtoken=tlk%2Babc", "tlk+abc"),
    (b"authtoken=a=b", "a=b"),
    (b"authtoken=", ""),
    (b"authtoken", ""),
    (b"limit=1&tok=2", None),
    (b"limit=%41", None),
    (b"", None),
    (b"a=\xff", None),             # nothing could spell the token: not even decoded
])
def test_find_token(raw, token):
    assert query.find_token(raw) == token


@pytest.mark.parametrize("raw, reason", [
    (b"authtoken=a&authtoken=b", "the token is named more than once"),
    (b"authtoken=a;@AUTHTOKEN=b", "the token is named more than once"),
    (b"authtoken=a&authtokens=b", "the token is named more than once"),
    (b"authtokenx=a", "a token parameter with an odd name"),
    (b"authtoken%3Dsecret", "a token parameter with an odd name"),
    (b"token=1&a=%zz", "a bad percent escape"),
])
def test_find_token_refuses_to_guess(raw, reason):
    with pytest.raises(AmbiguousQuery) as caught:
        query.find_token(raw)
    assert str(caught.value) == reason


def test_check_raises_exactly_when_the_server_must_refuse_the_query():
    for fine in (b"", b"a=1", b"a=\xff", b"authtoken=x&b=2", b"token=%41"):
        assert query.check(fine) is None
    for refused in (b"authtoken=a&authtoken=b", b"a=%zz", b"authtoken2=x"):
        with pytest.raises(AmbiguousQuery):
            query.check(refused)


@pytest.mark.parametrize("raw, redacted", [
    (b"", b""),
    (b"a=1&b=2", b"a=1&b=2"),
    (b"a=%41&b=+", b"a=%41&b=+"),                       # mentions nothing that decodes to the token
    (b"a=\xff&b=2", b"a=\xff&b=2"),                     # cannot spell the token: kept even if not UTF-8
    (b"a=%zz&token", b"[ambiguous query]"),
    (b"authtoken=secret", b"authtoken=REDACTED"),
    (b"a=1;AUTHTOKEN=secret&&b=2&", b"a=1;authtoken=REDACTED&&b=2&"),
    (b"x=authtoken&authtoken=secret", b"x=authtoken&authtoken=REDACTED"),
    (b"authtoken%3Dsecret&a=1", b"authtoken=REDACTED&a=1"),
    (b"a=1&authtoken=s1&authtoken=s2", b"a=1&authtoken=REDACTED&authtoken=REDACTED"),
    (b"a=1&a=1&authtoken=secret", b"a=1&a=1&authtoken=REDACTED"),
])
def test_redact_replaces_every_token_part_and_keeps_the_rest_byte_for_byte(raw, redacted):
    assert query.redact(raw) == redacted


@pytest.mark.parametrize("raw, forwarded", [
    (b"", b""),
    (b"a=1;b=2", b"a=1;b=2"),
    (b"a=%41+b", b"a=%41+b"),
    (b"a=\xff;b=2", b"a=\xff;b=2"),
    (b"a=%zz&token", b""),
    (b"authtoken=secret", b""),
    (b"a=1;authtoken=secret;b=%41", b"a=1&b=%41"),
    (b"@AuthToken=s&a=1&authtoken=t", b"a=1"),
])
def test_without_token_removes_every_token_part(raw, forwarded):
    assert query.without_token(raw) == forwarded
