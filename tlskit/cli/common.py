"""Turning the shared subject/key flags into library inputs; shared by csr, selfsign and ca."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tlskit.errors import InputError

if TYPE_CHECKING:
    from tlskit.names import Subject


def subject_from_flags(
    subject: str | None,
    fields: dict[str, str | None],
    interactive: bool,
    prompt_when_tty: bool = True,
) -> Subject:
    """The subject from --subject, per-field flags (which override it), or prompts.

    Prompts run with --interactive, or when nothing was given and stdin is a terminal, like `openssl req`.
    """
    from tlskit.names import parse_subject, prompt_subject, validate_subject

    given = {k: v for k, v in fields.items() if v is not None}
    if interactive or (subject is None and not given and prompt_when_tty and sys.stdin.isatty()):
        import typer

        return prompt_subject(lambda text: typer.prompt(text, default="", show_default=False),
                              lambda text: typer.echo(text, err=True))
    if subject is None and not given:
        raise InputError("no subject given", fix='pass --cn NAME, --subject "/CN=NAME", or --interactive')
    parsed = parse_subject(subject) if subject is not None else {}
    parsed.update(given)
    return validate_subject(parsed)


def subject_fields(cn, country, state, locality, org, org_unit, email) -> dict[str, str | None]:
    return {"CN": cn, "C": country, "ST": state, "L": locality, "O": org, "OU": org_unit, "emailAddress": email}


def resolve_key(key_path: Path | None, key_type: str | None, passphrase: bytes | None, json_output: bool):
    """Load --key, or generate --key-type (with a spinner when it is slow). Returns (key, generated)."""
    from tlskit.keys import KeySpec, generate_key, load_private_key

    if key_path is not None:
        if key_type is not None:
            raise InputError("--key and --key-type were both given", fix="use one: an existing key or a new key type")
        return load_private_key(key_path, passphrase), False
    spec = KeySpec.parse(key_type or "ec:p256")
    from tlskit.cli.output import spinner

    with spinner(f"Generating {spec} key...", enabled=spec.slow and not json_output):
        return generate_key(spec), True


def default_key_path(out: Path) -> Path:
    """example.csr -> example.key, next to the main output."""
    return out.with_suffix(".key") if out.suffix else out.with_name(out.name + ".key")


def default_stem(subject: Subject) -> str:
    """A file name stem from the CN, as mkcert does: *.example.com -> _wildcard.example.com."""
    from tlskit.names import file_stem

    return file_stem(subject.get("CN") or "request", "request")
