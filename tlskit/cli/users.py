"""`tlskit users`: the accounts `tlskit serve` accepts (add, list, set, remove, import-htpasswd, migrate, why).

``--db`` is an SQLite file or a PostgreSQL URL (:mod:`tlskit.server.stores`); a running server, or every
instance sharing the PostgreSQL database, sees a change within a second or two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from tlskit.cli import params

app = typer.Typer(help="Users of tlskit serve: passwords, tokens, allowed methods and limits.",
                  no_args_is_help=True)

UserName = Annotated[str, typer.Argument(help="User name.")]
StateDir = Annotated[Optional[Path], typer.Option("--state-dir", help="tlskit serve's state dir [default: ~/.local/share/tlskit].")]
Methods = Annotated[Optional[str], typer.Option("--methods", help="Allowed methods: GET,POST,PUT,PATCH,DELETE or 'all', and METRICS to read /metrics [default: GET].")]
NewMethods = Annotated[Optional[str], typer.Option("--methods", help="Replace the allowed methods: GET,POST,PUT,PATCH,DELETE or 'all', and METRICS to read /metrics.")]
PasswordFile = Annotated[Optional[Path], typer.Option("--password-file", help="File whose first line is the password ('-' reads stdin).")]
MaxRequests = Annotated[Optional[int], typer.Option("--max-requests", help="Requests per hour (0: unlimited) [default: the server's].")]
MaxConcurrent = Annotated[Optional[int], typer.Option("--max-concurrent", help="Requests in flight (0: unlimited) [default: the server's].")]
Certs = Annotated[Optional[list[str]], typer.Option(
    "--cert", help="Pin this client certificate (file, or SHA-256 fingerprint): then only pinned ones prove the user; "
                   "repeatable.")]
S3Key = Annotated[bool, typer.Option(
    "--s3-key", help="Make an S3 key pair: access key id and secret (shown once) for signed S3-style requests.")]


def _location(db: str | None, state_dir: Path | None, flag: str = "--db"):
    from tlskit.server import default_state_dir, default_users_db
    from tlskit.server.stores import parse_database

    return parse_database(db, flag) or default_users_db(state_dir or default_state_dir())


def _store(db: str | None, state_dir: Path | None, create: bool = True):
    from tlskit.server.users import open_user_store

    location = _location(db, state_dir)
    with database_errors(location):
        return open_user_store(location, create=create, state_dir=state_dir)


def _pins(values: list[str] | None):
    from tlskit.server.users_credentials import pin_of

    return [pin_of(value) for value in values or ()]


@contextlib.contextmanager
def database_errors(path) -> Iterator[None]:
    """SQLite's errors while the store is used, as one line about the users database."""
    import sqlite3

    from tlskit.errors import InputError, SystemFailure

    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "readonly" in text:
            raise InputError(f"cannot write the users database {path}", text,
                             "give a --db on a writable file system, or run as the user who owns it") from None
        if "locked" in text or "disk" in text or "full" in text:
            raise SystemFailure(f"cannot write the users database {path}", text,
                                "retry when the other writer is done, or free disk space") from None
        raise InputError(f"cannot use the users database {path}", text, "check the file, or give another --db") from None
    except sqlite3.DatabaseError as exc:
        raise InputError(f"cannot use the users database {path}", str(exc),
                         "pass a tlskit users database with --db") from None


def _password(path: Path | None) -> str | None:
    if path is None:
        return None
    import sys

    from tlskit.errors import InputError
    from tlskit.files import read_bytes

    data = sys.stdin.buffer.read() if str(path) == "-" else read_bytes(path, "password file")
    lines = data.decode("utf-8", "replace").splitlines()
    password = lines[0] if lines else ""
    if not password:
        raise InputError(f"password file {path} is empty", fix="put the password on its first line")
    return password


