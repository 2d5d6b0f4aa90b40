"""Rendering at the edge: JSON documents on stdout, human text through rich, errors as one line."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


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
    with console(stderr=True).status(text):
        yield


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)
