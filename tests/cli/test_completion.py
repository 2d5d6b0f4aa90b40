"""Shell completion: the scripts typer writes, driven by the real bash and fish, and zsh's protocol."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import require_binary, run_tlskit

# The completion scripts call `tlskit` by name, as an installed console script is called.
BIN = str(Path(sys.executable).parent)
ENV = {"PATH": f"{BIN}:{os.environ.get('PATH', '')}",
       # typer guesses the shell from the parent process; a test names it.
       "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}


def _script(shell: str) -> str:
    run = run_tlskit("--show-completion", shell, env=ENV)
    assert run.returncode == 0, run.stderr
    assert "_TLSKIT_COMPLETE" in run.stdout
    return run.stdout


def test_bash_completes_subcommands_and_options(tmp_path):
    bash = require_binary("bash")
    (tmp_path / "tlskit.bash").write_text(_script("bash"))
    for words, cword, expected in ((["tlskit", "ca", "i"], 2, {"init", "install"}),
                                   (["tlskit", "serve", "--max-re"], 2, {"--max-requests"}),
                                   (["tlskit", "s"], 1, {"selfsign", "serve"})):
        script = (f"source {tmp_path / 'tlskit.bash'}; COMP_WORDS=({' '.join(words)}); COMP_CWORD={cword}; "
                  "_tlskit_completion tlskit; printf '%s\\n' \"${COMPREPLY[@]}\"")
        done = subprocess.run([bash, "-c", script], capture_output=True, text=True, timeout=60,
                              env={**os.environ, **ENV})
        assert set(done.stdout.split()) == expected, (words, done.stdout, done.stderr)


def test_fish_completes_with_summaries(tmp_path):
    fish = require_binary("fish")
    (tmp_path / "tlskit.fish").write_text(_script("fish"))
    done = subprocess.run([fish, "-c", f"source {tmp_path / 'tlskit.fish'}; complete -C 'tlskit ca i'"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **ENV})
    lines = dict(line.split("\t", 1) for line in done.stdout.splitlines() if "\t" in line)
    assert set(lines) == {"init", "install"}, done.stdout + done.stderr
    assert lines["install"].startswith("Trust the CA")


def test_zsh_script_parses_and_the_program_answers_its_protocol(tmp_path):
    zsh = require_binary("zsh")
    (tmp_path / "_tlskit").write_text(_script("zsh"))
    syntax = subprocess.run([zsh, "-n", str(tmp_path / "_tlskit")], capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
    done = subprocess.run([f"{BIN}/tlskit"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **ENV, "_TYPER_COMPLETE_ARGS": "tlskit users l",
                               "_TLSKIT_COMPLETE": "complete_zsh"})
    assert '"list"' in done.stdout and "set" not in done.stdout.split('"list"')[0], done.stdout


def test_install_completion_writes_the_shells_startup_file(tmp_path):
    run = run_tlskit("--install-completion", "bash", env={**ENV, "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    bashrc = (tmp_path / ".bashrc").read_text()
    assert "tlskit" in bashrc
    completion = next((tmp_path / ".bash_completions").glob("tlskit*"))
    assert "_TLSKIT_COMPLETE" in completion.read_text()


def test_root_help_still_avoids_typer_and_lists_the_completion_options():
    run = run_tlskit("--help")
    assert "--install-completion" in run.stdout and "--show-completion" in run.stdout