def _print_user(json_output: bool, document: dict, text: str, token: str | None, s3_key=None) -> None:
    if s3_key is not None:
        document = {**document, "access_key_id": s3_key.access_key_id, "secret_access_key": s3_key.secret_access_key}
    if json_output:
        from tlskit.cli.output import print_json

        print_json(document)
        return
    from tlskit.cli.output import console, escape

    out = console()
    out.print(text)
    if token:
        out.print(f"Token (shown once, store it now): [bold]{escape(token)}[/]")
        out.print(f'Send it as "Authorization: Bearer {escape(token)}" (or X-API-Key, or as the Basic password)')
    if s3_key is not None:
        out.print(f"S3 access key id: [bold]{escape(s3_key.access_key_id)}[/]")
        out.print(f"S3 secret access key (shown once, store it now): [bold]{escape(s3_key.secret_access_key)}[/]")
        out.print("Sign requests with them (AWS Signature V4 or V2, any region and service), e.g. botocore's SigV4Auth")


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ @ - +).")],
    password_file: PasswordFile = None,
    token: Annotated[bool, typer.Option("--token", help="Generate an API token (shown once).")] = False,
    methods: Methods = None,
    max_requests: MaxRequests = None,
    max_concurrent: MaxConcurrent = None,
    cert: Certs = None,
    s3_key: S3Key = False,
    db: params.UsersDb = None,
    state_dir: StateDir = None,
    json_output: params.Json = False,
) -> None:
    """Add a user with a password (argon2id), a token (stored as a hash), pinned client certificates and/or
    an S3 key pair (its secret sealed with STATE_DIR/s3-secrets.key); any one of them is enough.

    Example: tlskit users add alice --token --methods GET,POST; tlskit users add carol --cert carol.pem
    """
    from tlskit.server.users import NewUser, parse_methods

    allowed = parse_methods(methods)
    user = NewUser(name, password=_password(password_file), token=token, methods=allowed,
                   max_requests=max_requests, max_concurrent=max_concurrent, certificates=tuple(_pins(cert)),
                   s3_key=s3_key)
    store = _store(db, state_dir)
    with database_errors(store.location):
        added = store.create(user)
        document = {**store.require(name).public(), "token": added.token, "db": store.location}
    _print_user(json_output, document, f"Added user {name} ({','.join(document['methods'])}) to {store.location}",
                added.token, added.s3_key)


@app.command("set")
def set_(
    name: UserName,
    password_file: PasswordFile = None,
    new_token: Annotated[bool, typer.Option("--new-token", help="Generate another token (older ones stay valid).")] = False,
    revoke_tokens: Annotated[bool, typer.Option("--revoke-tokens", help="Invalidate the user's existing tokens.")] = False,
    methods: NewMethods = None,
    max_requests: MaxRequests = None,
    max_concurrent: MaxConcurrent = None,
    cert: Certs = None,
    remove_cert: Annotated[Optional[list[str]], typer.Option(
        "--remove-cert", help="Unpin this certificate (file or fingerprint), repeatable.")] = None,
    s3_key: S3Key = False,
    remove_s3_key: Annotated[Optional[list[str]], typer.Option(
        "--remove-s3-key", help="Delete the S3 key pair with this access key id, repeatable.")] = None,
    db: params.UsersDb = None,
    state_dir: StateDir = None,
    json_output: params.Json = False,
) -> None:
    """Change a user's password, tokens, pinned certificates, S3 keys, methods or limits (a running server
    notices within a second).

    Example: tlskit users set alice --methods all --max-requests 1000; tlskit users set carol --cert new.pem --remove-cert old.pem
    """
    from tlskit.errors import InputError
    from tlskit.server.users import parse_methods

    allowed = parse_methods(methods) if methods is not None else None
    password = _password(password_file)
    pins, unpins = _pins(cert), _pins(remove_cert)
    credentials = bool(pins or unpins or s3_key or remove_s3_key)
    others = password is not None or new_token or revoke_tokens or allowed is not None or max_requests is not None \
        or max_concurrent is not None
    if not credentials and not others:
        raise InputError("nothing to change", fix="give --password-file, --new-token, --revoke-tokens, --cert, "
                                                  "--remove-cert, --s3-key, --remove-s3-key, --methods or a limit")
    store = _store(db, state_dir, create=False)
    pair = token = None
    with database_errors(store.location):
        if credentials:      # first: its checks (a pin of another user, an unknown key) refuse before any change
            pair = store.change_credentials(name, pin=pins, unpin=unpins, new_s3_key=s3_key,
                                            remove_s3_keys=remove_s3_key or ())
        if others:
            token = store.update(name, password=password, issue_token=new_token, revoke_tokens=revoke_tokens,
                                 methods=allowed, max_requests=max_requests, max_concurrent=max_concurrent)
        user = store.require(name)
    if user.password_hash is None and not user.token_hashes and not user.s3_key_ids and not user.cert_fingerprints:
        from tlskit.cli.output import warn

        warn(f"user {name} now has no password, token, S3 key or pinned certificate: it cannot log in, except "
             "with a client certificate naming it (serve --client-ca)")
    _print_user(json_output, {**user.public(), "token": token}, f"Updated user {name}", token, pair)


