"""The layout the README promises: small library modules that name no CLI flag in their messages, and every
test in the directory that says what it does."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 500


@pytest.mark.skipif(ROOT.name == "mutants", reason="mutmut's copy of the tree holds mutated modules, many times longer")
def test_no_library_module_is_over_500_lines():
    long = {str(path.relative_to(ROOT)): n for path in (ROOT / "tlskit").rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_every_test_module_lives_in_a_layout_directory():
    layout = {"unit", "cli", "integration", "attacks"}
    misplaced = [str(path.relative_to(ROOT)) for path in (ROOT / "tests").rglob("test_*.py")
                 if path.parent.name not in layout or path.parent.parent != ROOT / "tests"]
    assert misplaced == []


# A flag written into a library message is right for one front end only: `tlskit serve` takes each
# setting as a flag, a TLSKIT_* variable or a key of its config file. Library code names a setting with
# tlskit.errors.option; what stays is a whole command line the user is told to run.
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_COMMANDS = ("tlskit ", "useradd ", "systemctl ")


def _flags_outside_commands(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    pieces = {id(value) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for value in node.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):     # an f-string is one text: "tlskit ca init --dir {d} --cn X"
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings | pieces:
            text = node.value
        else:
            continue
        for match in _FLAG.finditer(text):
            if not any(command in text[:match.start()] for command in _COMMANDS):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {match.group()}")
    return found


def test_library_messages_name_settings_through_option():
    found = [hit for path in sorted((ROOT / "tlskit").rglob("*.py")) if "cli" not in path.relative_to(ROOT).parts
             for hit in _flags_outside_commands(path)]
    assert found == []


def test_the_flag_scan_sees_a_flag_and_lets_a_command_line_be(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    module = tmp_path / "m.py"
    module.write_text('"""Docs may say --anything."""\n'
                      'def f(x):\n'
                      '    raise ValueError(f"bad --port {x}", "run tlskit ca init --dir D",\n'
                      '                     f"or tlskit ca init --dir {x} --cn C", f"not {x} --cn")\n')
    assert _flags_outside_commands(module) == ["m.py:3: --port", "m.py:4: --cn"]
