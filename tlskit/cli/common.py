"""The subject flags and the spinner that csr, selfsign and ca share."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tlskit.keys import SlowWork
    from tlskit.names import Subject


def subject_from_flags(subject: str | None, fields: dict[str, str | None], interactive: bool) -> Subject:
    """The subject from --subject and per-field flags (which override it), or from prompts.

    Prompts run with --interactive, or when nothing was given and stdin is a terminal, like `openssl req`.
    """
    from tlskit.names import prompt_subject, subject_from_fields

    nothing_given = subject is None and all(value is None for value in fields.values())
    if interactive or (nothing_given and sys.stdin.isatty()):
        import typer

        # The prompt text ends in its own colon, as openssl's does; typer would add another.
        return prompt_subject(lambda text: typer.prompt(text, default="", show_default=False, prompt_suffix=" "),
                              lambda text: typer.echo(text, err=True))
    return subject_from_fields(subject, fields)


def subject_fields(cn, country, state, locality, org, org_unit, email) -> dict[str, str | None]:
    return {"CN": cn, "C": country, "ST": state, "L": locality, "O": org, "OU": org_unit, "emailAddress": email}


def spinner_unless(json_output: bool) -> SlowWork:
    """A spinner on stderr around slow library work, except for --json (whose readers want no noise)."""
    from tlskit.cli.output import spinner

    return lambda text: spinner(text, enabled=not json_output)


def own_command(absolute: bool = False) -> list[str]:
    """How to run this same tlskit again: ``tlskit`` when that is what PATH finds, else its full path
    (a virtualenv not activated), or ``python -m tlskit`` when it was started that way. ``absolute``
    always gives full paths (for systemd units, which do not search PATH the same way)."""
    import os
    import shutil

    script = sys.argv[0] if sys.argv else ""
    if os.path.basename(script) == "tlskit" and os.path.isfile(script):
        full = os.path.realpath(script)
        found = shutil.which("tlskit")
        if not absolute and found and os.path.realpath(found) == full:
            return ["tlskit"]
        return [os.path.abspath(script)]
    return [sys.executable, "-m", "tlskit"]