@app.command("list")
def list_(db: params.UsersDb = None, state_dir: StateDir = None, json_output: params.Json = False) -> None:
    """List users: methods, credential kinds and limits (never hashes)."""
    store = _store(db, state_dir, create=False)
    with database_errors(store.location):
        users = [u.public() for u in store.all()]
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"db": store.location, "users": users})
        return
    import sys

    if not users:
        sys.stdout.write(f"No users in {store.location}; add one with: tlskit users add NAME --token\n")
        return
    header = ("name", "methods", "password", "tokens", "certs", "s3 keys", "max requests/h", "max concurrent")
    rows = [(u["name"], ",".join(u["methods"]), u["password"] or "-", str(u["tokens"]),
             str(u["certificates"] or "-"), ",".join(u["s3_keys"]) or "-",
             "default" if u["max_requests"] is None else str(u["max_requests"] or "unlimited"),
             "default" if u["max_concurrent"] is None else str(u["max_concurrent"] or "unlimited")) for u in users]
    if sys.stdout.isatty():
        from rich.table import Table

        from tlskit.cli.output import console

        table = Table(*header, box=None)
        for row in rows:
            table.add_row(*row)
        console().print(table)
        return
    # Off a terminal: whole values in plain columns (rich would cut them to its 80-column guess).
    from tlskit.cli.output import columns

    sys.stdout.write(columns([header, *rows]))


@app.command("remove")
def remove(name: UserName, db: params.UsersDb = None, state_dir: StateDir = None,
           json_output: params.Json = False) -> None:
    """Remove a user and its tokens."""
    store = _store(db, state_dir, create=False)
    with database_errors(store.location):
        store.remove(name)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"removed": name})
    else:
        from tlskit.cli.output import console

        console().print(f"Removed user {name}")


@app.command("import-htpasswd")
def import_htpasswd(
    file: Annotated[Path, typer.Argument(help="htpasswd file (bcrypt $2y$, apr1 $apr1$, or {SHA} lines).")],
    methods: Methods = None,
    db: params.UsersDb = None,
    state_dir: StateDir = None,
    json_output: params.Json = False,
) -> None:
    """Import users from an nginx/Apache htpasswd file, keeping their password hashes as they are.

    Example: tlskit users import-htpasswd /etc/nginx/.htpasswd --methods GET
    """
    from tlskit.errors import InputError
    from tlskit.files import read_bytes
    from tlskit.server.users import parse_methods

    allowed = parse_methods(methods)
    text = read_bytes(file, "htpasswd file").decode("utf-8", "replace")
    store = _store(db, state_dir)
    with database_errors(store.location):
        report = store.import_htpasswd(text, allowed)
    if not report.added and not report.updated and report.skipped:
        raise InputError(f"no user imported from {file}",
                         f"{len(report.skipped)} line(s) skipped, first: line {report.skipped[0]['line']}: "
                         f"{report.skipped[0]['reason']}", "use bcrypt (htpasswd -B), apr1 (htpasswd -m) or {SHA}")
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"db": store.location, "added": report.added, "updated": report.updated, "skipped": report.skipped})
        return
    from tlskit.cli.output import console, warn

    console().print(f"Imported {len(report.added)} new and {len(report.updated)} updated user(s) into {store.location}")
    for skipped in report.skipped:
        warn(f"line {skipped['line']} ({skipped['name'] or '?'}) skipped: {skipped['reason']}")


