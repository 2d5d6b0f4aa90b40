"""The `tlskit` console script: answers `tlskit`, `tlskit --help` and `--version` without importing typer.

Importing typer (and click, and typing machinery) costs ~80 ms, twice Python's own start-up; the
top-level help is the most typed command of all, so it is served from the static table below. Every
other invocation goes to the typer application in ``tlskit.cli.app``. ``tests/test_cli_entry.py``
checks that this table lists exactly the commands typer registers, with the same summaries.
"""

from __future__ import annotations

import sys

from tlskit import __version__

SUMMARY = "Keys, CSRs, certificates, chains, TLS probing, ACME and an authenticated HTTPS server."

# (name, one-line summary) in the order `tlskit --help` shows them.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("csr", "Make a private key and a certificate signing request (CSR)."),
    ("selfsign", "Make a self-signed certificate (serverAuth, SAN always present, SKI/AKI)."),
    ("ca", "A local CA: create it, then sign CSRs with it (SANs kept)."),
    ("inspect", "Show subject, issuer, validity (days left), SANs, key, fingerprints and extensions."),
    ("chain", "Order and verify a certificate chain: leaf -> intermediates, root left out, gaps named."),
    ("probe", "Connect to a TLS server, show its certificates and handshake, and verify them."),
    ("acme", "Certificates from Let's Encrypt or any ACME (RFC 8555) CA: issue, renew, revoke, list, account."),
    ("serve", "Serve an SQLite dataset as an authenticated JSON API over HTTPS."),
    ("users", "Users of tlskit serve: passwords, tokens, allowed methods and limits."),
)

_OPTIONS = (
    ("--debug", "Show a traceback on errors."),
    ("--version", "Print the version."),
    ("-h, --help", "Show this message and exit."),
)


def root_help() -> str:
    """The text of `tlskit --help`, in click's layout."""
    option_width = max(len(name) for name, _ in _OPTIONS) + 2
    command_width = max(len(name) for name, _ in COMMANDS) + 2
    lines = ["Usage: tlskit [OPTIONS] COMMAND [ARGS]...", "", f"  {SUMMARY}", "", "Options:"]
    lines += [f"  {name:<{option_width}}{text}" for name, text in _OPTIONS]
    lines += ["", "Commands:"]
    lines += [f"  {name:<{command_width}}{text}" for name, text in COMMANDS]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in ([], ["--help"], ["-h"]):
        sys.stdout.write(root_help())
        sys.exit(0)
    if args == ["--version"]:
        sys.stdout.write(f"tlskit {__version__}\n")
        sys.exit(0)
    from tlskit.cli.app import main as typer_main

    typer_main(args)
