"""`tlskit serve --acme NAME`: HTTPS with a certificate from an ACME CA, obtained and renewed by the server.

Like Caddy's automatic HTTPS, in three parts:

1. Before listening, :meth:`ManagedCertificate.ensure` reuses the certificate kept under
   ``STATE_DIR/acme/<NAME>/`` (certbot's file names) or orders one through :mod:`tlskit.acme`, answering
   http-01 with a short-lived built-in server on the redirect port (80 unless ``--redirect-port``).
2. The server then serves ``fullchain.pem``/``privkey.pem`` with certificate hot reload on
   (:mod:`.reload`), so whatever lands in those files later reaches new connections.
3. A background thread (:meth:`start_renewal`) checks twice a day and renews within ``renew_days`` of
   expiry (or when the CA's ARI says so). The redirect listener is running by then, so it answers the
   http-01 challenge itself: the answers are files under ``STATE_DIR/acme/webroot/`` that every worker
   process can read (:class:`ChallengeResponder`).

tls-alpn-01 is not offered here: Python's ``ssl`` cannot see the client's ALPN list when it picks the
certificate, so the HTTPS listener could not tell a validation handshake from a browser.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("tlskit.serve")

__all__ = ["ManagedCertificate", "ChallengeResponder"]

DEFAULT_CHECK_INTERVAL = 12 * 3600.0
_CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # RFC 8555 8.3: base64url, so no path tricks


@dataclass
class ManagedCertificate:
    """One certificate the server keeps valid. ``names[0]`` names its directory under ``out_dir``."""

    names: list[str]
    out_dir: Path
    directory: str
    email: str | None = None
    agree_tos: bool = False
    directory_ca_file: Path | None = None
    http_address: str = ""
    http_port: int = 80
    renew_days: int = 30
    check_interval: float = DEFAULT_CHECK_INTERVAL
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def lineage(self):
        from tlskit.acme.store import Lineage, lineage_name

        return Lineage(self.out_dir / lineage_name(self.names[0]))

    @property
    def webroot(self) -> Path:
        return self.out_dir / "webroot"

    # --- at start ----------------------------------------------------------------------------------

    def ensure(self, say=None) -> tuple[Path, Path]:
        """Return ``(fullchain, privkey)``, ordering or renewing first when needed. Raises TlskitError."""
        from tlskit.errors import InputError

        try:
            return self._ensure(say)
        except InputError as exc:
            # The acme module names its own flag; serve's is --redirect-port.
            if exc.fix and "--http-port" in exc.fix:
                raise InputError(exc.what, exc.why, exc.fix.replace("--http-port", "--redirect-port")) from None
            raise

    def _ensure(self, say=None) -> tuple[Path, Path]:
        from tlskit.acme import HttpStandalone, issue_certificate, renew_due
        from tlskit.acme.lifecycle import normalize_names

        say = say or (lambda text: None)
        self.names = normalize_names(self.names)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.webroot.mkdir(exist_ok=True)
        standalone = HttpStandalone(port=self.http_port, address=self.http_address)
        lineage = self.lineage
        if self._usable(lineage):
            report = renew_due(self.out_dir, self.renew_days, names=self.names[:1], challenge=standalone)
            for outcome in report.outcomes:
                if outcome.status == "renewed":
                    say(f"renewed the certificate for {', '.join(self.names)} ({outcome.reason})")
                elif outcome.status == "failed":
                    # An unexpired certificate is still worth serving; the background check retries.
                    log.warning("ACME renewal failed (%s); serving the current certificate", outcome.error)
            return lineage.fullchain, lineage.privkey
        say(f"ordering a certificate for {', '.join(self.names)} from {self.directory} "
            f"(http-01 on port {self.http_port})")
        issued = issue_certificate(self.names, self.out_dir, self.directory, self.email, standalone,
                                   agree_tos=self.agree_tos, directory_ca_file=self.directory_ca_file,
                                   force=True)
        say(f"certificate issued: serial {issued.serial}, valid until {issued.not_after:%Y-%m-%d}")
        return issued.fullchain, issued.privkey

    def _usable(self, lineage) -> bool:
        """A kept certificate for exactly these names, with its key, not yet expired."""
        import datetime as dt

        try:
            settings = lineage.settings()
            cert = lineage.certificate()
            if sorted(settings.names) != sorted(self.names) or not lineage.key_matches():
                return False
            return cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc)
        except Exception:  # missing or damaged files: order afresh
            return False

    # --- while serving -----------------------------------------------------------------------------

    def start_renewal(self) -> None:
        """Check for renewal every ``check_interval`` seconds in a daemon thread (one per server)."""
        from tlskit.server.reload import log_to_stderr

        log_to_stderr()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tlskit-acme-renew", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.check_interval):
            self.renew_once()

    def renew_once(self) -> str:
        """One check; returns the outcome status ("renewed", "not-due", "failed")."""
        from tlskit.acme import Webroot, renew_due

        try:
            report = renew_due(self.out_dir, self.renew_days, names=self.names[:1], challenge=Webroot(self.webroot))
        except Exception as exc:  # never let the thread die: the next check tries again
            log.warning("ACME renewal check failed (%s); will retry", " ".join(str(exc).split()))
            return "failed"
        status = "not-due"
        for outcome in report.outcomes:
            status = outcome.status
            if outcome.status == "renewed" and outcome.issued is not None:
                log.info("ACME certificate for %s renewed (%s): serial %s, valid until %s",
                         ", ".join(outcome.names), outcome.reason, outcome.issued.serial,
                         f"{outcome.issued.not_after:%Y-%m-%d}")
            elif outcome.status == "failed":
                log.warning("ACME renewal for %s failed (%s); still serving the current certificate",
                            ", ".join(outcome.names), outcome.error)
        return status


class ChallengeResponder:
    """ASGI wrapper for the plain-HTTP (redirect) listener: answers http-01 from ``webroot`` files.

    Everything else goes to the wrapped app (the 308 redirect to HTTPS).
    """

    def __init__(self, app, webroot: Path) -> None:
        self.app = app
        self.directory = Path(webroot) / ".well-known" / "acme-challenge"

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(_CHALLENGE_PREFIX):
            await self.app(scope, receive, send)
            return
        token = path[len(_CHALLENGE_PREFIX):]
        body, status = b"not found\n", 404
        if _TOKEN.match(token):
            try:
                body, status = (self.directory / token).read_bytes(), 200
            except OSError:
                pass
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
