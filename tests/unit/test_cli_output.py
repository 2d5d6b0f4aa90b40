"""The plain console (pipes, files) must print exactly what rich prints, markup and escapes included."""

from __future__ import annotations

import io
import sys

from hypothesis import given, settings, strategies as st
from rich.console import Console

from tlskit.cli import output

# Printable text with plenty of brackets and backslashes, the characters markup cares about.
texts = st.text(alphabet=st.sampled_from(list("ab /:#@[]\\=-.")) | st.characters(categories=["L", "N", "P", "Zs"]),
                max_size=40)


def rich_render(markup: str) -> str:
    buffer = io.StringIO()
    Console(file=buffer, highlight=False, soft_wrap=True, emoji=False, color_system=None, width=500).print(markup)
    return buffer.getvalue()


def plain_render(markup: str) -> str:
    buffer = io.StringIO()
    real_stdout, sys.stdout = sys.stdout, buffer
    try:
        output.PlainConsole().print(markup)
    finally:
        sys.stdout = real_stdout
    return buffer.getvalue()


@settings(max_examples=300, deadline=None)
@given(texts)
def test_escaped_user_text_prints_the_same_as_rich(text):
    markup = f"[green]Created[/] [bold]{output.escape(text)}[/] for {output.escape(text)}"
    assert plain_render(markup) == rich_render(markup)
    if not text.endswith("\\"):  # rich doubles a trailing backslash; so do we (checked above)
        assert plain_render(output.escape(text)) == text + "\n"


def test_console_is_plain_off_a_terminal_and_never_imports_rich_for_strings(capsys):
    assert isinstance(output.console(), output.PlainConsole)
    output.console().print("[bold]a[/] \\[b]")
    assert capsys.readouterr().out == "a [b]\n"
