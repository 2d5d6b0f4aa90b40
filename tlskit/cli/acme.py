"""`tlskit acme issue|renew|revoke`: certificates from Let's Encrypt or any RFC 8555 CA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tlskit.cli import params

app = typer.Typer(help="Certificates from Let's Encrypt or any ACME (RFC 8555) CA: issue, renew, revoke.",
                  no_args_is_help=True)

Directory = Annotated[Optional[str], typer.Option(
    "--directory", help="ACME directory URL, or letsencrypt / letsencrypt-staging [default: letsencrypt].")]
DirectoryCa = Annotated[Optional[Path], typer.Option(
    "--directory-ca-file", help="Trust this CA file for the directory's HTTPS (a private CA such as Pebble).")]
OutDir = Annotated[Path, typer.Option("--out-dir", "-d", help="Where certificates and the account live.")]
Timeout = Annotated[float, typer.Option("--timeout", help="Give up on the CA after this many seconds.")]


@app.command("issue")
def issue(
    names: Annotated[Optional[list[str]], typer.Argument(help="DNS names; the first names the directory.",
                                                         show_default=False)] = None,
    email: Annotated[Optional[str], typer.Option("--email", help="Contact for the CA's expiry notices.")] = None,
    agree_tos: Annotated[bool, typer.Option("--agree-tos", help="Agree to the CA's terms of service.")] = False,
    out_dir: OutDir = Path("."),
    directory: Directory = None,
    directory_ca_file: DirectoryCa = None,
    http_port: Annotated[Optional[int], typer.Option(
        "--http-port", help="http-01: answer on this port with a built-in server [default: 80].")] = None,
    webroot: Annotated[Optional[Path], typer.Option(
        "--webroot", help="http-01: write answers under PATH/.well-known/acme-challenge/ for your web server.")] = None,
    dns_hook: Annotated[Optional[str], typer.Option(
        "--dns-hook", help="dns-01: run 'CMD add' / 'CMD remove' with TLSKIT_DNS_RECORD and TLSKIT_DNS_VALUE "
                           "(needed for wildcards).")] = None,
    tls_alpn_port: Annotated[Optional[int], typer.Option(
        "--tls-alpn-port", help="tls-alpn-01: answer on this port (usually 443) with a built-in TLS server.")] = None,
    bind: Annotated[str, typer.Option("--bind", help="Address the built-in http-01/tls-alpn-01 servers listen on "
                                                     "[default: all].")] = "",
    key_type: params.KeyType = None,
    csr: Annotated[Optional[Path], typer.Option("--csr", help="Use your own CSR (names and key come from it).")] = None,
    eab_kid: Annotated[Optional[str], typer.Option("--eab-kid", help="External account binding key id.")] = None,
    eab_hmac_key: Annotated[Optional[str], typer.Option("--eab-hmac-key", help="External account binding HMAC key "
                                                                                "(base64url).")] = None,
    force: params.Force = False,
    timeout: Timeout = 120.0,
    json_output: params.Json = False,
) -> None:
    """Get a certificate and write DIR/<name>/{privkey,cert,chain,fullchain}.pem.

    Example: tlskit acme issue example.com www.example.com --email me@example.com --agree-tos --webroot /var/www/html
    """
    from tlskit.acme import DnsHook, HttpStandalone, TlsAlpnStandalone, Webroot, issue_certificate, resolve_directory
    from tlskit.cli.output import spinner
    from tlskit.errors import InputError
    from tlskit.files import read_bytes

    chosen = [flag for flag, value in (("--http-port", http_port), ("--webroot", webroot), ("--dns-hook", dns_hook),
                                       ("--tls-alpn-port", tls_alpn_port)) if value is not None]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} were both given", fix="choose one challenge")
    if webroot is not None:
        solver = Webroot(webroot)
    elif dns_hook is not None:
        solver = DnsHook(dns_hook)
    elif tls_alpn_port is not None:
        solver = TlsAlpnStandalone(_port(tls_alpn_port, "--tls-alpn-port"), bind)
    else:
        solver = HttpStandalone(_port(http_port if http_port is not None else 80, "--http-port"), bind)
    if csr is not None and key_type is not None:
        raise InputError("--csr and --key-type were both given", fix="the key is the CSR's; drop --key-type")
    csr_pem = read_bytes(csr, "CSR") if csr is not None else None
    url = resolve_directory(directory)
    label = ", ".join(names or []) or "the CSR's names"
    with spinner(f"Getting a certificate for {label} from {_host(url)}...", enabled=not json_output):
        issued = issue_certificate(
            names or [], out_dir, url, email, solver, agree_tos=agree_tos, key_type=key_type or "ec:p256",
            csr_pem=csr_pem, directory_ca_file=directory_ca_file, eab_kid=eab_kid, eab_hmac_key=eab_hmac_key,
            force=force, timeout=timeout)
    if json_output:
        from tlskit.cli.output import print_json

        print_json(issued.as_dict())
        return
    from tlskit.cli.output import console, escape

    out = console()
    out.print(f"[green]Issued[/] a certificate for [bold]{escape(', '.join(issued.names))}[/] "
              f"by {escape(issued.issuer)}, valid until {issued.not_after:%Y-%m-%d} ({issued.challenge})")
    if issued.privkey:
        out.print(f"  key        {escape(str(issued.privkey))} (mode 0600)")
    out.print(f"  cert       {escape(str(issued.cert))}")
    out.print(f"  chain      {escape(str(issued.chain))}")
    out.print(f"  fullchain  {escape(str(issued.fullchain))}  <- what a web server serves")
    out.print(f"Next: renew before it expires, e.g. daily from cron: tlskit acme renew --out-dir {escape(str(out_dir))}")


@app.command("renew")
def renew(
    out_dir: OutDir = Path("."),
    days: Annotated[int, typer.Option("--days", help="Renew certificates that expire within this many days.")] = 30,
    deploy_hook: Annotated[Optional[str], typer.Option(
        "--deploy-hook", help="Run this shell command after each renewal (env TLSKIT_RENEWED_DIR, "
                              "TLSKIT_RENEWED_NAMES).")] = None,
    name: Annotated[Optional[list[str]], typer.Option("--name", help="Only the certificate of this first name "
                                                                    "(repeatable).")] = None,
    force_renew: Annotated[bool, typer.Option("--force-renew", help="Renew even if not due.")] = False,
    no_ari: Annotated[bool, typer.Option("--no-ari", help="Do not ask the CA's renewalInfo (ARI).")] = False,
    timeout: Timeout = 120.0,
    json_output: params.Json = False,
) -> None:
    """Renew every certificate under DIR that is due; leave the others untouched.

    Example: tlskit acme renew --out-dir /etc/tlskit --deploy-hook "systemctl reload nginx"
    """
    from tlskit.acme import renew_due
    from tlskit.cli.output import spinner
    from tlskit.errors import InputError, TlskitError

    if days < 0:
        raise InputError("--days must not be negative", fix="give a number of days, e.g. --days 30")
    with spinner(f"Checking certificates under {out_dir}...", enabled=not json_output):
        report = renew_due(out_dir, days, deploy_hook=deploy_hook, names=name, force_renew=force_renew,
                           use_ari=not no_ari, timeout=timeout)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"out_dir": str(out_dir), "days": days, "certificates": [o.as_dict() for o in report.outcomes],
                    "renewed": len(report.renewed), "failed": len(report.failed)})
    else:
        from tlskit.cli.output import console, escape

        out = console()
        if not report.outcomes:
            out.print(f"No certificates under {escape(str(out_dir))} (none has a renewal.json).")
        for outcome in report.outcomes:
            label = escape(", ".join(outcome.names) or outcome.lineage.name)
            if outcome.status == "renewed":
                until = f", valid until {outcome.issued.not_after:%Y-%m-%d}" if outcome.issued else ""
                out.print(f"[green]Renewed[/] {label} ({escape(outcome.reason)}){until}")
                if outcome.deploy_hook_error:
                    out.print(f"  [red]deploy hook failed[/]: {escape(outcome.deploy_hook_error)}")
            elif outcome.status == "not-due":
                out.print(f"Not due: {label} ({escape(outcome.reason)})")
            else:
                out.print(f"[red]Failed[/] {label}: {escape(outcome.error.message if outcome.error else '?')}")
    if report.failed:
        first = report.failed[0]
        what = first.error.message if first.error else first.deploy_hook_error
        error = TlskitError(f"{len(report.failed)} of {len(report.outcomes)} certificate(s) failed to renew",
                            f"{', '.join(first.names) or first.lineage.name}: {what}")
        error.exit_code = first.error.exit_code if first.error else 1
        raise error


@app.command("revoke")
def revoke(
    cert: Annotated[Path, typer.Argument(help="The certificate, e.g. DIR/example.com/cert.pem.")],
    reason: Annotated[str, typer.Option("--reason", help="unspecified, keyCompromise, affiliationChanged, "
                                                         "superseded or cessationOfOperation.")] = "unspecified",
    directory: Directory = None,
    directory_ca_file: DirectoryCa = None,
    json_output: params.Json = False,
) -> None:
    """Revoke a certificate at the CA that issued it.

    Example: tlskit acme revoke /etc/tlskit/example.com/cert.pem --reason superseded
    """
    from tlskit.acme import revoke_certificate
    from tlskit.cli.output import spinner

    with spinner(f"Revoking {cert}...", enabled=not json_output):
        done = revoke_certificate(cert, reason=reason, directory=directory, directory_ca_file=directory_ca_file)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"cert": str(done.cert), "serial": done.serial, "names": done.names,
                    "directory": done.directory, "reason": done.reason, "signed_with": done.signed_with})
        return
    from tlskit.cli.output import console, escape

    console().print(f"[green]Revoked[/] {escape(str(done.cert))} (serial {done.serial}, reason {done.reason}, "
                    f"signed with the {done.signed_with})")


def _port(value: int, flag: str) -> int:
    from tlskit.errors import InputError

    if not 1 <= value <= 65535:
        raise InputError(f"{flag} {value} is not a port", fix="give 1-65535")
    return value


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc or url
