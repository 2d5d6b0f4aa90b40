"""`tlskit serve`: an authenticated HTTPS API over an SQLite dataset, in one command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from tlskit.cli import params
from tlskit.cli.params import flag
from tlskit.errors import spelling_options
from tlskit.server.engine import HttpLimits
from tlskit.server.throttle import ThrottleSettings

# The limits' defaults live with the limits (HttpLimits, ThrottleSettings); the help texts read them there.


def serve(
    ctx: typer.Context,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="TOML file of settings: each flag is a key (max_requests = 100, allow = [\"10.0.0.0/8\"]); flags and TLSKIT_* variables override it [default: $TLSKIT_CONFIG].")] = None,
    print_config: Annotated[bool, typer.Option("--print-config", help="Print the effective settings (secrets masked) as TOML, with where each came from, and exit.")] = False,
    print_systemd_unit: Annotated[bool, typer.Option("--print-systemd-unit", help="Print a hardened systemd service running this command, and exit.")] = False,
    cert: Annotated[Optional[Path], typer.Option("--cert", help="Certificate (chain) PEM [default: a local CA's localhost certificate].")] = None,
    key: Annotated[Optional[Path], typer.Option("--key", help="Private key PEM of --cert.")] = None,
    passphrase_file: Annotated[Optional[Path], typer.Option("--passphrase-file", help="File whose first line decrypts an encrypted --key (read again when the key is reloaded).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="HTTPS port.")] = 8443,
    redirect_port: Annotated[Optional[int], typer.Option("--redirect-port", help="Also listen with plain HTTP here and 308-redirect to HTTPS.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes (one per core); one that is killed is replaced, one that fails stops the server.")] = 1,
    state_dir: Annotated[Optional[Path], typer.Option("--state-dir", help="Local CA, certificate, users and demo data [default: ~/.local/share/tlskit].")] = None,
    db: params.UsersDb = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="SQLite file, or postgresql:// URL, to serve [default: the demo dataset].")] = None,
    dataset_schema: Annotated[Optional[str], typer.Option("--dataset-schema", help="With a postgresql:// --dataset: the schema whose tables are served. [default: public]")] = None,
    limits_store: Annotated[Optional[str], typer.Option("--limits-store", help="Where limits are counted: memory, sqlite:PATH, or redis://host:port/0 (rediss:// for TLS) to share them between instances [default: memory; sqlite under --state-dir with --workers].")] = None,
    limits_fail: Annotated[Optional[str], typer.Option("--limits-fail", help="When Redis cannot be reached: open (serve without limits) or closed (503 + Retry-After). [default: open]")] = None,
    limits_lease: Annotated[Optional[float], typer.Option("--limits-lease", help="Seconds a request's in-flight slot in Redis lasts unless renewed (it is, while the request runs). [default: 15]")] = None,
    auth_cache_ttl: Annotated[Optional[float], typer.Option("--auth-cache-ttl", help="Seconds a credential verified against the users database keeps working while that database cannot be reached. [default: 60]")] = None,
    allow: Annotated[Optional[list[str]], typer.Option("--allow", help="Client CIDR allowed in, repeatable [default: loopback only].")] = None,
    key_header: Annotated[Optional[list[str]], typer.Option("--key-header", help="Another header carrying an API key (X-API-Key always works), repeatable.")] = None,
    allow_query_token: Annotated[bool, typer.Option("--allow-query-token", help="Accept ?authtoken=KEY (it ends up in URLs and histories).")] = False,
    realm: Annotated[str, typer.Option("--realm", help="Realm in WWW-Authenticate.")] = "tlskit",
    log_json: Annotated[bool, typer.Option("--log-json", help="Access log as JSON lines instead of combined-log lines.")] = False,
    no_access_log: Annotated[bool, typer.Option("--no-access-log", help="Do not write an access log line per request.")] = False,
    access_log: Annotated[Optional[Path], typer.Option("--access-log", help="Append the access log to this file, reopened on SIGUSR1 (logrotate) [default: stdout].")] = None,
    metrics_allow: Annotated[Optional[list[str]], typer.Option("--metrics-allow", help="Client CIDR that may read GET /metrics without credentials (a Prometheus server), repeatable; users with the METRICS privilege may too.")] = None,
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
    eab_kid: Annotated[Optional[str], typer.Option("--eab-kid", help="--acme: external account binding key id, for a CA that asks for one (registering the account only).")] = None,
    eab_hmac_key: Annotated[Optional[str], typer.Option("--eab-hmac-key", help="--acme: external account binding HMAC key (base64url); better in TLSKIT_EAB_HMAC_KEY or the config file than on a command line.")] = None,
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
    The access log goes to stdout (or --access-log FILE), everything else to stderr. Every flag can also
    be a key of the --config file or a TLSKIT_<FLAG> environment variable. SIGHUP reloads the allow-list,
    the limits and the log settings; SIGUSR1 reopens the access log file.

    Example: tlskit serve --cert fullchain.pem --key privkey.pem --host 0.0.0.0 --port 443 --allow 10.0.0.0/8
    """
    import os

    from tlskit.server.config import build_config
    from tlskit.server.settings import resolve

    schema = settings_schema(ctx)
    typed, defaults = split_by_source(ctx, schema)
    environ = dict(os.environ)
    if config_file is not None:
        config_file = config_file.absolute()        # SIGHUP reads it again, whatever the directory then
    settings = resolve(schema, typed, defaults, environ, config_file)
    with spelling_options(_spelling(settings)):
        config = build_config(serve_options(settings.values))           # every option checked before anything is written
    if print_config:
        from tlskit.server.settings import render_toml

        sys.stdout.write(render_toml(settings, SECRET_SETTINGS))
        return
    if print_systemd_unit:
        sys.stdout.write(_systemd_unit(config, settings, schema))
        return

    def load_config():
        """The settings as a SIGHUP reads them: the same flags and environment, the file as it is now."""
        now = resolve(schema, typed, defaults, environ, config_file)
        with spelling_options(_spelling(now)):
            return build_config(serve_options(now.values))

    from tlskit.server.run import start

    with spelling_options(_spelling(settings)):
        start(config, on_ready=_banner, load_config=load_config, say=_say)


