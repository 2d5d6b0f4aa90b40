"""Where each `tlskit serve` setting comes from: a flag, a ``TLSKIT_*`` variable, the config file, or its default.

Every flag of `tlskit serve` is also a key of the TOML config file (``--max-header-line`` is
``max_header_line``; repeatable flags are lists: ``allow = ["10.0.0.0/8"]``) and an environment variable
(``TLSKIT_MAX_HEADER_LINE``; lists comma-separated). A flag beats the variable, which beats the file,
which beats the default. :func:`resolve` merges them into plain values by flag name; the CLI then hands
them to :func:`tlskit.server.config.build_config`, the one place that checks what each value means.
This module checks only the *shape*: an unknown key, or a value of the wrong type, is one line naming
the key and the file (or the variable).

Example ``tlskit.toml``::

    host = "0.0.0.0"
    port = 443
    cert = "/etc/tlskit/fullchain.pem"     # relative paths are relative to this file
    key = "/etc/tlskit/privkey.pem"
    allow = ["10.0.0.0/8", "192.168.0.0/16"]
    max_requests = 10000
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tlskit.errors import InputError, option

ENV_PREFIX = "TLSKIT_"
CONFIG_ENV = "TLSKIT_CONFIG"
KINDS = ("str", "int", "float", "bool", "path", "list")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
_KIND_WORDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
               "path": "a path (string)", "list": "a list of strings"}


@dataclass(frozen=True)
class Settings:
    """The merged values by flag name, and where each came from ("flag", "TLSKIT_PORT", "tlskit.toml",
    "default")."""

    values: dict[str, Any]
    sources: dict[str, str]
    file: Path | None = None

    def spelling(self, flag: Callable[[str], str]) -> Callable[[str], str]:
        """How a message names each setting: as the user gave it. A value from the environment is its
        ``TLSKIT_*`` variable, one from the file its key there; a typed or a default one is ``flag(name)``,
        the flag that sets it."""

        def spell(name: str) -> str:
            source = self.sources.get(name, "flag")
            if source.startswith(ENV_PREFIX):
                return source
            if source not in ("flag", "default"):
                return f"{name} in {Path(source).name}"
            return flag(name)

        return spell


def resolve(schema: Mapping[str, str], flags: Mapping[str, Any], defaults: Mapping[str, Any],
            environ: Mapping[str, str] | None = None, config_file: Path | None = None) -> Settings:
    """Merge: ``flags`` (what was typed) over ``TLSKIT_*`` variables over the file over ``defaults``.

    ``schema`` maps each setting's name to its kind (one of :data:`KINDS`). ``config_file`` None means
    ``$TLSKIT_CONFIG`` when set, else no file.
    """
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get(CONFIG_ENV):
        config_file = Path(environ[CONFIG_ENV])
    values = dict(defaults)
    sources = {name: "default" for name in defaults}
    if config_file is not None:
        for name, value in read_file(config_file, schema).items():
            values[name], sources[name] = value, str(config_file)
    for name, value in from_environment(environ, schema).items():
        values[name], sources[name] = value, env_name(name)
    for name, value in flags.items():
        values[name], sources[name] = value, "flag"
    return Settings(values, sources, config_file)


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def read_file(path: Path, schema: Mapping[str, str]) -> dict[str, Any]:
    """The settings of one TOML file, each checked against its kind; relative paths made absolute
    against the file's own directory (a file that ships beside its certificates works from anywhere)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"config file {path} does not exist", fix=f"check the {option('config')} path") from None
    except OSError as exc:
        raise InputError(f"cannot read config file {path}", exc.strerror or str(exc), "check its permissions") from None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"config file {path} is not valid TOML", str(exc), "fix the syntax") from None
    base = Path(path).resolve().parent
    values = {}
    for key, value in document.items():
        kind = schema.get(key)
        if kind is None:
            raise InputError(f"unknown key {key!r} in {path}", _suggestion(key, schema),
                             "use the flag names of `tlskit serve --help`, with _ for -")
        checked = _from_toml(value, kind)
        if checked is None:
            raise InputError(f"{key!r} in {path} must be {_KIND_WORDS[kind]}",
                             f"it is {_toml_type(value)} {_short(value)}", f"write e.g. {_example(key, kind)}")
        if kind == "path" and "://" not in checked:     # a database URL is no path
            checked = base / Path(checked).expanduser()
        values[key] = checked
    return values


def from_environment(environ: Mapping[str, str], schema: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``TLSKIT_<NAME>`` variables. Other ``TLSKIT_*`` variables (hooks' own)
    are not settings and are left alone."""
    values = {}
    for name, kind in schema.items():
        text = environ.get(env_name(name))
        if text is None:
            continue
        value = _from_text(text, kind)
        if value is None:
            raise InputError(f"{env_name(name)}={text!r} is not {_KIND_WORDS[kind]}",
                             fix=f"set it like {option(name)}, or unset it")
        values[name] = Path(value) if kind == "path" and "://" not in value else value
    return values


def _from_toml(value: Any, kind: str) -> Any:
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if kind == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        return None
    if kind in ("str", "path"):
        return value if isinstance(value, str) else None
    if isinstance(value, str):      # one value of a repeatable flag
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _from_text(text: str, kind: str) -> Any:
    if kind == "bool":
        lowered = text.strip().lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else None
    if kind == "int":
        try:
            return int(text.strip())
        except ValueError:
            return None
    if kind == "float":
        try:
            value = float(text.strip())
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    if kind == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _suggestion(key: str, schema: Mapping[str, str]) -> str | None:
    close = difflib.get_close_matches(key.replace("-", "_"), list(schema), n=1)
    return f"did you mean {close[0]!r}?" if close else None


def _toml_type(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _example(key: str, kind: str) -> str:
    return {"str": f'{key} = "..."', "path": f'{key} = "/path"', "int": f"{key} = 10", "float": f"{key} = 1.5",
            "bool": f"{key} = true", "list": f'{key} = ["...", "..."]'}[kind]


# ---- showing the effective settings ------------------------------------------------------------------

MASK = "********"


def mask_secret(value: Any) -> Any:
    """A URL's password replaced by asterisks (``postgresql://app:********@db/x``); other values as they are."""
    if isinstance(value, list):
        return [mask_secret(item) for item in value]
    if not isinstance(value, str) or "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return value
    if not password:
        return value
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def render_toml(settings: Settings, secret_keys: frozenset[str] = frozenset()) -> str:
    """The effective settings as a config file `tlskit serve --config` reads back, each with its source.

    Secrets are masked: keys in ``secret_keys`` entirely, passwords inside URLs everywhere.
    """
    lines = ["# tlskit serve: effective settings (flag > TLSKIT_* environment > config file > default)"]
    if settings.file is not None:
        lines.append(f"# config file: {settings.file}")
    for name in sorted(settings.values):
        value = settings.values[name]
        source = settings.sources.get(name, "default")
        if value is None:
            lines.append(f"# {name} is not set")
            continue
        shown = MASK if name in secret_keys else mask_secret(value)
        lines.append(f"{name} = {_toml_value(shown)}  # {source}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    # A JSON string is a valid TOML basic string (same escapes for what json.dumps emits).
    return json.dumps(str(value))
