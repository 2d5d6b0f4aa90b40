"""The fast `tlskit --help` path must describe exactly the CLI typer would run."""

from __future__ import annotations

import subprocess
import sys

from typer.main import get_command

from conftest import run_tlskit
from tlskit.cli.app import register
from tlskit.cli.commands import COMMANDS


def test_static_table_lists_every_registered_command_with_its_summary():
    registered = get_command(register()).commands
    static = {name: summary for name, _, _, _, summary in COMMANDS}
    assert sorted(static) == sorted(registered)
    for name, command in registered.items():
        assert static[name] == command.get_short_help_str(limit=500), name


def test_help_and_version_do_not_import_typer():
    code = ("import sys; sys.argv = ['tlskit', '--help']\n"
            "from tlskit.cli.entry import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'typer' not in sys.modules and 'cryptography' not in sys.modules, 'heavy import'\n")
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)


def test_root_help_lists_commands_and_exits_zero():
    for args in ([], ["--help"], ["-h"]):
        run = run_tlskit(*args)
        assert run.returncode == 0
        assert run.stdout.startswith("Usage: tlskit [OPTIONS] COMMAND")
        for name, *_ in COMMANDS:
            assert f"\n  {name} " in run.stdout


def test_version_and_subcommand_help_still_work():
    assert run_tlskit("--version").stdout.startswith("tlskit ")
    sub = run_tlskit("csr", "--help")
    assert sub.returncode == 0 and "--key-type" in sub.stdout


def test_unknown_command_is_a_usage_error():
    run = run_tlskit("frobnicate")
    assert run.returncode == 2
    assert "frobnicate" in run.stderr and "Traceback" not in run.stderr


def test_subcommand_help_shows_plain_defaults_and_required_marks():
    days = run_tlskit("selfsign", "--help")
    assert "[default: 365]" in days.stdout and "\\[" not in days.stdout
    required = run_tlskit("ca", "init", "--help")
    assert "[required]" in required.stdout and "\\[" not in required.stdout


def test_usage_error_is_one_clean_line():
    run = run_tlskit("ca", "init")
    assert run.returncode == 2
    assert run.stderr == "error: Missing option '--dir' / '-d'; see 'tlskit ca init --help'\n"


def test_a_mistyped_command_gets_one_suggestion():
    for args, expected in ((("csrr",), "'csr'"), (("ca", "inti"), "'init'"), (("users", "lst"), "'list', 'set'")):
        run = run_tlskit(*args)
        assert run.returncode == 2
        assert run.stderr.count("Did you mean") == 1 and expected in run.stderr, run.stderr


def test_the_typer_application_does_not_import_the_fast_entry_point():
    code = "import sys; import tlskit.cli.app; assert 'tlskit.cli.entry' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