# Settings --print-config masks and --print-systemd-unit leaves out of the unit's command line.
SECRET_SETTINGS = frozenset({"eab_hmac_key"})
# Options that act instead of serving; they are no settings of the file or the environment.
_ACTIONS = ("config_file", "print_config", "print_systemd_unit")


def settings_schema(ctx) -> dict[str, str]:
    """Each setting's kind, read off the options as declared above (one declaration per option)."""
    import click

    schema = {}
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in _ACTIONS:
            continue
        if param.multiple:
            kind = "list"
        elif param.is_flag:
            kind = "bool"
        elif isinstance(param.type, click.Path):
            kind = "path"
        elif isinstance(param.type, click.types.IntParamType):
            kind = "int"
        elif isinstance(param.type, click.types.FloatParamType):
            kind = "float"
        else:
            kind = "str"
        schema[param.name] = kind
    return schema


def split_by_source(ctx, schema: dict[str, str]) -> tuple[dict, dict]:
    """The options typed on the command line, and the declared defaults of the others."""
    from click.core import ParameterSource

    typed, defaults = {}, {}
    for name in schema:
        value = ctx.params[name]
        if isinstance(value, tuple):
            value = list(value)
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            typed[name] = value
        else:
            defaults[name] = value
    return typed, defaults


# Settings build_config knows by another name (None: it reads the setting as the inverse option).
_RENAMED = {"no_access_log": None, "access_log": "access_log_file"}
_SETTING_OF = {"access_log_file": "access_log", "access_log": "no_access_log"}


def _spelling(settings):
    """Messages name each option as the user gave it: a flag, a TLSKIT_* variable or a key of the file."""
    spell = settings.spelling(flag)
    return lambda name: spell(_SETTING_OF.get(name, name))


