"""The commands of `tlskit`, listed once: the fast top-level help (``entry``) and the typer application
(``app``) both read this table, so neither imports the other.

It imports nothing: `tlskit --help` loads this module and ``entry`` and no other part of the CLI.
"""

from __future__ import annotations

SUMMARY = "Keys, CSRs, certificates, chains, TLS probing, ACME and an authenticated HTTPS server."

# (name, module, attribute, a group of subcommands, one-line summary), in the order `tlskit --help`
# shows them. The modules import only typer at import time; the library is imported inside the commands.
# ``tests/cli/test_cli_entry.py`` checks that each summary is the one typer shows for the command.
COMMANDS: tuple[tuple[str, str, str, bool, str], ...] = (
    ("csr", "tlskit.cli.csr", "csr", False, "Make a private key and a certificate signing request (CSR)."),
    ("selfsign", "tlskit.cli.selfsign", "selfsign", False,
     "Make a self-signed certificate (serverAuth, SAN always present, SKI/AKI)."),
    ("ca", "tlskit.cli.ca", "app", True,
     "A local CA: create it, sign CSRs (SANs kept), make client certificates, revoke, publish CRLs, install it into "
     "trust stores."),
    ("inspect", "tlskit.cli.inspect", "inspect", False,
     "Show subject, issuer, validity (days left), SANs, key, fingerprints and extensions."),
    ("chain", "tlskit.cli.chain", "chain", False,
     "Order and verify a certificate chain: leaf -> intermediates, root left out, gaps named."),
    ("probe", "tlskit.cli.probe", "probe", False,
     "Connect to a TLS server, show its certificates and handshake, and verify them."),
    ("acme", "tlskit.cli.acme", "app", True,
     "Certificates from Let's Encrypt or any ACME (RFC 8555) CA: issue, renew, revoke, list, account."),
    ("serve", "tlskit.cli.serve", "serve", False, "Serve an SQLite dataset as an authenticated JSON API over HTTPS."),
    ("users", "tlskit.cli.users", "app", True, "Users of tlskit serve: passwords, tokens, allowed methods and limits."),
)
