"""`tlskit inspect`: what is in a certificate, CSR, key or bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tlskit.cli import params


def inspect(
    files: Annotated[list[Path], typer.Argument(help="PEM or DER files: certificates, CSRs, keys, bundles.", metavar="FILE...")],
    passphrase_file: Annotated[Optional[Path], typer.Option(
        "--passphrase-file", help="File whose first line decrypts the encrypted keys among the files.")] = None,
    json_output: params.Json = False,
) -> None:
    """Show subject, issuer, validity (days left), SANs, key, fingerprints and extensions.

    Example: tlskit inspect fullchain.pem
    """
    from tlskit.certificates import quiet_parsing
    from tlskit.files import load_bundle, read_passphrase
    from tlskit.inspect import describe_bundle

    passphrase = read_passphrase(passphrase_file)
    documents = []
    for path in files:
        # A root with serial 0 is a fact to show, not a Python warning to print.
        with quiet_parsing():
            items = describe_bundle(load_bundle(path, passphrase))
        documents += [{"file": str(path), **item} for item in items]
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"items": documents})
        return
    _render(documents)


def _render(items: list[dict]) -> None:
    from tlskit.cli.output import console, escape

    out = console()
    for index, item in enumerate(items):
        if index:
            out.print()
        title = {"certificate": "Certificate", "csr": "Certificate request", "private_key": "Private key",
                 "public_key": "Public key"}[item["type"]]
        out.print(f"[bold]{title}[/] in {escape(item['file'])}")
        rows: list[tuple[str, str]] = []
        if "subject" in item:
            rows.append(("Subject", item["subject"]))
        if item["type"] == "certificate":
            days = item["days_left"]
            state = "[red]EXPIRED[/]" if item["expired"] else (f"[yellow]{days} days left[/]" if days < 30 else f"{days} days left")
            rows += [("Issuer", item["issuer"] + ("  (self-signed)" if item["self_signed"] else "")),
                     ("Serial", item["serial"]),
                     ("Valid", f"{item['not_before'][:19]} to {item['not_after'][:19]} UTC"),
                     ("", state)]
        if item.get("sans"):
            rows.append(("SANs", ", ".join(item["sans"])))
        rows.append(("Key", item["key"]["label"]))
        if "signature_algorithm" in item:
            rows.append(("Signature", item["signature_algorithm"]))
        if item["type"] == "csr":
            rows.append(("Self-signature", "valid" if item["signature_valid"] else "[red]INVALID[/]"))
        if "fingerprints" in item:
            rows.append(("SHA-256", item["fingerprints"]["sha256"]))
        if "spki_sha256" in item:
            rows.append(("SPKI SHA-256", item["spki_sha256"]))
        for label, value in rows:
            shown = value if label == "" or "[/]" in value else escape(value)
            out.print(f"  {label:<15} {shown}")
        if item.get("extensions_error"):
            out.print(f"  [red]Extensions cannot be parsed[/]: {escape(item['extensions_error'])}")
        for ext in item.get("extensions", []):
            critical = " (critical)" if ext["critical"] else ""
            out.print(f"  {escape(ext['name'])}{critical}: {escape(ext['value'])}")
