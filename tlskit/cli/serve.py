"""`tlskit serve`: an authenticated HTTPS API over an SQLite dataset, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tlskit.cli import params
from tlskit.server.engine import HttpLimits
from tlskit.server.throttle import ThrottleSettings

# The limits' defaults live with the limits (HttpLimits, ThrottleSettings); the help texts read them there.


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
    max_header_line: Annotated[Optional[int], typer.Option("--max-header-line", help=f"Longest request line or header field line, in bytes (431/414 beyond). [default: {HttpLimits.max_header_line:g}]")] = None,
    max_header_size: Annotated[Optional[int], typer.Option("--max-header-size", help=f"Largest header section, in bytes (431 beyond). [default: {HttpLimits.max_header_size:g}]")] = None,
    max_header_fields: Annotated[Optional[int], typer.Option("--max-header-fields", help=f"Most header fields in one request (431 beyond). [default: {HttpLimits.max_header_fields:g}]")] = None,
    header_timeout: Annotated[Optional[float], typer.Option("--header-timeout", help=f"Seconds a client may take to send its request headers (408). [default: {HttpLimits.header_timeout:g}]")] = None,
    handshake_timeout: Annotated[Optional[float], typer.Option("--handshake-timeout", help=f"Seconds a client may take for the TLS handshake. [default: {HttpLimits.handshake_timeout:g}]")] = None,
    body_timeout: Annotated[Optional[float], typer.Option("--body-timeout", help=f"Seconds between two reads of a request body (408). [default: {HttpLimits.body_timeout:g}]")] = None,
    send_timeout: Annotated[Optional[float], typer.Option("--send-timeout", help=f"Seconds a client may leave an answer unread before it is cut. [default: {HttpLimits.send_timeout:g}]")] = None,
    keepalive_timeout: Annotated[Optional[float], typer.Option("--keepalive-timeout", help=f"Seconds an idle keep-alive connection stays open. [default: {HttpLimits.keepalive_timeout:g}]")] = None,
    keepalive_requests: Annotated[Optional[int], typer.Option("--keepalive-requests", help=f"Requests on one connection before it is closed. [default: {HttpLimits.keepalive_requests:g}]")] = None,
    max_pending_per_ip: Annotated[Optional[int], typer.Option("--max-pending-per-ip", help=f"Connections one client address may hold before its first request is in (IPv6: per /64). [default: {HttpLimits.max_pending_per_ip:g}]")] = None,
    max_connections: Annotated[Optional[int], typer.Option("--max-connections", help=f"Connections per worker (lowered to fit the file-descriptor limit). [default: {HttpLimits.max_connections:g}]")] = None,
    max_auth_failures: Annotated[Optional[int], typer.Option("--max-auth-failures", help=f"Wrong passwords per client address per minute before 429 (0: no budget). [default: {ThrottleSettings.max_failures:g}]")] = None,
    auth_ban_seconds: Annotated[Optional[float], typer.Option("--auth-ban-seconds", help=f"Seconds an address that spent its failure budget gets 429 for password checks. [default: {ThrottleSettings.ban:g}]")] = None,
    client_ca: Annotated[Optional[Path], typer.Option("--client-ca", help="Ask clients for a certificate issued by this CA (mutual TLS); it authenticates the user its CN names.")] = None,
    client_cert: Annotated[Optional[str], typer.Option("--client-cert", help="optional: a client may use another credential instead; required: no handshake without a certificate. [default: optional]")] = None,
    crl: Annotated[Optional[Path], typer.Option("--crl", help="CRL of the --client-ca (tlskit ca crl); revoked certificates are refused, reloaded when the file changes.")] = None,
    hash_workers: Annotated[Optional[int], typer.Option("--hash-workers", help="Threads for slow password hashes (each argon2 check takes 64 MiB) [default: cores, at most 4].")] = None,
) -> None:
    """Serve an SQLite dataset as an authenticated JSON API over HTTPS.

    With no --cert/--key it makes (once) a local CA and a localhost certificate under --state-dir.
    The access log goes to stdout, everything else to stderr.

    Example: tlskit serve --cert fullchain.pem --key privkey.pem --host 0.0.0.0 --port 443 --allow 10.0.0.0/8
    """
    from tlskit.errors import InputError
    from tlskit.server.config import build_config
    from tlskit.server.run import prepare, serve as run_server

    options = dict(host=host, port=port, cert=cert, key=key, redirect_port=redirect_port, workers=workers,
                   state_dir=state_dir, db=db, dataset=dataset, allow=allow, key_header=key_header,
                   allow_query_token=allow_query_token, realm=realm, log_json=log_json,
                   access_log=not no_access_log, max_requests=max_requests, max_concurrent=max_concurrent,
                   upstream=upstream, upstream_timeout=upstream_timeout, upstream_ca_file=upstream_ca_file,
                   trust_proxy=trust_proxy, reload_interval=reload_interval, max_header_line=max_header_line,
                   max_header_size=max_header_size, max_header_fields=max_header_fields,
                   header_timeout=header_timeout, handshake_timeout=handshake_timeout, body_timeout=body_timeout,
                   send_timeout=send_timeout, keepalive_timeout=keepalive_timeout,
                   keepalive_requests=keepalive_requests, max_pending_per_ip=max_pending_per_ip,
                   max_connections=max_connections, max_auth_failures=max_auth_failures,
                   auth_ban_seconds=auth_ban_seconds, hash_workers=hash_workers, client_ca=client_ca,
                   client_cert=client_cert, crl=crl)
    config = build_config(options)           # every option checked before anything is written
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
        config = build_config({**options, "cert": managed.fullchain, "key": managed.privkey,
                               "redirect_port": managed.http_port, "acme_webroot": managed.webroot})
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
        f"  users:       {prepared.db} ({prepared.user_count} user{'' if prepared.user_count == 1 else 's'})",
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