@app.command("migrate")
def migrate(
    source: Annotated[str, typer.Option("--from", help="The users database to copy from: an SQLite file or a postgresql:// URL.")],
    db: Annotated[str, typer.Option("--db", help="The users database to copy into (created when missing), e.g. postgresql://tlskit@db:5432/tlskit.")],
    force: Annotated[bool, typer.Option("--force", help="Replace users that exist in --db already (by default they are left alone).")] = False,
    json_output: params.Json = False,
) -> None:
    """Copy every user from one users database to another: password hashes, token hashes, methods and
    limits, as they are (nothing is re-hashed, so every password and token keeps working).

    Example: tlskit users migrate --from ~/.local/share/tlskit/users.sqlite --db postgresql://tlskit@db:5432/tlskit
    """
    from tlskit.errors import InputError
    from tlskit.server.stores import parse_database
    from tlskit.server.users import open_user_store

    origin = parse_database(source, "--from")
    target = parse_database(db, "--db")
    if str(origin) == str(target):
        raise InputError("--from and --db name the same database", fix="give the database to copy into with --db")
    source_store = open_user_store(origin, create=False)
    report = open_user_store(target).copy_from(source_store, replace=force)
    document = {"from": source_store.location, "db": str(target), "copied": report.copied, "replaced": report.replaced,
                "skipped": report.skipped, "tokens": report.tokens}
    if json_output:
        from tlskit.cli.output import print_json

        print_json(document)
        return
    from tlskit.cli.output import console, warn

    moved = len(report.copied) + len(report.replaced)
    console().print(f"Copied {moved} user(s) and {report.tokens} token(s) from {source_store.location} to {target}"
                    + (f" ({len(report.replaced)} replaced)" if report.replaced else ""))
    if report.skipped:
        warn(f"{len(report.skipped)} user(s) exist in {target} already and were left alone "
             f"({', '.join(report.skipped[:5])}{'...' if len(report.skipped) > 5 else ''}); --force replaces them")


@app.command("why")
def why(
    name: UserName,
    method: Annotated[str, typer.Argument(help="The request's method (GET, POST...).")],
    path: Annotated[str, typer.Argument(help="The request's path, e.g. /api/products/1.")],
    ip: Annotated[str, typer.Option("--ip", help="The client's address.")] = "127.0.0.1",
    allow: Annotated[Optional[list[str]], typer.Option(
        "--allow", help="The server's --allow networks, repeatable [default: loopback only, as serve].")] = None,
    method_override: Annotated[Optional[str], typer.Option(
        "--method-override", help="An X-HTTP-Method-Override the request carries.")] = None,
    max_requests: Annotated[int, typer.Option("--max-requests", help="The server's --max-requests.")] = 0,
    max_concurrent: Annotated[int, typer.Option("--max-concurrent", help="The server's --max-concurrent.")] = 0,
    limits_store: Annotated[Optional[str], typer.Option(
        "--limits-store", help="The server's sqlite:PATH limits store, read to tell a spent budget "
                               "[default: STATE_DIR/limits.sqlite when it exists].")] = None,
    db: params.UsersDb = None,
    state_dir: StateDir = None,
    json_output: params.Json = False,
) -> None:
    """Explain what the server would decide for NAME's METHOD PATH from --ip, using the server's own rules:
    address, user, method, limit. Exit 0 when allowed, 1 when refused (naming the rule).

    Example: tlskit users why bob DELETE /api/products/1 --ip 10.0.0.7 --allow 10.0.0.0/8
    """
    from tlskit.server import default_state_dir
    from tlskit.server.config import LOOPBACK, parse_allow
    from tlskit.server.limits import Limits
    from tlskit.server.stores import parse_limits_store
    from tlskit.server.why import ReadOnlyLimiter, explain

    networks = parse_allow(allow) if allow else LOOPBACK
    store = parse_limits_store(limits_store)
    counted = None
    if store is not None and store.kind == "sqlite":
        counted = store.path
    elif store is None and (state_dir or default_state_dir()).joinpath("limits.sqlite").exists():
        counted = (state_dir or default_state_dir()) / "limits.sqlite"
    users = _store(db, state_dir, create=False)
    verdict = explain(users.get(name), name, method, path, ip, networks, Limits(max_requests, max_concurrent),
                      ReadOnlyLimiter(counted), method_override)
    if json_output:
        from tlskit.cli.output import print_json

        print_json({"user": name, "method": method.upper(), "path": path, "ip": ip, **verdict.as_dict()})
    else:
        from tlskit.cli.output import console, escape

        out = console()
        for step in verdict.steps:
            out.print(f"  {'ok' if step.ok else 'NO':<3} {step.rule:<12} {escape(step.detail)}")
        out.print(f"{'Allowed' if verdict.allowed else 'Refused'}: {escape(name)} {method.upper()} {escape(path)} "
                  f"from {escape(ip)} -> {verdict.status}" + (f" ({verdict.rule})" if verdict.rule else ""))
    if not verdict.allowed:
        raise typer.Exit(1)
