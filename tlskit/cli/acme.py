"""`tlskit acme issue|renew|revoke|certificates|delete|account`: certificates from any RFC 8555 CA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tlskit.cli import params

app = typer.Typer(help="Certificates from Let's Encrypt or any ACME (RFC 8555) CA: issue, renew, revoke, list, "
                       "account.", no_args_is_help=True)
account_app = typer.Typer(help="The ACME account under --out-dir: show it, change its e-mail, roll its key "
                               "over, deactivate it.", no_args_is_help=True)
app.add_typer(account_app, name="account")

Directory = Annotated[Optional[str], typer.Option(
    "--directory", help="ACME directory URL, or letsencrypt / letsencrypt-staging [default: letsencrypt].")]
AccountDirectory = Annotated[Optional[str], typer.Option(
    "--directory", help="The CA's directory URL (or letsencrypt / letsencrypt-staging) [default: the only "
                        "account kept under --out-dir].")]
DirectoryCa = Annotated[Optional[Path], typer.Option(
    "--directory-ca-file", help="Trust this CA file for the directory's HTTPS (a private CA such as Pebble).")]
OutDir = Annotated[Path, typer.Option("--out-dir", "-d", help="Where certificates and the account live.")]
Timeout = Annotated[float, typer.Option("--timeout", help="Give up on the CA after this many seconds.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking (needed off a terminal).")]
NoAri = Annotated[bool, typer.Option("--no-ari", help="Do not ask the CA's renewalInfo (ARI).")]
WindowDays = Annotated[Optional[int], typer.Option(
    "--days", help="Renew when fewer than N days are left [default: when a third of the lifetime is left, "
                   "or in the CA's ARI window].")]
VerifyServed = Annotated[Optional[str], typer.Option(
    "--verify-served", help="After renewing (and the deploy hook), check that HOST:PORT serves the new "
                            "certificate; fail if it still serves the old one.")]


@app.command("issue")
def issue(
    names: Annotated[Optional[list[str]], typer.Argument(
        help="DNS names or IP addresses; the first names the directory.", show_default=False)] = None,
    email: Annotated[Optional[str], typer.Option("--email", help="Contact for the CA's notices (updates a "
                                                                "known account's contact).")] = None,
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
    profile: Annotated[Optional[str], typer.Option(
        "--profile", help="The CA's certificate profile (tlsserver, shortlived...), when its directory offers "
                          "profiles; kept for renewal.")] = None,
    preferred_chain: Annotated[Optional[str], typer.Option(
        "--preferred-chain", help="Keep the CA's chain whose top certificate is issued by this CN "
                                  "(e.g. \"ISRG Root X1\"); kept for renewal.")] = None,
    verify_served: VerifyServed = None,
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
            profile=profile, preferred_chain=preferred_chain, verify_served=verify_served, force=force,
            timeout=timeout)
    if json_output:
        from tlskit.cli.output import print_json

        print_json(issued.as_dict())
        return
    from tlskit.cli.output import console, escape

    out = console()
    profile_note = f", profile {issued.profile}" if issued.profile else ""
    out.print(f"[green]Issued[/] a certificate for [bold]{escape(', '.join(issued.names))}[/] "
              f"by {escape(issued.issuer)}, valid until {issued.not_after:%Y-%m-%d %H:%M} UTC "
              f"({issued.challenge}{escape(profile_note)})")
    if issued.preferred_chain_found is False:
        out.print(f"  chain      the CA offers no chain to {escape(preferred_chain or '')}; kept its default "
                  f"(to {escape(issued.chain_issuer or '?')})")
    if issued.privkey:
        out.print(f"  key        {escape(str(issued.privkey))} (mode 0600)")
    out.print(f"  cert       {escape(str(issued.cert))}")
    out.print(f"  chain      {escape(str(issued.chain))}" + (f" (to {escape(issued.chain_issuer)})"
                                                             if issued.chain_issuer else ""))
    out.print(f"  fullchain  {escape(str(issued.fullchain))}  <- what a web server serves")
    out.print(f"Next: renew it unattended, e.g. daily from cron: tlskit acme renew --out-dir {escape(str(out_dir))}")


@app.command("renew")
def renew(
    out_dir: OutDir = Path("."),
    days: WindowDays = None,
    deploy_hook: Annotated[Optional[str], typer.Option(
        "--deploy-hook", help="Run this shell command after each renewal (env TLSKIT_RENEWED_DIR, "
                              "TLSKIT_RENEWED_NAMES).")] = None,
    verify_served: VerifyServed = None,
    name: Annotated[Optional[list[str]], typer.Option("--name", help="Only the certificate of this first name "
                                                                    "(repeatable).")] = None,
    force_renew: Annotated[bool, typer.Option("--force-renew", help="Renew even if not due.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Order every selected certificate for real (Let's Encrypt: from its staging CA) and "
                          "save nothing; no deploy hook.")] = False,
    no_ari: NoAri = False,
    timeout: Timeout = 120.0,
    print_systemd_timer: Annotated[bool, typer.Option(
        "--print-systemd-timer", help="Print a systemd service and timer that run this renewal twice a day, "
                                      "and exit.")] = False,
    json_output: params.Json = False,
) -> None:
    """Renew every certificate under DIR that is due; leave the others untouched.

    Example: tlskit acme renew --out-dir /etc/tlskit --deploy-hook "systemctl reload nginx" --verify-served localhost:443
    """
    if print_systemd_timer:
        import sys

        from tlskit.cli.common import own_command
        from tlskit.systemd import render_files, renew_units

        command = [*own_command(absolute=True), "acme", "renew", "--out-dir", str(out_dir.absolute())]
        for flag, value in (("--days", days), ("--deploy-hook", deploy_hook), ("--verify-served", verify_served)):
            command += [flag, str(value)] if value is not None else []
        for one in name or []:
            command += ["--name", one]
        command += ["--no-ari"] if no_ari else []
        sys.stdout.write(render_files(renew_units(command, out_dir=out_dir.absolute())))
        return
    from tlskit.acme import renew_due
    from tlskit.cli.output import spinner
    from tlskit.errors import spelling_options

    with spelling_options(_renewal_spelling), spinner(f"Checking certificates under {out_dir}...",
                                                      enabled=not json_output):
        report = renew_due(out_dir, days, deploy_hook=deploy_hook, names=name, force_renew=force_renew,
                           use_ari=not no_ari, dry_run=dry_run, verify_served=verify_served, timeout=timeout)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"out_dir": str(out_dir), "days": days, "dry_run": dry_run,
                    "certificates": [o.as_dict() for o in report.outcomes],
                    "renewed": len(report.renewed), "failed": len(report.failed)})
    else:
        _print_renewals(report, out_dir)
    failure = report.failure()
    if failure is not None:
        raise failure


# What a renewal reads from each lineage's renewal.json, where tlskit acme issue took it as a flag:
# renew has no such flags, so a message that names one points at the file (the key it is kept under).
_RENEWAL_KEYS = {name: name for name in ("directory", "directory_ca_file", "email", "profile",
                                         "preferred_chain", "key_type")} | {"dns_hook": "challenge.command"}


def _renewal_spelling(name: str) -> str:
    if name in _RENEWAL_KEYS:
        return f"{_RENEWAL_KEYS[name]} in renewal.json"
    if name == "csr":
        return "the lineage's request.csr"
    return params.flag(name)


def _print_renewals(report, out_dir: Path) -> None:
    from tlskit.cli.output import console, escape

    out = console()
    if not report.outcomes:
        out.print(f"No certificates under {escape(str(out_dir))} (none has a renewal.json).")
    for outcome in report.outcomes:
        label = escape(", ".join(outcome.names) or outcome.lineage.name)
        if outcome.status == "renewed":
            until = f", valid until {outcome.issued.not_after:%Y-%m-%d %H:%M} UTC" if outcome.issued else ""
            out.print(f"[green]Renewed[/] {label} ({escape(outcome.reason)}){until}")
            if outcome.deploy_hook_error:
                out.print(f"  [red]deploy hook failed[/]: {escape(outcome.deploy_hook_error)}")
            if outcome.served_error:
                out.print(f"  [red]not served[/]: {escape(outcome.served_error)}")
        elif outcome.status == "dry-run":
            issued = outcome.issued
            out.print(f"[green]Dry run OK[/] {label}: the CA issued serial {issued.serial} "
                      f"(valid until {issued.not_after:%Y-%m-%d}); nothing saved")
        elif outcome.status == "not-due":
            out.print(f"Not due: {label}, {escape(outcome.reason)}")
        else:
            out.print(f"[red]Failed[/] {label}: {escape(outcome.problem or '?')}")


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


@app.command("certificates")
def certificates(
    out_dir: OutDir = Path("."),
    name: Annotated[Optional[list[str]], typer.Option("--name", help="Only this certificate (repeatable).")] = None,
    days: WindowDays = None,
    no_ari: NoAri = False,
    json_output: params.Json = False,
) -> None:
    """List the certificates under DIR: names, expiry, key, challenge, and when each renews and why.

    Example: tlskit acme certificates --out-dir /etc/tlskit
    """
    from tlskit.acme import list_certificates
    from tlskit.cli.output import spinner

    with spinner(f"Reading certificates under {out_dir}...", enabled=not json_output):
        found = list_certificates(out_dir, days=days, use_ari=not no_ari, names=name)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"out_dir": str(out_dir), "certificates": [c.as_dict() for c in found]})
        return
    from tlskit.cli.output import console, escape

    out = console()
    if not found:
        out.print(f"No certificates under {escape(str(out_dir))} (none has a renewal.json).")
    for item in found:
        out.print(f"[bold]{escape(item.name)}[/]")
        if item.error:
            out.print(f"  [red]damaged[/]: {escape(item.error)}")
            continue
        out.print(f"  names      {escape(', '.join(item.names))}")
        out.print(f"  expires    {item.not_after:%Y-%m-%d %H:%M} UTC (serial {item.serial})")
        extras = "".join(f", {label} {escape(value)}" for label, value in
                         (("profile", item.profile), ("preferred chain", item.preferred_chain)) if value)
        out.print(f"  key        {item.key_type}, {escape(str(item.challenge))}{extras}")
        plan = item.plan
        out.print(f"  renews     {plan.renew_at:%Y-%m-%d %H:%M} UTC ({escape(plan.reason)})")
        if plan.ari is None:
            out.print(f"  ARI        {escape(plan.ari_note or 'not asked')}")
        if item.verify_served:
            out.print(f"  served at  {escape(item.verify_served)} (checked after each renewal)")
        out.print(f"  directory  {escape(str(item.directory))}")


@app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="The certificate's first name (or its directory name).")],
    out_dir: OutDir = Path("."),
    yes: Yes = False,
    json_output: params.Json = False,
) -> None:
    """Delete a certificate's files (key included); the account stays, the certificate stays valid at the CA.

    Example: tlskit acme delete old.example.com --out-dir /etc/tlskit --yes
    """
    from tlskit.acme import delete_certificate

    _confirm(yes, f"Delete the certificate {name} and its private key under {out_dir}?")
    done = delete_certificate(out_dir, name)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"name": done.name, "dir": str(done.path), "names": done.names,
                    "removed": [str(p) for p in done.removed]})
        return
    from tlskit.cli.output import console, escape

    console().print(f"[green]Deleted[/] {escape(str(done.path))} ({len(done.removed)} files; the account stays)")


# --- account -------------------------------------------------------------------------------------


@account_app.command("show")
def account_show(out_dir: OutDir = Path("."), directory: AccountDirectory = None,
                 directory_ca_file: DirectoryCa = None, json_output: params.Json = False) -> None:
    """Show the account as the CA sees it: URL, status, contact, key.

    Example: tlskit acme account show --out-dir /etc/tlskit
    """
    from tlskit.acme import show_account

    _print_account(show_account(out_dir, directory, directory_ca_file), json_output)


@account_app.command("update")
def account_update(
    email: Annotated[Optional[str], typer.Option("--email", help="The new contact e-mail.")] = None,
    no_email: Annotated[bool, typer.Option("--no-email", help="Remove the contact.")] = False,
    out_dir: OutDir = Path("."), directory: AccountDirectory = None, directory_ca_file: DirectoryCa = None,
    json_output: params.Json = False,
) -> None:
    """Change the account's contact e-mail at the CA.

    Example: tlskit acme account update --email ops@example.com --out-dir /etc/tlskit
    """
    from tlskit.acme import update_email
    from tlskit.errors import InputError

    if (email is None) == (not no_email):
        raise InputError("give --email ADDRESS or --no-email", fix="for example --email ops@example.com")
    _print_account(update_email(out_dir, email, directory, directory_ca_file), json_output, "Updated")


@account_app.command("rollover")
def account_rollover(out_dir: OutDir = Path("."), directory: AccountDirectory = None,
                     directory_ca_file: DirectoryCa = None, key_type: params.KeyType = None,
                     json_output: params.Json = False) -> None:
    """Replace the account key with a new one at the CA (RFC 8555 key change); the account stays.

    Example: tlskit acme account rollover --out-dir /etc/tlskit
    """
    from tlskit.acme import rollover_key

    _print_account(rollover_key(out_dir, directory, directory_ca_file, key_type or "ec:p256"), json_output,
                   "Rolled over")


@account_app.command("deactivate")
def account_deactivate(out_dir: OutDir = Path("."), directory: AccountDirectory = None,
                       directory_ca_file: DirectoryCa = None, yes: Yes = False,
                       json_output: params.Json = False) -> None:
    """Deactivate the account at the CA for good; its files move to accounts/retired/.

    Certificates already issued stay valid; the next issue registers a new account.
    Example: tlskit acme account deactivate --out-dir /etc/tlskit --yes
    """
    from tlskit.acme import deactivate

    _confirm(yes, f"Deactivate the ACME account under {out_dir} at the CA? This cannot be undone.")
    _print_account(deactivate(out_dir, directory, directory_ca_file), json_output, "Deactivated")


def _print_account(info, json_output: bool, done: str | None = None) -> None:
    if json_output:
        from tlskit.cli.output import print_json

        print_json(info.as_dict())
        return
    from tlskit.cli.output import console, escape

    out = console()
    if done:
        out.print(f"[green]{done}[/] the account {escape(info.uri)}")
    out.print(f"  account    {escape(info.uri)} ({escape(info.status)})")
    out.print(f"  directory  {escape(info.directory)}")
    out.print(f"  contact    {escape(', '.join(info.contact) or 'none')}")
    out.print(f"  key        {info.key_type}, thumbprint {info.thumbprint}"
              + (f" (was {info.previous_thumbprint})" if info.previous_thumbprint else ""))
    out.print(f"  kept in    {escape(str(info.retired_to or info.path))}")


def _confirm(yes: bool, question: str) -> None:
    import sys

    from tlskit.errors import InputError

    if yes:
        return
    if not sys.stdin.isatty():
        raise InputError("this cannot be undone and was not confirmed", fix="pass --yes")
    if not typer.confirm(question, default=False, err=True):
        raise InputError("not confirmed", fix="nothing was changed")


def _port(value: int, flag: str) -> int:
    from tlskit.errors import InputError

    if not 1 <= value <= 65535:
        raise InputError(f"{flag} {value} is not a port", fix="give 1-65535")
    return value


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc or url