def serve_options(values: dict) -> dict:
    """The settings by flag name -> the options :func:`~tlskit.server.config.build_config` reads."""
    options = {}
    for name, value in values.items():
        target = _RENAMED.get(name, name)
        if target is not None:
            options[target] = value
    options["access_log"] = not values.get("no_access_log", False)
    return options


def _systemd_unit(config, settings, schema: dict[str, str]) -> str:
    """A unit whose ExecStart serves what this command line would: the settings typed or taken from the
    environment become flags (absolute paths), the config file stays the file; the state dir defaults
    to /var/lib/tlskit (a service has no home directory to put it in)."""
    from tlskit.cli.common import own_command
    from tlskit.server.settings import env_name
    from tlskit.systemd import SERVICE_STATE_DIR, serve_unit

    command = [*own_command(absolute=True), "serve"]
    if settings.file is not None:
        command += ["--config", str(settings.file)]
    for name, value in settings.values.items():
        if settings.sources.get(name) not in ("flag",) and not settings.sources.get(name, "").startswith("TLSKIT_"):
            continue
        if name in SECRET_SETTINGS:
            continue       # a unit file is world-readable; the unit says where the secret goes instead
        kind = schema[name]
        if kind == "bool":
            command += [flag(name)] if value else []
        elif kind == "list":
            for item in value:
                command += [flag(name), item]
        elif value is not None:
            command += [flag(name), str(Path(value).absolute()) if kind == "path" and "://" not in str(value) else str(value)]
    state_dir = Path(config.state_dir).absolute() if config.state_dir else SERVICE_STATE_DIR
    if not config.state_dir:
        command += ["--state-dir", str(state_dir)]
    writable = [Path(config.access_log_file).absolute().parent] if config.access_log_file else []
    ports = [config.port] + ([config.redirect_port] if config.redirect_port else [])
    secrets = [f"{env_name(name)} ({flag(name)})" for name in sorted(SECRET_SETTINGS)
               if settings.values.get(name) is not None]
    notes = [f"Left out of ExecStart: {', '.join(secrets)}. Put it in a root-only EnvironmentFile= "
             "(chmod 600), or in the config file."] if secrets else []
    return serve_unit(command, state_dir=state_dir, ports=ports, writable=writable, notes=notes)


def _say(text: str) -> None:
    import sys

    sys.stderr.write(f"tlskit serve: {text}\n")
    sys.stderr.flush()


def _banner(prepared) -> None:
    """What is served and the commands to use it, each runnable as printed."""
    import shlex
    import sys

    from tlskit.cli.common import own_command
    from tlskit.server import default_state_dir, default_users_db

    config = prepared.config
    where = []
    if config.db:
        where = ["--db", str(prepared.db)]
    elif prepared.db != default_users_db(default_state_dir()):
        where = ["--state-dir", str(prepared.state_dir)]
    tlskit = own_command()
    cacert = f"--cacert {shlex.quote(str(prepared.ca_cert))} " if prepared.ca_cert else ""
    nets = ", ".join(str(n) for n in config.networks())
    # With --acme the certificate is for its names, not for localhost: that is the URL clients use.
    url = (f"https://{config.acme.names[0]}{'' if config.port == 443 else f':{config.port}'}/" if config.acme
           else prepared.url)
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
    if config.access_log_file is not None:
        lines.append(f"  access log:  {config.access_log_file}  (reopened on SIGUSR1)")
    if prepared.user_count:
        lines.append(f"Users:         {shlex.join([*tlskit, 'users', 'list', *where])}")
    else:
        lines.append(f"Add a user:    {shlex.join([*tlskit, 'users', 'add', 'alice', '--token', *where])}")
    path = "api" if not config.upstream or config.dataset else ""
    lines += [
        f"Call the API:  curl {cacert}-H \"Authorization: Bearer $TOKEN\" {url}{path}",
        "Stop with Ctrl-C.",
    ]
    sys.stderr.write("\n".join(line for line in lines if line) + "\n")
    sys.stderr.flush()
