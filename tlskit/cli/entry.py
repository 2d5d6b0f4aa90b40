"""The `tlskit` console script: answers `tlskit`, `tlskit --help` and `--version` without importing typer.

Importing typer (and click, and typing machinery) costs ~80 ms, twice Python's own start-up; the
top-level help is the most typed command of all, so it is served from the command table in
``tlskit.cli.commands``. Every other invocation goes to the typer application in ``tlskit.cli.app``.
"""

from __future__ import annotations

import sys

from tlskit import __version__
from tlskit.cli.commands import COMMANDS, SUMMARY

_OPTIONS = (
    ("--debug", "Show a traceback on errors."),
    ("--version", "Print the version."),
    ("--install-completion", "Install completion for the current shell."),
    ("--show-completion", "Show completion for the current shell, to copy it or customize the installation."),
    ("-h, --help", "Show this message and exit."),
)
# Set by the shell's completion script when it asks for completions (click's "_PROG_COMPLETE").
COMPLETE_VARIABLE = "_TLSKIT_COMPLETE"


def root_help() -> str:
    """The text of `tlskit --help`, in click's layout."""
    option_width = max(len(name) for name, _ in _OPTIONS) + 2
    command_width = max(len(command[0]) for command in COMMANDS) + 2
    lines = ["Usage: tlskit [OPTIONS] COMMAND [ARGS]...", "", f"  {SUMMARY}", "", "Options:"]
    lines += [f"  {name:<{option_width}}{text}" for name, text in _OPTIONS]
    lines += ["", "Commands:"]
    lines += [f"  {name:<{command_width}}{summary}" for name, _, _, _, summary in COMMANDS]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    import os

    args = list(sys.argv[1:] if argv is None else argv)
    if args in ([], ["--help"], ["-h"]) and COMPLETE_VARIABLE not in os.environ:
        sys.stdout.write(root_help())
        sys.exit(0)
    if args == ["--version"]:
        sys.stdout.write(f"tlskit {__version__}\n")
        sys.exit(0)
    from tlskit.cli.app import main as typer_main

    typer_main(args)
