"""`tlskit serve`: an authenticated HTTPS API server (ASGI on uvicorn with uvloop and httptools).

The request path, each step a small object assembled in :mod:`tlskit.server.run`:
TLS (:mod:`.tls`) -> client IP (:func:`.app.client_ip`) -> trusted IPs, credentials (:mod:`.auth`),
method privilege, limits (the gate, :mod:`.policy`) -> handler (:mod:`.dataset`, or an upstream proxy).
Users live in :mod:`.users`; the access log is :mod:`.accesslog`. :mod:`.run` lists the seams where
limits, a reverse proxy, trusted proxies and certificate reload plug in.

This package's ``__init__`` stays light: the CLI imports it for the default paths only.
"""

from __future__ import annotations

import os
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
