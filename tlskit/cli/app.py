"""The `tlskit` entry point: assembles the command groups and turns errors into one line and an exit code."""

from __future__ import annotations

import os
import sys

import typer

from tlskit import __version__

app = typer.Typer(
    name="tlskit",
    help="Keys, CSRs, certificates, chains, TLS probing, ACME and an authenticated HTTPS server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_DEBUG = "--debug" in sys.argv[1:] or os.environ.get("TLSKIT_DEBUG") == "1"


def _version(value: bool) -> None:
    if value:
        print(f"tlskit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show a traceback on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Keys, CSRs, certificates, chains, TLS probing, ACME and an authenticated HTTPS server."""


def _register() -> None:
    # Each module imports only typer at import time; the library is imported inside the commands.
    from tlskit.cli import ca, csr, inspect, selfsign
    from tlskit.cli import serve, users

    app.command("csr", no_args_is_help=False)(csr.csr)
    app.command("selfsign")(selfsign.selfsign)
    app.add_typer(ca.app, name="ca")
    app.command("inspect")(inspect.inspect)
    app.command("serve")(serve.serve)
    app.add_typer(users.app, name="users")
    app.command("chain")(__import__("tlskit.cli.chain", fromlist=["chain"]).chain)
    app.command("probe")(__import__("tlskit.cli.probe", fromlist=["probe"]).probe)
    app.add_typer(__import__("tlskit.cli.acme", fromlist=["app"]).app, name="acme")


_register()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure becomes `error: ...` on stderr and the documented exit code."""
    from typer.main import get_command

    from tlskit.cli.compat import Abort, Exit, UsageError

    from tlskit.errors import TlskitError

    from tlskit.cli.output import error_line

    args = list(sys.argv[1:] if argv is None else argv)
    command = get_command(app)
    try:
        command.main(args=args, prog_name="tlskit", standalone_mode=False)
    except TlskitError as exc:
        if _DEBUG:
            raise
        error_line(exc.message)
        sys.exit(exc.exit_code)
    except Exit as exc:
        sys.exit(exc.exit_code)
    except Abort:
        error_line("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        error_line("interrupted")
        sys.exit(130)
    except UsageError as exc:
        # Usage errors: unknown option, missing argument, bad value.
        message = exc.format_message()
        context = getattr(exc, "ctx", None)
        where = context.command_path if context is not None else "tlskit"
        error_line(f"{' '.join(message.split())}; see '{where} --help'")
        sys.exit(2)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug: still one line, with the way to report it
        if _DEBUG:
            raise
        error_line(f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}; "
                   "rerun with --debug and report the traceback")
        sys.exit(70)
    sys.exit(0)
