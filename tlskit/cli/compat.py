"""Typer's exception types, wherever the installed typer keeps them.

typer >= 0.21 vendors click (and imports pydantic, ~150 ms of start-up); earlier versions use click
itself. pyproject pins the faster line, but the CLI must not break if a user's environment has the other.
"""

from __future__ import annotations

try:  # typer < 0.21: click's own exceptions
    from click.exceptions import Abort, ClickException as UsageError, Exit
except ImportError:  # pragma: no cover - typer >= 0.21
    from typer.exceptions import Abort, Exit, TyperException as UsageError

__all__ = ["Abort", "Exit", "UsageError"]
