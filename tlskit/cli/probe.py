"""`tlskit probe`: connect to a TLS server, show what it sent, verify it, say so in the exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tlskit.cli import params


def probe(
    target: Annotated[str, typer.Argument(help="HOST, HOST:PORT, [IPv6]:PORT or https://HOST[:PORT] (port 443 by default).")],
    servername: Annotated[Optional[str], typer.Option(
        "--servername", "-n", help="Name sent as SNI and verified [default: the host].")] = None,
    ca_file: Annotated[Optional[Path], typer.Option(
        "--ca-file", help="Trust these CA certificates (PEM) instead of certifi's roots.")] = None,
    alpn: Annotated[Optional[str], typer.Option("--alpn", help="Offer these ALPN protocols, e.g. h2,http/1.1.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds for connect, STARTTLS and handshake together.")] = 10.0,
    starttls: Annotated[Optional[str], typer.Option(
        "--starttls", help="Upgrade a plain-text connection first: smtp, imap, pop3, ftp or postgres.")] = None,
    showcerts: Annotated[bool, typer.Option("--showcerts", help="Also print the PEM of each certificate sent.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Save the chain as sent (PEM), even when it fails to verify.")] = None,
    at: params.At = None,
    lenient: params.Lenient = False,
    crl: params.Crl = None,
    fetch: Annotated[bool, typer.Option(
        "--fetch", help="Download what the certificates point at: a missing intermediate (AIA), CRLs (distribution points).")] = False,
    ocsp: params.Ocsp = False,
    force: params.Force = False,
    json_output: params.Json = False,
) -> None:
    """Connect to a TLS server, show its certificates and handshake, and verify them.

    TARGET is HOST, HOST:PORT, [IPv6]:PORT or https://HOST[:PORT]; the port is 443 by default
    (25/143/110/21/5432 with --starttls). Verification uses certifi's roots unless --ca-file is given.

    Exit 0 verified, 1 connected but verification failed, 2 bad arguments, 3 could not connect.
    Never reads stdin.

    Examples: tlskit probe example.com; tlskit probe mail.example.com:587 --starttls smtp
    """
    from tlskit.errors import EXIT_VERDICT
    from tlskit.probe import ProbeOptions
    from tlskit.probe import probe as run_probe
    from tlskit.revocation import load_crls
    from tlskit.verdict import parse_at

    options = ProbeOptions.parse(target, starttls=starttls, alpn=alpn, servername=servername, ca_file=ca_file,
                                 timeout=timeout, now=parse_at(at) if at is not None else None, lenient=lenient,
                                 crls=tuple(load_crls(crl or [])), fetch=fetch, ocsp=ocsp)
    if out is not None:
        from tlskit.files import check_writable

        check_writable([out], force)  # refuse before connecting, so a refused run does nothing

    result = run_probe(options)
    if out is not None:
        from tlskit.files import Output, write_outputs

        write_outputs([Output.of(out, result.chain_pem())], force)
    if json_output:
        from tlskit.cli.output import print_json

        document = result.as_dict(with_pem=showcerts)
        document["saved"] = str(out) if out is not None else None
        print_json(document)
    else:
        _render(result, showcerts, out)
    if not result.verification.verified:
        raise typer.Exit(EXIT_VERDICT)


def _render(result, showcerts: bool, out: Path | None) -> None:
    from tlskit.cli.output import console, escape

    doc = result.as_dict(with_pem=showcerts)
    con = console()
    via = f" after STARTTLS ({doc['starttls']})" if doc["starttls"] else ""
    sni = f", SNI {escape(doc['servername'])}" if doc["servername"] else ", no SNI"
    con.print(f"Connected to [bold]{escape(str(result.target))}[/] ({doc['address']}){via}{sni}")
    bits = f" ({doc['cipher_bits']} bits)" if doc["cipher_bits"] else ""
    protocol = f"[yellow]{doc['protocol']} (obsolete, RFC 8996)[/]" if doc["protocol_obsolete"] else doc["protocol"]
    con.print(f"  {protocol}, {escape(doc['cipher'])}{bits}, ALPN {escape(doc['alpn'] or 'none')}")
    order = "in order" if doc["chain_in_order"] else "[yellow]NOT in order[/]"
    root = "root included (unneeded)" if doc["chain_has_root"] else "no root"
    count = len(doc["chain"])
    con.print(f"Certificates sent: {count} ({order}, {root})")
    for cert in doc["chain"]:
        days = cert["days_left"]
        left = f"[red]expired {-days} days ago[/]" if cert["expired"] else f"{days} days left"
        con.print(f"  {cert['depth']} subject  {escape(cert['subject'])}")
        con.print(f"    issuer   {escape(cert['issuer'])}")
        con.print(f"    key      {cert['key']['label']}, signed with {cert['signature_algorithm']}")
        con.print(f"    valid    {cert['not_before'][:10]} to {cert['not_after'][:10]} ({left})")
        if cert["depth"] == 0:
            con.print(f"    SANs     {escape(', '.join(cert['sans']) or 'none')}")
        if showcerts:
            con.out(cert["pem"], end="", highlight=False)
    ocsp = doc["ocsp"]
    if ocsp is None:
        con.print("OCSP staple: none")
    elif ocsp["response_status"] != "successful":
        con.print(f"OCSP staple: [yellow]{ocsp['response_status']}[/]")
    else:
        status = ocsp["certificate_status"]
        colour = "green" if status == "good" else "red"
        nxt = f", next update {ocsp['next_update'][:16]}" if ocsp["next_update"] else ""
        other = "" if ocsp["matches_leaf"] else " [yellow](for another certificate)[/]"
        signed = {True: "signed by the issuer", False: "[red]signature NOT valid[/]",
                  None: "signature not checked (issuer not sent)"}[ocsp["signature_valid"]]
        con.print(f"OCSP staple: [{colour}]{status}[/]{other}, {signed}, this update {ocsp['this_update'][:16]}{nxt}")
    if out is not None:
        con.print(f"Saved the {count} certificate(s) sent to [bold]{escape(str(out))}[/]")
    verification = result.verification
    for status in doc["verification"]["revocation"]:
        con.print(f"Revocation: {escape(status['subject'])} {status['status']} ({status['method']}"
                  f"{', ' + escape(status['source']) if status['source'] else ''})")
    for warning in verification.warnings:
        con.print(f"[yellow]Warning[/]: {escape(warning.detail)} ({warning.rule})")
    if verification.verified:
        con.print(f"[green]Verified[/]: trusted by {escape(verification.trust)}, "
                  f"hostname {escape(verification.hostname)} matches")
        return
    con.print(f"[red]Verification failed[/]: {verification.code} {verification.reason}")
    for problem in verification.problems:
        where = f"depth {problem.depth}: " if problem.depth is not None else ""
        con.print(f"  {problem.code} {problem.reason} ({where}{escape(problem.detail)}) [{problem.rule}]")
    if verification.fix:
        con.print(f"  Fix: {escape(verification.fix)}")
