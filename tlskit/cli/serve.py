"""`tlskit serve`: an authenticated HTTPS API over an SQLite dataset, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tlskit.cli import params


def serve(
    cert: Annotated[Optional[Path], typer.Option("--cert", help="Certificate (chain) PEM [default: a local CA's localhost certificate].")] = None,
    key: Annotated[Optional[Path], typer.Option("--key", help="Private key PEM of --cert.")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="HTTPS port.")] = 8443,
    redirect_port: Annotated[Optional[int], typer.Option("--redirect-port", help="Also listen with plain HTTP here and 308-redirect to HTTPS.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes (one per core).")] = 1,
    state_dir: Annotated[Optional[Path], typer.Option("--state-dir", help="Local CA, certificate, users and demo data [default: ~/.local/share/tlskit].")] = None,
    db: params.UsersDb = None,
    dataset: Annotated[Optional[Path], typer.Option("--dataset", help="SQLite file to serve [default: the demo dataset].")] = None,
    allow: Annotated[Optional[list[str]], typer.Option("--allow", help="Client CIDR allowed in, repeatable [default: loopback only].")] = None,
    key_header: Annotated[Optional[list[str]], typer.Option("--key-header", help="Another header carrying an API key (X-API-Key always works), repeatable.")] = None,
    allow_query_token: Annotated[bool, typer.Option("--allow-query-token", help="Accept ?authtoken=KEY (it ends up in URLs and histories).")] = False,
    realm: Annotated[str, typer.Option("--realm", help="Realm in WWW-Authenticate.")] = "tlskit",
    log_json: Annotated[bool, typer.Option("--log-json", help="Access log as JSON lines instead of combined-log lines.")] = False,
    no_access_log: Annotated[bool, typer.Option("--no-access-log", help="Do not write an access log line per request.")] = False,
    max_requests: Annotated[int, typer.Option("--max-requests", help="Default requests per hour per user (0: unlimited).")] = 0,
    max_concurrent: Annotated[int, typer.Option("--max-concurrent", help="Default requests in flight per user (0: unlimited).")] = 0,
    upstream: Annotated[Optional[str], typer.Option("--upstream", help="Reverse proxy to this application (http://HOST:PORT); with --dataset, /api stays the dataset's.")] = None,
    upstream_timeout: Annotated[float, typer.Option("--upstream-timeout", help="Seconds to wait for the upstream's answer before a 504.")] = 60.0,
    upstream_ca_file: Annotated[Optional[Path], typer.Option("--upstream-ca-file", help="CA file to verify an https --upstream with [default: certifi's roots].")] = None,
    trust_proxy: Annotated[Optional[list[str]], typer.Option("--trust-proxy", help="CIDR of a proxy in front of us whose X-Forwarded-For is believed, repeatable.")] = None,
    reload_interval: Annotated[float, typer.Option("--reload-interval", help="Seconds between checks for renewed --cert/--key files (0: never reload).")] = 1.0,
    acme: Annotated[Optional[list[str]], typer.Option("--acme", help="Get (and renew) the certificate for this name from an ACME CA, repeatable; http-01 on the redirect port [default 80].")] = None,
    email: Annotated[Optional[str], typer.Option("--email", help="--acme: contact for the CA's expiry notices.")] = None,
    agree_tos: Annotated[bool, typer.Option("--agree-tos", help="--acme: agree to the CA's terms of service.")] = False,
    directory: Annotated[Optional[str], typer.Option("--directory", help="--acme: ACME directory URL, or letsencrypt / letsencrypt-staging [default: letsencrypt].")] = None,
    directory_ca_file: Annotated[Optional[Path], typer.Option("--directory-ca-file", help="--acme: trust this CA file for the directory's HTTPS (a private CA such as Pebble).")] = None,
    acme_renew_days: Annotated[Optional[int], typer.Option("--acme-renew-days", help="--acme: renew this many days before expiry [default: when a third of the lifetime is left, or in the CA's ARI window].")] = None,
    acme_check_interval: Annotated[Optional[float], typer.Option("--acme-check-interval", hidden=True, help="--acme: longest sleep between renewal checks, in seconds [default: until the certificate is due].")] = None,
) -> None:
    """Serve an SQLite dataset as an authenticated JSON API over HTTPS.

    With no --cert/--key it makes (once) a local CA and a localhost certificate under --state-dir.
    The access log goes to stdout, everything else to stderr.

    Example: tlskit serve --cert fullchain.pem --key privkey.pem --host 0.0.0.0 --port 443 --allow 10.0.0.0/8
    """
    from tlskit.errors import InputError
    from tlskit.server.config import ServeConfig, parse_allow, parse_key_headers
    from tlskit.server.run import prepare, serve as run_server

    for value, flag in ((port, "--port"), (redirect_port, "--redirect-port")):
        if value is not None and not 0 < value < 65536:
            raise InputError(f"{flag} {value} is not a TCP port", fix="give a number from 1 to 65535")
    if max_requests < 0 or max_concurrent < 0:
        raise InputError("--max-requests and --max-concurrent cannot be negative", fix="give 0 (unlimited) or more")
    if upstream is not None:
        from tlskit.server.proxy import parse_upstream

        parse_upstream(upstream)
        if upstream_timeout <= 0:
            raise InputError(f"--upstream-timeout {upstream_timeout} is not positive", fix="give seconds, e.g. 30")
        if upstream_ca_file is not None and not upstream_ca_file.is_file():
            raise InputError(f"--upstream-ca-file {upstream_ca_file} does not exist", fix="give a PEM CA file")
    if trust_proxy:
        from tlskit.server.trusted_proxy import parse_networks

        trust_proxy = [str(n) for n in parse_networks(trust_proxy)]
    managed = None
    if acme:
        if cert is not None or key is not None:
            raise InputError("--acme and --cert/--key exclude each other",
                             fix="let --acme obtain the certificate, or serve your own with --cert/--key")
        from tlskit.server import default_state_dir
        from tlskit.server.managed_acme import start_managed_certificate

        managed = start_managed_certificate(
            acme, Path(state_dir) if state_dir else default_state_dir(), directory=directory, email=email,
            agree_tos=agree_tos, directory_ca_file=directory_ca_file, host=host, http_port=redirect_port,
            renew_days=acme_renew_days, max_sleep=acme_check_interval, say=_say)
        cert, key, redirect_port = managed.fullchain, managed.privkey, managed.http_port
    config = ServeConfig(host=host, port=port, cert=cert, key=key, redirect_port=redirect_port, workers=workers,
                         state_dir=state_dir, db=db, dataset=dataset, allow=parse_allow(allow),
                         key_headers=parse_key_headers(key_header), allow_query_token=allow_query_token,
                         realm=realm, log_json=log_json, access_log=not no_access_log,
                         max_requests=max_requests, max_concurrent=max_concurrent, upstream=upstream,
                         upstream_timeout=upstream_timeout, upstream_ca_file=upstream_ca_file,
                         trust_proxy=tuple(trust_proxy or ()),
                         reload_interval=max(0.0, reload_interval),
                         acme_webroot=managed.webroot if managed else None)
    prepared = prepare(config)
    if managed is not None:
        managed.start_renewal()
    run_server(prepared, on_ready=lambda: _banner(prepared))


def _say(text: str) -> None:
    import sys

    sys.stderr.write(f"tlskit serve: {text}\n")
    sys.stderr.flush()


def _banner(prepared) -> None:
    import shlex
    import sys

    from tlskit.server import default_state_dir, default_users_db

    config = prepared.config
    where = []
    if config.db:
        where = ["--db", str(prepared.db)]
    elif prepared.db != default_users_db(default_state_dir()):
        where = ["--state-dir", str(prepared.state_dir)]
    add = shlex.join(["tlskit", "users", "add", "alice", "--token", *where])
    cacert = f"--cacert {shlex.quote(str(prepared.ca_cert))} " if prepared.ca_cert else ""
    nets = ", ".join(str(n) for n in config.networks())
    lines = [
        f"tlskit serve: listening on {prepared.url} (TLS 1.2+, {config.workers} worker{'s' if config.workers > 1 else ''})",
        f"  certificate: {prepared.cert}",
    ]
    if prepared.ca_cert:
        lines.append(f"  local CA:    {prepared.ca_cert}  (trust this file in clients)")
    if config.upstream:
        lines.append(f"  upstream:    {config.upstream} ({'/api from the dataset, ' if config.dataset else ''}"
                     f"X-Forwarded-User set, credentials not forwarded)")
    lines += [
        f"  dataset:     {prepared.dataset}" if not config.upstream or config.dataset else "",
        f"  users:       {prepared.db} ({prepared.users} user{'' if prepared.users == 1 else 's'})",
        f"  clients:     {nets}",
    ]
    if config.redirect_port:
        lines.append(f"  redirect:    http://{config.host}:{config.redirect_port}/ -> https (308)")
    lines += [
        f"Add a user:    {add}",
        f"Call the API:  curl {cacert}-H \"Authorization: Bearer $TOKEN\" {prepared.url}api",
        "Stop with Ctrl-C.",
    ]
    sys.stderr.write("\n".join(line for line in lines if line) + "\n")
    sys.stderr.flush()
