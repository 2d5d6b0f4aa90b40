"""The layout the README promises: small library modules, and every test in the directory that says what it does."""

from __future__ import annotations

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
