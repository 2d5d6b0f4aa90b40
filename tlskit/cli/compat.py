"""Typer's exception types, wherever the installed typer keeps them, and what its click does by itself.

typer >= 0.21 vendors click (and imports pydantic, ~150 ms of start-up); earlier versions use click
itself. pyproject pins the faster line, but the CLI must not break if a user's environment has the other.
"""

from __future__ import annotations

try:  # typer < 0.21: click's own exceptions
    from click import exceptions as _click_exceptions
    from click.exceptions import Abort, ClickException as UsageError, Exit

    # click 8.4+ (NoSuchCommand) ends "No such command" with the closest names itself; typer 0.20+
    # appends the same suggestion again unless told not to.
    CLICK_SUGGESTS_COMMANDS = hasattr(_click_exceptions, "NoSuchCommand")
except ImportError:  # pragma: no cover - typer >= 0.21
    from typer.exceptions import Abort, Exit, TyperException as UsageError

    CLICK_SUGGESTS_COMMANDS = False

__all__ = ["CLICK_SUGGESTS_COMMANDS", "Abort", "Exit", "UsageError"]
