"""`tlskit csr`: a private key and a CSR in one step, or a CSR for an existing key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tlskit.cli import params


def csr(
    key_type: params.KeyType = None,
    key: params.ExistingKey = None,
    subject: params.Subject = None,
    cn: params.CommonName = None,
    country: params.Country = None,
    state: params.State = None,
    locality: params.Locality = None,
    org: params.Org = None,
    org_unit: params.OrgUnit = None,
    email: params.Email = None,
    san: params.Sans = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="CSR file [default: <CN>.csr].")] = None,
    key_out: params.KeyOut = None,
    passphrase_file: params.NewKeyPassphraseFile = None,
    interactive: params.Interactive = False,
    force: params.Force = False,
    json_output: params.Json = False,
) -> None:
    """Make a private key and a certificate signing request (CSR).

    Example: tlskit csr --cn www.example.com --san example.com --key-type ec:p256
    """
    from tlskit.cli.common import spinner_unless, subject_fields, subject_from_flags
    from tlskit.csr import write_csr
    from tlskit.files import read_passphrase
    from tlskit.inspect import describe_csr
    from tlskit.keys import KeySource
    from tlskit.names import parse_sans

    parsed_subject = subject_from_flags(subject, subject_fields(cn, country, state, locality, org, org_unit, email),
                                        interactive)
    sans = parse_sans(san or [])
    passphrase = read_passphrase(passphrase_file)
    made = write_csr(parsed_subject, sans, KeySource(key, key_type), passphrase=passphrase, out=out, key_out=key_out,
                     force=force, slow_work=spinner_unless(json_output))

    info = describe_csr(made.request)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({
            "csr": str(made.path),
            "key": str(made.key_path),
            "key_generated": made.key_generated,
            "key_encrypted": made.key_encrypted,
            "subject": info["subject"],
            "sans": info["sans"],
            "san_from_cn": made.san_from_cn,
            "key_type": info["key"]["label"],
        })
        return
    from tlskit.cli.output import console, escape

    out_console = console()
    out_console.print(f"[green]Created[/] CSR [bold]{escape(str(made.path))}[/] for {escape(info['subject'])}")
    if info["sans"]:
        note = " (the CN added as the first SAN)" if made.san_from_cn else ""
        out_console.print(f"  SANs: {escape(', '.join(info['sans']))}{note}")
    if made.key_generated:
        state_text = "encrypted, " if made.key_encrypted else ""
        out_console.print(f"[green]Created[/] key [bold]{escape(str(made.key_path))}[/] "
                          f"({info['key']['label']}, {state_text}mode 0600)")
    else:
        out_console.print(f"  Key: {escape(str(made.key_path))} ({info['key']['label']})")
    out_console.print(f"Next: send it to your CA, or sign it locally: tlskit ca sign {escape(str(made.path))} --ca-dir DIR")
