"""Options shared by several commands, declared once so their names and help stay the same."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def flag(name: str) -> str:
    """The command-line flag of a setting or keyword: ``max_header_line`` -> ``--max-header-line``.

    Every option is declared under the name of the keyword it sets, so this is also how the CLI spells
    the settings library messages name (:func:`tlskit.errors.option`)."""
    return "--" + name.replace("_", "-")


KeyType = Annotated[Optional[str], typer.Option(
    "--key-type", "-t", help="New key: rsa:2048, rsa:3072, rsa:4096, ec:p256, ec:p384, ec:p521 or ed25519 [default: ec:p256].")]
ExistingKey = Annotated[Optional[Path], typer.Option("--key", "-k", help="Use this existing private key instead of making one.")]
Subject = Annotated[Optional[str], typer.Option(
    "--subject", "-s", help='Subject as "/C=IN/ST=Tamilnadu/O=Example/CN=example.com" or "CN=example.com,O=Example".')]
CommonName = Annotated[Optional[str], typer.Option("--cn", help="Common name (CN).")]
Country = Annotated[Optional[str], typer.Option("--country", help="Country (C), two letters.")]
State = Annotated[Optional[str], typer.Option("--state", help="State or province (ST).")]
Locality = Annotated[Optional[str], typer.Option("--locality", help="Locality or city (L).")]
Org = Annotated[Optional[str], typer.Option("--org", help="Organization (O).")]
OrgUnit = Annotated[Optional[str], typer.Option("--org-unit", help="Organizational unit (OU).")]
Email = Annotated[Optional[str], typer.Option("--email", help="emailAddress in the subject.")]
Sans = Annotated[Optional[list[str]], typer.Option(
    "--san", help="Subject alternative name, repeatable: DNS:x, IP:x, email:x, URI:x, or bare (type detected).")]
NewKeyPassphraseFile = Annotated[Optional[Path], typer.Option(
    "--passphrase-file", help="File whose first line is the passphrase: encrypts the new key, or decrypts --key.")]
Force = Annotated[bool, typer.Option("--force", "-f", help="Replace existing output files.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
Interactive = Annotated[bool, typer.Option("--interactive", "-i", help="Ask for each subject field like openssl req.")]
Days = Annotated[int, typer.Option("--days", help="Validity in days.")]
KeyOut = Annotated[Optional[Path], typer.Option("--key-out", help="New key file [default: next to --out, .key].")]
UsersDb = Annotated[Optional[str], typer.Option(
    "--db", help="Users database: an SQLite file or a postgresql://user@host:port/dbname URL [default: STATE_DIR/users.sqlite].")]
# What a verdict is given for, the same in chain and probe.
At = Annotated[Optional[str], typer.Option(
    "--at", help="Verify at this time (ISO 8601, e.g. 2025-01-01T00:00:00Z) instead of now.")]
Lenient = Annotated[bool, typer.Option(
    "--lenient", help="Web PKI findings (CN not in the SANs, weak keys, missing AKI...) warn instead of failing.")]
Crl = Annotated[Optional[list[Path]], typer.Option(
    "--crl", help="Check revocation against this CRL (PEM or DER; repeatable).")]
Ocsp = Annotated[bool, typer.Option(
    "--ocsp", help="Ask each certificate's OCSP responder (from its AIA) whether it is revoked.")]
