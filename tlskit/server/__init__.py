"""`tlskit serve`: an authenticated HTTPS API server (an ASGI application on tlskit's HTTP engine).

The request path, each step a small object assembled in :mod:`tlskit.server.run`:
accept and connection caps (:mod:`.listener`) -> TLS (:mod:`.tls`) -> HTTP/1.1 with its limits
(:mod:`.engine`) -> client IP (:func:`.app.client_ip`, :mod:`.trusted_proxy`) -> trusted IPs,
credentials (:mod:`.credentials`, :mod:`.auth`, :mod:`.throttle`), method privilege, limits (the gate,
:mod:`.policy`, :mod:`.limits`) -> handler (:mod:`.dataset`, or the upstream proxy :mod:`.proxy`).
Users live in :mod:`.users`; the access log is :mod:`.accesslog`.

This package's ``__init__`` stays light: the CLI imports it for the default paths only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

USERS_DB_FILE = "users.sqlite"


def default_state_dir() -> Path:
    """Where zero-config state lives: $TLSKIT_STATE_DIR, else $XDG_DATA_HOME/tlskit, else ~/.local/share/tlskit."""
    explicit = os.environ.get("TLSKIT_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tlskit"


def default_users_db(state_dir: Path | None = None) -> Path:
    return (state_dir or default_state_dir()) / USERS_DB_FILE


def ensure_state_dir(path: Path) -> Path:
    """The state directory, created private (0700) when missing and never re-moded when it exists.

    An existing directory may be shared on purpose (group-readable for a team, or a sticky /tmp): its
    mode is the owner's choice. One that anyone may write to without the sticky bit is refused, since
    anyone could then swap the CA key or the users database.
    """
    from tlskit.errors import InputError, option

    if not path.exists():
        try:
            path.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise InputError(f"cannot create the state directory {path}", exc.strerror or str(exc),
                             f"pass a {option('state_dir')} you can write to") from None
        return path
    if not path.is_dir():
        raise InputError(f"{option('state_dir')} {path} is not a directory", fix="give a directory (it is created when missing)")
    mode = path.stat().st_mode
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        raise InputError(f"the state directory {path} is world-writable (mode {stat.S_IMODE(mode):o}) without the "
                         "sticky bit", "anyone could replace the CA key or the users database there",
                         f"use a private directory (chmod 700 {path}) or another {option('state_dir')}")
    return path
