"""`tlskit chain`: any set of domain and intermediate certificates -> one ordered, verified fullchain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tlskit.cli import params


def chain(
    files: Annotated[list[str], typer.Argument(
        help="Certificates in any order: separate files or one mixed bundle, PEM or DER ('-' reads stdin).",
        metavar="FILE...")],
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Write the ordered fullchain (PEM) here [default: stdout].")] = None,
    include_root: Annotated[bool, typer.Option(
        "--include-root", help="Keep the root at the end (servers should not send it).")] = False,
    ca_file: Annotated[Optional[Path], typer.Option(
        "--ca-file", help="Verify against the roots in this file instead of certifi's.")] = None,
    host: Annotated[Optional[str], typer.Option("--host", help="Also check that the leaf is valid for this name.")] = None,
    fetch: Annotated[bool, typer.Option(
        "--fetch", help="Download missing intermediates from the AIA caIssuers URL.")] = False,
    no_verify: Annotated[bool, typer.Option(
        "--no-verify", help="Only order and check signatures; do not verify against a trust store.")] = False,
    key: Annotated[Optional[Path], typer.Option("--key", "-k", help="Check that this private key matches the leaf.")] = None,
    pkcs12: Annotated[Optional[Path], typer.Option(
        "--pkcs12", help="Also write key + chain as PKCS#12 (needs --key and --passphrase-file).")] = None,
    passphrase_file: Annotated[Optional[Path], typer.Option(
        "--passphrase-file", help="First line: the PKCS#12 password (and --key's passphrase if it is encrypted).")] = None,
    at: params.At = None,
    purpose: Annotated[str, typer.Option(
        "--purpose", help="server (a TLS server's fullchain) or client (a client certificate for mTLS).")] = "server",
    lenient: params.Lenient = False,
    crl: params.Crl = None,
    ocsp: params.Ocsp = False,
    force: params.Force = False,
    json_output: params.Json = False,
) -> None:
    """Order and verify a certificate chain: leaf -> intermediates, root left out, gaps named.

    With --fetch, missing intermediates come from the AIA caIssuers URLs and CRLs from the
    distribution points. Exit 0 verified, 1 verdict failed, 2 bad input, 3 a download failed.

    Example: tlskit chain intermediate.crt domain.crt --host www.example.com --out fullchain.pem
    """
    from tlskit.chain import ChainError, build_chain, load_inputs
    from tlskit.errors import InputError
    from tlskit.files import Output, check_writable, read_passphrase, write_outputs
    from tlskit.pkcs12 import load_key_for_chain, pkcs12_bytes
    from tlskit.trust import TrustStore

    if pkcs12 is not None and key is None:
        raise InputError("--pkcs12 needs the leaf's private key", fix="pass --key KEY")
    if pkcs12 is not None and passphrase_file is None:
        raise InputError("--pkcs12 needs a password", fix="pass --passphrase-file FILE (its first line is the password)")
    if no_verify and (ca_file is not None or host is not None or crl or ocsp):
        raise InputError("--no-verify cannot be combined with --ca-file, --host, --crl or --ocsp", fix="drop one of them")
    from tlskit.revocation import load_crls
    from tlskit.verdict import PURPOSES, parse_at

    if purpose not in PURPOSES:
        raise InputError(f"--purpose {purpose!r} is not known", fix="give server or client")
    when = parse_at(at) if at is not None else None
    crls = load_crls(crl or [])
    targets = [p for p in (out, pkcs12) if p is not None]
    check_writable(targets, force)
    passphrase = read_passphrase(passphrase_file)
    private_key = load_key_for_chain(key, passphrase) if key is not None else None
    inputs, skipped_keys = load_inputs(files)
    trust = None if no_verify else TrustStore.load(ca_file)
    try:
        report = build_chain(inputs, trust, host=host, fetch=fetch, include_root=include_root, key=private_key,
                             ignored_keys=skipped_keys, now=when, purpose=purpose, lenient=lenient, crls=tuple(crls),
                             ocsp=ocsp)
    except ChainError as exc:
        if json_output and exc.report is not None:
            from tlskit.cli.output import print_json

            print_json({**exc.report.as_dict(), "ok": False, "error": exc.message,
                        "missing_issuer": exc.missing_issuer, "output": None, "pkcs12": None, "key_matches": None,
                        "pem": None})
        raise

    pem = report.fullchain_pem()
    outputs = []
    if out is not None:
        outputs.append(Output.of(out, pem))
    if pkcs12 is not None:
        outputs.append(Output.of(pkcs12, pkcs12_bytes(report, private_key, passphrase), secret=True))
    write_outputs(outputs, force)

    if json_output:
        from tlskit.cli.output import print_json

        print_json({**report.as_dict(), "ok": True, "error": None, "missing_issuer": None,
                    "output": str(out) if out else None, "pkcs12": str(pkcs12) if pkcs12 else None,
                    "key_matches": True if private_key is not None else None, "pem": pem.decode()})
        return
    _render(report, out, pkcs12, private_key is not None, pem)


def _render(report, out: Path | None, pkcs12: Path | None, key_checked: bool, pem: bytes) -> None:
    import sys

    from tlskit.cli.output import console, escape, warn

    # With no --out the PEM is the output (for pipes and redirects); the summary goes to stderr.
    to_stdout = out is None and pkcs12 is None
    if to_stdout:
        sys.stdout.write(pem.decode())
        sys.stdout.flush()
    text = console(stderr=to_stdout)
    links = report.output_links
    plural = "s" if len(links) != 1 else ""
    verdict = (f"verified against {report.trust}" + (f" for {report.host}" if report.host else "")
               + (" (client certificate)" if report.purpose == "client" else "")
               if report.verified else "not verified (--no-verify)")
    written = f"Wrote [bold]{escape(str(out))}[/]: " if out else ""
    text.print(f"[green]Chain OK[/]: {written}{len(links)} certificate{plural}, {escape(verdict)}")
    for index, link in enumerate(links):
        info = link.describe()
        text.print(f"  {index} {link.role:<12} {escape(info['subject'])}  (until {info['not_after'][:10]})"
                   f"[dim]  from {escape(str(link.source))}[/]")
    root = report.root
    if root is not None and not report.include_root:
        text.print(f"  - root         {escape(root.describe()['subject'])}  (left out; --include-root keeps it)")
    if key_checked:
        text.print("  Key matches the leaf.")
    if pkcs12 is not None:
        text.print(f"Wrote [bold]{escape(str(pkcs12))}[/] (PKCS#12: key + {len(links)} certificates, mode 0600)")
    if report.verdict is not None:
        for status in report.verdict.revocation:
            text.print(f"  revocation: {escape(status.subject)} {status.status} ({status.method}"
                       f"{', ' + escape(status.source) if status.source else ''})")
    for finding in report.findings:
        if finding.level == "warning":
            warn(finding.message)
        elif finding.code != "root_left_out":
            text.print(f"  note: {escape(finding.message)}")
