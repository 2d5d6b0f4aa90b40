"""The typer application behind `tlskit` (``entry`` answers the top-level --help and --version itself):
registers the command a line invokes and turns every error into one line and an exit code."""

from __future__ import annotations

import os
import sys

import typer
import typer.core

# typer escapes "[default: ...]" for rich whenever rich is installed, even with rich_markup_mode=None,
# so plain help showed "\[default: 365]". Help here is plain click text: tell typer rich is absent.
typer.core.HAS_RICH = False

from tlskit import __version__
from tlskit.cli.commands import COMMANDS, SUMMARY
from tlskit.cli.compat import CLICK_SUGGESTS_COMMANDS

app = typer.Typer(
    name="tlskit",
    help=SUMMARY,
    no_args_is_help=True,
    # --install-completion / --show-completion for bash, zsh, fish (and PowerShell), typer's own.
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# One "Did you mean" per typo: typer's only where click has none of its own. Set as an attribute, not
# passed as suggest_commands=, because typer < 0.20 has no such option (nor any suggestion).
app.suggest_commands = not CLICK_SUGGESTS_COMMANDS



def split_debug(args: list[str]) -> tuple[list[str], bool]:
    """``--debug`` anywhere before ``--`` (``tlskit csr --debug ...`` as well as ``tlskit --debug csr``),
    and the arguments without it: click knows it only as an option of the root command."""
    end = args.index("--") if "--" in args else len(args)
    kept = [arg for arg in args[:end] if arg != "--debug"] + args[end:]
    return kept, len(kept) != len(args) or os.environ.get("TLSKIT_DEBUG") == "1"


def _version(value: bool) -> None:
    if value:
        print(f"tlskit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show a traceback on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    pass


class WholeSummaries(typer.core.TyperGroup):
    """A group whose help lists each subcommand's whole summary, wrapped, where click cuts it to fit one
    line ("Create a CA: DIR/ca.key (mode 0600) and..."): the summary is often what a user is looking for."""

    def format_commands(self, ctx, formatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _whole_summaries(group: typer.Typer) -> None:
    for info in group.registered_groups:
        info.cls = WholeSummaries
        if info.typer_instance is not None:
            _whole_summaries(info.typer_instance)


_registered: set[str] = set()
_built: dict[tuple[frozenset[str], str | None], object] = {}


def register(only: str | None = None) -> typer.Typer:
    """Add the commands to ``app``: just ``only`` when given (typer builds the parameters of every
    registered command on each run, ~1 ms each plus their imports), else all of them."""
    import importlib

    for name, module_name, attribute, is_group, _ in COMMANDS:
        if (only is not None and name != only) or name in _registered:
            continue
        target = getattr(importlib.import_module(module_name), attribute)
        if is_group:
            _whole_summaries(target)
            app.add_typer(target, name=name, cls=WholeSummaries)
        else:
            app.command(name)(target)
        _registered.add(name)
    return app


def _invoked_command(args: list[str]) -> str | None:
    """The subcommand a command line runs, if it is one of ours (root options come first)."""
    for arg in args:
        if arg.startswith("-"):
            continue
        return arg if any(arg == command[0] for command in COMMANDS) else None
    return None


def click_command():
    """The click command of the registered commands. typer converts every registered command to click on
    each build (~80 ms for all of them), so a process that runs main() more than once (an embedding
    program, the test suite) or forks after building builds once per set of registered commands."""
    from typer.main import get_command

    # The shape of --install-completion/--show-completion depends on this variable when typer builds.
    key = (frozenset(_registered), os.environ.get("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION"))
    if key not in _built:
        _built[key] = get_command(app)
    return _built[key]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure becomes `error: ...` on stderr and the documented exit code."""
    from tlskit.cli.compat import Abort, Exit, UsageError

    from tlskit.cli.output import error_line
    from tlskit.cli.params import flag
    from tlskit.errors import TlskitError, from_os_error, spelling_options

    args, debug = split_debug(list(sys.argv[1:] if argv is None else argv))
    register(only=_invoked_command(args))
    command = click_command()
    try:
        # Without standalone mode click returns (not raises) the code of a typer.Exit.
        with spelling_options(flag):
            exit_code = command.main(args=args, prog_name="tlskit", standalone_mode=False)
    except TlskitError as exc:
        _traceback_if(debug)
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
        error_line(f"{' '.join(message.split()).rstrip('.')}; see '{where} --help'")
        sys.exit(2)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as exc:
        # A file the library did not expect to fail (a read-only mount, a full disk): say which and why.
        _traceback_if(debug)
        failure = from_os_error(exc)
        error_line(failure.message)
        sys.exit(failure.exit_code)
    except Exception as exc:  # a bug: still one line, with the way to report it
        _traceback_if(debug)
        error_line(f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}; "
                   "rerun with --debug and report the traceback")
        sys.exit(70)
    sys.exit(exit_code if isinstance(exit_code, int) else 0)


def _traceback_if(debug: bool) -> None:
    """--debug: the traceback first, then the same error line and exit code as without it (scripts that
    check the code behave alike with and without --debug)."""
    if debug:
        import traceback

        traceback.print_exc()
