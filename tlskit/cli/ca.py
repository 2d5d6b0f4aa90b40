"""`tlskit ca`: a local certificate authority in a directory (init, sign, client, revoke, crl, install, uninstall)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tlskit.cli import params

app = typer.Typer(help="A local CA: create it, sign CSRs (SANs kept), make client certificates, revoke, publish "
                       "CRLs, install it into trust stores.",
                  no_args_is_help=True)

CaDir = Annotated[Path, typer.Option("--ca-dir", help="The CA's directory (holds ca.pem and ca.key).")]
Names = Optional[list[str]]
PermitDns = Annotated[Names, typer.Option(
    "--permit-dns", help="Sign only names in this domain (it and every name under it), repeatable.")]
ExcludeDns = Annotated[Names, typer.Option("--exclude-dns", help="Never sign names in this domain, repeatable.")]
PermitIp = Annotated[Names, typer.Option(
    "--permit-ip", help="Sign only IP addresses in this network (CIDR), repeatable.")]
ExcludeIp = Annotated[Names, typer.Option("--exclude-ip", help="Never sign IP addresses in this network, repeatable.")]
PermitEmail = Annotated[Names, typer.Option(
    "--permit-email", help="Sign only e-mail addresses at this domain (or this one address), repeatable.")]
ExcludeEmail = Annotated[Names, typer.Option("--exclude-email", help="Never sign e-mail addresses at this domain, "
                                                                       "repeatable.")]


@app.command("init")
def init(
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Directory to create the CA in.")],
    subject: params.Subject = None,
    cn: params.CommonName = None,
    country: params.Country = None,
    state: params.State = None,
    locality: params.Locality = None,
    org: params.Org = None,
    org_unit: params.OrgUnit = None,
    key_type: params.KeyType = None,
    days: params.Days = 3650,
    parent: Annotated[Optional[Path], typer.Option(
        "--parent", help="Make an intermediate CA signed by the CA in this directory.")] = None,
    permit_dns: PermitDns = None,
    exclude_dns: ExcludeDns = None,
    permit_ip: PermitIp = None,
    exclude_ip: ExcludeIp = None,
    permit_email: PermitEmail = None,
    exclude_email: ExcludeEmail = None,
    passphrase_file: Annotated[Optional[Path], typer.Option(
        "--passphrase-file", help="File whose first line encrypts the new CA key (and decrypts --parent's key).")] = None,
    interactive: params.Interactive = False,
    force: params.Force = False,
    json_output: params.Json = False,
) -> None:
    """Create a CA: DIR/ca.key (mode 0600) and DIR/ca.pem, optionally limited to some names.

    With --permit-dns/--permit-ip/--exclude-dns... the CA carries critical name constraints: verifiers
    refuse any certificate it signs for other names, so a leaked CA key cannot impersonate other sites.

    Example: tlskit ca init --dir ./ca --cn "Example Dev CA" --org Example --permit-dns example.test
    """
    from tlskit.cli.common import subject_fields, subject_from_flags
    from tlskit.cli.output import spinner
    from tlskit.constraints import NameConstraintsSpec
    from tlskit.files import read_passphrase
    from tlskit.inspect import describe_certificate
    from tlskit.issue import LocalCA
    from tlskit.keys import DEFAULT_KEY_TYPE, KeySpec

    constraints = NameConstraintsSpec.parse(
        permit_dns=permit_dns or (), exclude_dns=exclude_dns or (), permit_ip=permit_ip or (),
        exclude_ip=exclude_ip or (), permit_email=permit_email or (), exclude_email=exclude_email or ())
    fields = subject_fields(cn, country, state, locality, org, org_unit, None)
    parsed_subject = subject_from_flags(subject, fields, interactive)
    spec = KeySpec.parse(key_type or DEFAULT_KEY_TYPE)
    passphrase = read_passphrase(passphrase_file)
    parent_ca = LocalCA.load(parent, passphrase) if parent is not None else None
    with spinner(f"Generating {spec} CA key...", enabled=spec.slow and not json_output):
        ca = LocalCA.create(directory, parsed_subject, spec, days, parent_ca, passphrase, force,
                            name_constraints=constraints or None)
    info = describe_certificate(ca.certificate)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"ca_dir": str(directory), "certificate": str(directory / "ca.pem"), "key": str(directory / "ca.key"),
                    "subject": info["subject"], "issuer": info["issuer"], "not_after": info["not_after"],
                    "intermediate": parent_ca is not None, "fingerprint_sha256": info["fingerprints"]["sha256"],
                    "name_constraints": constraints.describe()})
        return
    from tlskit.cli.output import console, escape

    out = console()
    kind = "intermediate CA" if parent_ca else "root CA"
    out.print(f"[green]Created[/] {kind} {escape(info['subject'])} in [bold]{escape(str(directory))}[/] "
              f"(valid until {info['not_after'][:10]}; key {escape(str(directory / 'ca.key'))}, mode 0600)")
    if constraints:
        out.print(f"  Name constraints (critical): {escape(', '.join(constraints.describe()))}")
    if parent_ca is None:
        out.print(f"Trust it on clients with {escape(str(directory / 'ca.pem'))} (e.g. curl --cacert).")
    out.print(f"Next: tlskit ca sign REQUEST.csr --ca-dir {escape(str(directory))} --out cert.pem")


@app.command("sign")
def sign(
    csr_file: Annotated[Path, typer.Argument(help="The CSR to sign (PEM or DER).", metavar="CSR")],
    ca_dir: CaDir,
    days: params.Days = 90,
    hours: Annotated[Optional[int], typer.Option(
        "--hours", help="Validity in hours instead of days: a short-lived certificate, renewed rather than "
                        "revoked.", show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Certificate file [default: CSR name with .pem].")] = None,
    fullchain: Annotated[bool, typer.Option(
        "--fullchain", help="Write the certificate followed by the CA's intermediates (what servers send).")] = False,
    passphrase_file: Annotated[Optional[Path], typer.Option(
        "--passphrase-file", help="File whose first line decrypts the CA key.")] = None,
    client: Annotated[bool, typer.Option(
        "--client", help="A client certificate (mutual TLS): clientAuth only, the CN names the user, only e-mail "
                         "and URI SANs kept.")] = False,
    force: params.Force = False,
    json_output: params.Json = False,
) -> None:
    """Sign a CSR: keeps its subject and SANs, CA:FALSE, serverAuth+clientAuth, SKI/AKI.

    With --client it is a client certificate for `tlskit serve --client-ca`: the CSR's CN is the user.

    Example: tlskit ca sign www.csr --ca-dir ./ca --days 90 --out www.pem
    """
    from tlskit.cli.output import warn
    from tlskit.files import read_passphrase
    from tlskit.inspect import describe_certificate
    from tlskit.issue import sign_csr_file

    written = sign_csr_file(ca_dir, csr_file, days=days, hours=hours, passphrase=read_passphrase(passphrase_file),
                            out=out, fullchain=fullchain, force=force, client=client)
    issued, cert_path = written.issued, written.path
    for warning in issued.warnings:
        warn(warning)
    info = describe_certificate(issued.certificate)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"certificate": str(cert_path), "subject": info["subject"], "issuer": info["issuer"],
                    "sans": info["sans"], "serial": info["serial"], "not_after": info["not_after"],
                    "fingerprint_sha256": info["fingerprints"]["sha256"], "chain_length": 1 + len(written.chain),
                    "client": client, "warnings": issued.warnings})
        return
    from tlskit.cli.output import console, escape

    named = info["subject"] if client else ", ".join(info["sans"]) or info["subject"]
    console().print(f"[green]Signed[/] {'client certificate ' if client else ''}[bold]{escape(str(cert_path))}[/] for "
                    f"{escape(named)} by {escape(info['issuer'])}, "
                    f"valid until {info['not_after'][:16].replace('T', ' ') + ' UTC' if hours else info['not_after'][:10]}")


@app.command("client")
def client(
    name: Annotated[str, typer.Argument(help="The user's name (its CN), as in tlskit users add.", metavar="NAME")],
    ca_dir: CaDir,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Certificate file [default: NAME.pem].")] = None,
    key_out: params.KeyOut = None,
    email: Annotated[Optional[str], typer.Option("--email", help="An e-mail SAN (rfc822Name).")] = None,
    uri: Annotated[Optional[str], typer.Option("--uri", help="A URI SAN, e.g. a SPIFFE ID.")] = None,
    key_type: params.KeyType = None,
    days: params.Days = 365,
    pkcs12: Annotated[Optional[Path], typer.Option(
        "--pkcs12", help="Also write key and certificate as PKCS#12, for browsers and curl --cert-type P12.")] = None,
    passphrase_file: Annotated[Optional[Path], typer.Option(
        "--passphrase-file", help="File whose first line encrypts the --pkcs12 file.")] = None,
    ca_passphrase_file: Annotated[Optional[Path], typer.Option(
        "--ca-passphrase-file", help="File whose first line decrypts the CA key.")] = None,
    force: params.Force = False,
    json_output: params.Json = False,
) -> None:
    """Make a user's client certificate in one step: key (0600), certificate, and PKCS#12 for browsers.

    The certificate is clientAuth only and names the user by CN, as `tlskit serve --client-ca` reads it.

    Example: tlskit ca client alice --ca-dir ./ca --email alice@example.test --pkcs12 alice.p12 --passphrase-file pw
    """
    from tlskit.cli.common import spinner_unless
    from tlskit.cli.output import warn
    from tlskit.clientcert import write_client_certificate
    from tlskit.files import read_passphrase
    from tlskit.inspect import describe_certificate

    made = write_client_certificate(ca_dir, name, out=out, key_out=key_out, email=email, uri=uri, key_type=key_type,
                                    days=days, pkcs12=pkcs12, pkcs12_passphrase=read_passphrase(passphrase_file),
                                    ca_passphrase=read_passphrase(ca_passphrase_file), force=force,
                                    slow_work=spinner_unless(json_output))
    for warning in made.issued.warnings:
        warn(warning)
    info = describe_certificate(made.issued.certificate)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"user": name, "certificate": str(made.cert_path), "key": str(made.key_path),
                    "pkcs12": str(made.pkcs12_path) if made.pkcs12_path else None, "subject": info["subject"],
                    "issuer": info["issuer"], "sans": info["sans"], "serial": info["serial"],
                    "not_after": info["not_after"], "fingerprint_sha256": info["fingerprints"]["sha256"],
                    "warnings": made.issued.warnings})
        return
    from tlskit.cli.output import console, escape

    out_console = console()
    extra = f", {escape(str(made.pkcs12_path))} (PKCS#12)" if made.pkcs12_path else ""
    out_console.print(f"[green]Made[/] a client certificate for [bold]{escape(name)}[/]: {escape(str(made.cert_path))}, "
                      f"key {escape(str(made.key_path))} (mode 0600){extra}; valid until {info['not_after'][:10]}")
    out_console.print(f"  SHA-256 {info['fingerprints']['sha256']}")
    out_console.print(f"Use it: curl --cert {escape(str(made.cert_path))} --key {escape(str(made.key_path))} "
                      f"https://HOST/api/me   (the server runs with --client-ca {escape(str(ca_dir / 'ca.pem'))})")


@app.command("revoke")
def revoke(
    cert_file: Annotated[Path, typer.Argument(help="The certificate to revoke (PEM or DER).", metavar="CERT")],
    ca_dir: CaDir,
    reason: Annotated[Optional[str], typer.Option(
        "--reason", help="keyCompromise, superseded, cessationOfOperation, affiliationChanged, privilegeWithdrawn, "
                         "cACompromise or unspecified.", show_default=False)] = None,
    json_output: params.Json = False,
) -> None:
    """Revoke a certificate this CA issued: recorded in CA_DIR/revoked.json, listed by the next `ca crl`.

    Revoking it again changes nothing (the first date and reason stand) and says so; exit 0.

    Example: tlskit ca revoke alice.pem --ca-dir ./ca --reason keyCompromise && tlskit ca crl --ca-dir ./ca --out ca.crl
    """
    from tlskit.files import load_certificates
    from tlskit.revocation.local_ca import revoke as record_revocation

    revocation = record_revocation(ca_dir, load_certificates(cert_file)[0], reason)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"certificate": str(cert_file), **revocation.record(), "already_revoked": revocation.already})
        return
    from tlskit.cli.output import console, escape

    out = console()
    if revocation.already:
        out.print(f"{escape(revocation.subject)} (serial {revocation.serial}) was already revoked on "
                  f"{revocation.revoked_at[:10]} ({revocation.reason}); nothing changed")
        return
    out.print(f"[green]Revoked[/] {escape(revocation.subject)} (serial {revocation.serial}, {revocation.reason})")
    out.print(f"Next: publish it, servers refuse it once they read the new CRL: "
              f"tlskit ca crl --ca-dir {escape(str(ca_dir))} --out ca.crl")


@app.command("crl")
def crl(
    ca_dir: CaDir,
    out: Annotated[Path, typer.Option("--out", "-o", help="The CRL file (PEM); an earlier CRL of this CA is "
                                                           "replaced.")],
    days: Annotated[int, typer.Option("--days", help="Days until the CRL's next update; publish again before.")] = 7,
    passphrase_file: Annotated[Optional[Path], typer.Option(
        "--passphrase-file", help="File whose first line decrypts the CA key.")] = None,
    force: params.Force = False,
    json_output: params.Json = False,
) -> None:
    """Publish the CA's certificate revocation list: signed, numbered, with a next update.

    Servers refuse every certificate once the next update has passed: run it again before (cron, a timer).

    Example: tlskit ca crl --ca-dir ./ca --out ca.crl --days 7   (tlskit serve --crl ca.crl reloads it)
    """
    from tlskit.files import read_passphrase
    from tlskit.revocation.local_ca import publish_crl

    published = publish_crl(ca_dir, out, days, read_passphrase(passphrase_file), force)
    next_update = published.crl.next_update_utc.isoformat()
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"crl": str(out), "number": published.number, "revoked": published.revoked,
                    "this_update": published.crl.last_update_utc.isoformat(), "next_update": next_update})
        return
    from tlskit.cli.output import console, escape

    console().print(f"[green]Wrote[/] CRL number {published.number} to [bold]{escape(str(out))}[/] "
                    f"({published.revoked} revoked); next update {next_update[:16].replace('T', ' ')} UTC: "
                    f"publish again before then")


InstallCaDir = Annotated[Path, typer.Option("--ca-dir", help="The root CA's directory (holds ca.pem).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print what would be done in each store; change nothing.")]
Stores = Annotated[Optional[list[str]], typer.Option(
    "--store", help="Only this store: system, nss (Firefox, Chromium) or java, repeatable [default: all].")]


@app.command("install")
def install(ca_dir: InstallCaDir, dry_run: DryRun = False, store: Stores = None,
            json_output: params.Json = False) -> None:
    """Trust the CA on this machine: the system store, Firefox/Chromium (NSS) and Java, each reported.

    Needs root for the system store and Java (sudo); `tlskit ca uninstall` removes exactly what it added.

    Example: sudo tlskit ca install --ca-dir ./ca
    """
    from tlskit.truststores import TrustPlan, parse_stores

    stores = parse_stores(store)
    plan = TrustPlan.for_ca(ca_dir)
    _report_steps(lambda: plan.install(dry_run, stores), plan, "install", dry_run, json_output)


@app.command("uninstall")
def uninstall(ca_dir: InstallCaDir, dry_run: DryRun = False, store: Stores = None,
              json_output: params.Json = False) -> None:
    """Stop trusting the CA on this machine: remove what `tlskit ca install` added, nothing else.

    Example: sudo tlskit ca uninstall --ca-dir ./ca
    """
    from tlskit.truststores import TrustPlan, parse_stores

    stores = parse_stores(store)
    plan = TrustPlan.for_ca(ca_dir)
    _report_steps(lambda: plan.uninstall(dry_run, stores), plan, "uninstall", dry_run, json_output)


def _report_steps(run, plan, verb: str, dry_run: bool, json_output: bool) -> None:
    from tlskit.truststores import TrustStoreError

    failure = None
    try:
        steps = run()
    except TrustStoreError as exc:
        failure, steps = exc, exc.steps
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"ca": str(plan.ca_dir / "ca.pem"), "subject": plan.subject, "name": plan.nickname,
                    "fingerprint_sha256": plan.fingerprint, "dry_run": dry_run,
                    "stores": [step.as_dict() for step in steps]})
    else:
        import shlex

        from tlskit.cli.output import console, escape

        out = console()
        heading = "Would" if dry_run else ("Installed" if verb == "install" else "Uninstalled")
        out.print(f"{heading} {'' if not dry_run else verb + ' '}{escape(plan.subject)} "
                  f"({escape(plan.nickname)}):")
        for step in steps:
            detail = f"  ({escape(step.detail)})" if step.detail else ""
            out.print(f"  {step.store:<7} {step.result:<13} {escape(step.location)}{detail}")
            if dry_run:
                for command in step.commands:
                    out.print(f"          $ {escape(shlex.join(command))}")
    if failure is not None:
        raise failure
