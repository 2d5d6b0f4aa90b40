"""The time a verdict is given for: ``--at 2025-01-01T00:00:00Z``."""

from __future__ import annotations

import datetime as dt

from tlskit.errors import InputError, option


def parse_at(text: str) -> dt.datetime:
    """An ISO 8601 time (``Z`` or an offset; without one it is UTC), or a date for its midnight UTC.

    >>> parse_at("2025-01-01T00:00:00Z").isoformat()
    '2025-01-01T00:00:00+00:00'
    """
    value = text.strip()
    try:
        when = dt.datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in "zZ" and value else value)
    except ValueError:
        raise InputError(f"{option('at')} {text!r} is not a time", fix="give an ISO 8601 time such as 2025-01-01T00:00:00Z "
                         "or a date such as 2025-01-01") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc)
