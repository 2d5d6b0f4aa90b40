"""After a renewal: is the server really serving the new certificate?

A renewal that lands on disk but never reaches the server (no reload, the wrong path, a hook that
failed quietly) is the outage nobody sees until the old certificate expires. :func:`check_served`
connects the way a client does (tlskit's probe, SNI = the certificate's first name) and compares the
serial it is served with the new one, retrying for a few seconds because servers reload
asynchronously (nginx workers, tlskit serve's hot reload).
"""

from __future__ import annotations

import time

from tlskit.errors import TlskitError

SERVED_WAIT = 10.0   # seconds a server gets to pick up the new files


def check_served(target: str, serial: int, name: str, wait: float = SERVED_WAIT) -> str | None:
    """None when ``target`` (HOST:PORT) serves the certificate with ``serial`` for ``name``, else why not."""
    from tlskit.acme.identifiers import is_ip
    from tlskit.probe import ProbeOptions, parse_target, probe

    where = parse_target(target)
    options = ProbeOptions(host=where.host, port=where.port, servername=None if is_ip(name) else name,
                           timeout=5.0)
    deadline = time.monotonic() + wait
    delay = 0.1
    while True:
        try:
            result = probe(options)
            served = result.chain[0].serial_number if result.chain else None
            problem = None if served == serial else (
                f"{target} still serves serial {served:x}, not the renewed {serial:x}" if served is not None
                else f"{target} sent no certificate")
        except TlskitError as exc:
            problem = f"{target} could not be checked: {exc.message}"
        if problem is None:
            return None
        if time.monotonic() + delay > deadline:
            return problem
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def check_target(target: str) -> str:
    """Parse HOST:PORT once, up front, so a typo fails before any order (InputError)."""
    from tlskit.probe import parse_target

    where = parse_target(target)
    return f"[{where.host}]:{where.port}" if ":" in where.host else f"{where.host}:{where.port}"


__all__ = ["check_served", "check_target", "SERVED_WAIT"]
