"""`tlskit selfsign`: a self-signed server certificate (new key, existing key, or an existing CSR)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tlskit.cli import params


def selfsign(
    key_type: params.KeyType = None,
    key: params.ExistingKey = None,
    csr_file: Annotated[Optional[Path], typer.Option("--csr", help="Certify this CSR's subject and SANs (needs --key).")] = None,
    subject: params.Subject = None,
    cn: params.CommonName = None,
    country: params.Country = None,
    state: params.State = None,
    locality: params.Locality = None,
    org: params.Org = None,
    org_unit: params.OrgUnit = None,
    email: params.Email = None,
    san: params.Sans = None,
    days: params.Days = 365,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Certificate file [default: <CN>.pem].")] = None,
    key_out: params.KeyOut = None,
    passphrase_file: params.NewKeyPassphraseFile = None,
    interactive: params.Interactive = False,
    force: params.Force = False,
    json_output: params.Json = False,
) -> None:
    """Make a self-signed certificate (serverAuth, SAN always present, SKI/AKI).

    Example: tlskit selfsign --cn localhost --san 127.0.0.1 --days 30
    """
    from tlskit.cli.common import spinner_unless, subject_fields, subject_from_flags
    from tlskit.errors import InputError
    from tlskit.files import read_passphrase
    from tlskit.issue import write_self_signed, write_self_signed_from_csr
    from tlskit.keys import KeySource
    from tlskit.names import parse_sans

    passphrase = read_passphrase(passphrase_file)
    fields = subject_fields(cn, country, state, locality, org, org_unit, email)
    if csr_file is not None:
        if key is None:
            raise InputError("--csr needs --key", "a self-signed certificate is signed by the CSR's own key",
                             "pass the key the CSR was made with")
        if subject or san or any(fields.values()):
            raise InputError("--csr takes the subject and SANs from the CSR", fix="drop --subject/--cn/--san")
        written = write_self_signed_from_csr(csr_file, KeySource(key, key_type), days=days, passphrase=passphrase,
                                             out=out, force=force)
    else:
        parsed_subject = subject_from_flags(subject, fields, interactive)
        written = write_self_signed(parsed_subject, parse_sans(san or []), KeySource(key, key_type), days=days,
                                    passphrase=passphrase, out=out, key_out=key_out, force=force,
                                    slow_work=spinner_unless(json_output))
    _report(written, json_output)


def _report(written, json_output: bool) -> None:
    from tlskit.cli.output import warn
    from tlskit.inspect import describe_certificate

    issued, cert_path, key_path = written.issued, written.path, written.key_path
    info = describe_certificate(issued.certificate)
    for warning in issued.warnings:
        warn(warning, quiet=False)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"certificate": str(cert_path), "key": str(key_path) if key_path else None,
                    "subject": info["subject"], "sans": info["sans"], "serial": info["serial"],
                    "not_after": info["not_after"], "fingerprint_sha256": info["fingerprints"]["sha256"],
                    "warnings": issued.warnings})
        return
    from tlskit.cli.output import console, escape

    out = console()
    out.print(f"[green]Created[/] self-signed certificate [bold]{escape(str(cert_path))}[/] for "
              f"{escape(', '.join(info['sans']) or info['subject'])}, valid until {info['not_after'][:10]}")
    if key_path:
        out.print(f"[green]Created[/] key [bold]{escape(str(key_path))}[/] ({info['key']['label']}, mode 0600)")
    out.print("Clients will not trust it until they trust this file itself; for several certificates, "
              "a local CA is easier: tlskit ca init")
