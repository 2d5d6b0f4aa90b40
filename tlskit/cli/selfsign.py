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
    passphrase_file: params.PassphraseFile = None,
    interactive: params.Interactive = False,
    force: params.Force = False,
    json_output: params.Json = False,
) -> None:
    """Make a self-signed certificate (serverAuth, SAN always present, SKI/AKI).

    Example: tlskit selfsign --cn localhost --san 127.0.0.1 --days 30
    """
    from tlskit.cli.common import default_key_path, default_stem, resolve_key, subject_fields, subject_from_flags
    from tlskit.errors import InputError
    from tlskit.files import Output, check_writable, load_bundle, read_passphrase, write_outputs
    from tlskit.inspect import describe_certificate
    from tlskit.certificates import to_pem
    from tlskit.issue import self_signed, self_signed_from_csr
    from tlskit.keys import private_key_pem
    from tlskit.names import parse_sans

    passphrase = read_passphrase(passphrase_file)
    fields = subject_fields(cn, country, state, locality, org, org_unit, email)
    if csr_file is not None:
        if key is None:
            raise InputError("--csr needs --key", "a self-signed certificate is signed by the CSR's own key",
                             "pass the key the CSR was made with")
        if subject or san or any(fields.values()):
            raise InputError("--csr takes the subject and SANs from the CSR", fix="drop --subject/--cn/--san")
        csrs = load_bundle(csr_file).csrs
        if not csrs:
            raise InputError(f"{csr_file} holds no CSR", fix="give a PEM or DER certificate request")
        cert_path = out or csr_file.with_suffix(".pem")
        check_writable([cert_path], force)
        private_key, _ = resolve_key(key, key_type, passphrase, json_output)
        issued = self_signed_from_csr(private_key, csrs[0], days)
        write_outputs([Output.of(cert_path, to_pem(issued.certificate))], force)
        _report(issued, cert_path, None, json_output)
        return

    parsed_subject = subject_from_flags(subject, fields, interactive)
    sans = parse_sans(san or [])
    cert_path = out or Path(f"{default_stem(parsed_subject)}.pem")
    new_key_path = None if key is not None else (key_out or default_key_path(cert_path))
    check_writable([p for p in (cert_path, new_key_path) if p is not None], force)
    private_key, generated = resolve_key(key, key_type, None if key is None else passphrase, json_output)
    issued = self_signed(private_key, parsed_subject, sans, days)
    outputs = [Output.of(cert_path, to_pem(issued.certificate))]
    if generated:
        outputs.insert(0, Output.of(new_key_path, private_key_pem(private_key, passphrase), secret=True))
    write_outputs(outputs, force)
    _report(issued, cert_path, new_key_path if generated else None, json_output)


def _report(issued, cert_path: Path, key_path: Path | None, json_output: bool) -> None:
    from tlskit.cli.output import warn
    from tlskit.inspect import describe_certificate

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
