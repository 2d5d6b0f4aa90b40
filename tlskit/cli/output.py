"""Rendering at the edge: JSON documents on stdout, human text through rich, errors as one line."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from typing import Any


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


# rich's markup tag syntax (rich.markup.RE_TAGS): what `[green]`, `[/]` and `\\[literal]` look like.
_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def strip_markup(text: str) -> str:
    """The text rich would print for ``text`` on a plain stream: tags dropped, escaped brackets kept."""

    def replace(match: re.Match[str]) -> str:
        backslashes, escaped = divmod(len(match.group(1)), 2)
        return "\\" * backslashes + (match.group(2) if escaped else "")

    return _TAG.sub(replace, text)


class PlainConsole:
    """What rich's Console does for strings on a pipe or file, without importing rich (~40 ms).

    Output that is not a terminal gets no colour anyway, so scripts, tests and benchmarks skip the import.
    Anything but plain strings is handed to a real rich Console.
    """

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr

    @property
    def _stream(self):
        return sys.stderr if self._stderr else sys.stdout

    def print(self, *objects: object, sep: str = " ", end: str = "\n", **options: object) -> None:
        if options or not all(isinstance(item, str) for item in objects):
            _rich_console(self._stderr).print(*objects, sep=sep, end=end, **options)
            return
        self._stream.write(sep.join(strip_markup(item) for item in objects) + end)

    def out(self, *objects: object, sep: str = " ", end: str = "\n", **_options: object) -> None:
        self._stream.write(sep.join(str(item) for item in objects) + end)

    def __getattr__(self, name: str):
        return getattr(_rich_console(self._stderr), name)


def _rich_console(stderr: bool):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


def console(stderr: bool = False):
    """rich on a terminal; the same text without rich's import cost on pipes and files."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return _rich_console(stderr)
    return PlainConsole(stderr)


def columns(rows: list[tuple[str, ...]]) -> str:
    """Rows as plain text columns separated by two spaces, nothing cut: for pipes, grep and awk."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def error_line(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


def warn(message: str, quiet: bool = False) -> None:
    """Warnings go to stderr so that stdout stays clean for --json and pipes."""
    if not quiet:
        sys.stderr.write(f"warning: {message}\n")


@contextlib.contextmanager
def spinner(text: str, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr while slow work runs (RSA 4096, ACME), only on a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    with _rich_console(stderr=True).status(text):
        yield


def escape(text: str) -> str:
    """Make ``text`` print literally through rich markup (same rule as rich.markup.escape)."""
    text = _TAG.sub(lambda match: f"{match.group(1)}{match.group(1)}\\{match.group(2)}", text)
    if text.endswith("\\") and not text.endswith("\\\\"):
        text += "\\"
    return text
