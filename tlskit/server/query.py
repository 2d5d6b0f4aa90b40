"""The ``authtoken`` query parameter, read one way everywhere: by the credential reader, the access log,
the reverse proxy and the dataset.

A token in a URL ends up in logs and browser histories, so every place that handles a query must agree
on where the token is, however the client spelled it. The rule: a query is split on ``&`` and ``;``;
each part's name is percent-decoded (``+`` as space) and compared without case and without a leading
``@`` (CData's ``@authtoken``). A part whose decoded name starts with ``authtoken`` counts as the token
(``authtoken%3DSECRET`` decodes to ``authtoken=SECRET``: still the token, and redacted). A query that
cannot be decoded so (a bad ``%`` escape or non-UTF-8 bytes in a name) or that names the token twice is
*ambiguous*: the server refuses it (400) rather than guess, and logs it without its query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

TOKEN_NAME = "authtoken"
REDACTED = b"authtoken=REDACTED"
_SEPARATORS = re.compile(rb"[&;]")
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class AmbiguousQuery(ValueError):
    """The query cannot be read one way only."""


@dataclass(frozen=True)
class Part:
    raw: bytes
    name: str          # decoded name
    value: str         # decoded value

    @property
    def is_token(self) -> bool:
        return self.name.lower().lstrip("@").startswith(TOKEN_NAME)


def _decode(raw: bytes) -> str:
    if _BAD_ESCAPE.search(raw):
        raise AmbiguousQuery("a bad percent escape")
    try:
        return unquote_plus(raw.decode("utf-8"), errors="strict")
    except UnicodeDecodeError:
        raise AmbiguousQuery("not UTF-8 after decoding") from None


def parts(query: bytes) -> list[Part]:
    """Every part of the query with its decoded name and value. Raises AmbiguousQuery."""
    result = []
    for raw in _SEPARATORS.split(query):
        if not raw:
            continue
        name, _, value = raw.partition(b"=")
        result.append(Part(raw, _decode(name), _decode(value)))
    return result


def mentions_token(query: bytes) -> bool:
    """Cheap pre-check: could any spelling of the token name be in this query?"""
    lowered = query.lower()
    return b"token" in lowered or b"%" in query or b"+" in query


def find_token(query: bytes) -> str | None:
    """The token value, or None when no part is the token. Raises AmbiguousQuery for two of them."""
    if not query or not mentions_token(query):
        return None
    tokens = [part for part in parts(query) if part.is_token]
    if len(tokens) > 1:
        raise AmbiguousQuery("the token is named more than once")
    if not tokens:
        return None
    part = tokens[0]
    if part.name.lower().lstrip("@") != TOKEN_NAME:
        raise AmbiguousQuery("a token parameter with an odd name")
    return part.value


def check(query: bytes) -> None:
    """Raise AmbiguousQuery when the server must refuse this query (see the module docstring)."""
    find_token(query)


def redact(query: bytes) -> bytes:
    """The query with every token part replaced by ``authtoken=REDACTED`` (for logs).

    Never raises: an ambiguous query (refused anyway) is logged without its value parts.
    """
    if not query or not mentions_token(query):
        return query
    try:
        found = parts(query)
    except AmbiguousQuery:
        return b"[ambiguous query]"
    if not any(part.is_token for part in found):
        return query
    out, position = [], 0
    for part in found:
        start = query.index(part.raw, position)
        out.append(query[position:start])
        out.append(REDACTED if part.is_token else part.raw)
        position = start + len(part.raw)
    out.append(query[position:])
    return b"".join(out)


def without_token(query: bytes) -> bytes:
    """The query with every token part removed (for the upstream), the rest byte for byte as sent."""
    if not query or not mentions_token(query):
        return query
    try:
        found = parts(query)
    except AmbiguousQuery:
        return b""
    if not any(part.is_token for part in found):
        return query
    return b"&".join(part.raw for part in found if not part.is_token)
