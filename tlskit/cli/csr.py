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
    passphrase_file: params.PassphraseFile = None,
    interactive: params.Interactive = False,
    force: params.Force = False,
    json_output: params.Json = False,
) -> None:
    """Make a private key and a certificate signing request (CSR).

    Example: tlskit csr --cn www.example.com --san example.com --key-type ec:p256
    """
    from tlskit.cli.common import default_key_path, default_stem, resolve_key, subject_fields, subject_from_flags
    from tlskit.csr import build_csr, effective_sans
    from tlskit.files import Output, check_writable, read_passphrase, write_outputs
    from tlskit.inspect import describe_csr
    from tlskit.certificates import to_pem
    from tlskit.keys import private_key_pem
    from tlskit.names import parse_sans

    fields = subject_fields(cn, country, state, locality, org, org_unit, email)
    parsed_subject = subject_from_flags(subject, fields, interactive)
    sans = parse_sans(san or [])
    passphrase = read_passphrase(passphrase_file)
    csr_path = out or Path(f"{default_stem(parsed_subject)}.csr")
    new_key_path = None if key is not None else (key_out or default_key_path(csr_path))
    # Refuse before generating anything: an RSA 4096 key made for nothing is a waste, and a
    # refused run must leave the directory exactly as it was.
    check_writable([p for p in (csr_path, new_key_path) if p is not None], force)

    private_key, generated = resolve_key(key, key_type, None if key is None else passphrase, json_output)
    request = build_csr(private_key, parsed_subject, sans)
    outputs = [Output.of(csr_path, to_pem(request))]
    if generated and new_key_path is not None:
        outputs.insert(0, Output.of(new_key_path, private_key_pem(private_key, passphrase), secret=True))
    write_outputs(outputs, force)

    info = describe_csr(request)
    added_from_cn = len(effective_sans(parsed_subject, sans)) > len(sans)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({
            "csr": str(csr_path),
            "key": str(new_key_path if generated else key),
            "key_generated": generated,
            "key_encrypted": bool(generated and passphrase),
            "subject": info["subject"],
            "sans": info["sans"],
            "san_from_cn": added_from_cn,
            "key_type": info["key"]["label"],
        })
        return
    from tlskit.cli.output import console, escape

    out_console = console()
    out_console.print(f"[green]Created[/] CSR [bold]{escape(str(csr_path))}[/] for {escape(info['subject'])}")
    if info["sans"]:
        note = " (the CN added as the first SAN)" if added_from_cn else ""
        out_console.print(f"  SANs: {escape(', '.join(info['sans']))}{note}")
    if generated:
        state_text = "encrypted, " if passphrase else ""
        out_console.print(f"[green]Created[/] key [bold]{escape(str(new_key_path))}[/] "
                          f"({info['key']['label']}, {state_text}mode 0600)")
    else:
        out_console.print(f"  Key: {escape(str(key))} ({info['key']['label']})")
    out_console.print(f"Next: send it to your CA, or sign it locally: tlskit ca sign {escape(str(csr_path))} --ca-dir DIR")
