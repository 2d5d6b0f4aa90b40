"""The command line: typer groups that parse, call the library and render. No logic lives here."""
