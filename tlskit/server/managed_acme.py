"""`tlskit serve --acme NAME`: HTTPS with a certificate from an ACME CA, obtained and renewed by the server.

Like Caddy's automatic HTTPS, in three parts:

1. Before listening, :func:`start_managed_certificate` reuses the certificate kept under
   ``STATE_DIR/acme/<NAME>/`` (certbot's file names) or orders one through :mod:`tlskit.acme`, answering
   http-01 with a short-lived built-in server on the redirect port (80 unless ``--redirect-port``).
2. The server then serves ``fullchain.pem``/``privkey.pem`` with certificate hot reload on
   (:mod:`.reload`), so whatever lands in those files later reaches new connections.
3. A background thread (:meth:`ManagedCertificate.start_renewal`) wakes when the certificate is due by
   :mod:`tlskit.acme.renewal` (a third of its lifetime left, the CA's ARI window, or ``renew_days``):
   a 90-day certificate is looked at again in about 60 days, a 6-day one in 4, and a CA that offers
   ARI is asked again when its Retry-After says. A failed renewal is retried sooner as expiry nears.
   The redirect listener is running by then, so it answers the http-01 challenge itself: the answers
   are files under ``STATE_DIR/acme/webroot/`` that every worker process can read
   (:class:`ChallengeResponder`).

tls-alpn-01 is not offered here: Python's ``ssl`` cannot see the client's ALPN list when it picks the
certificate, so the HTTPS listener could not tell a validation handshake from a browser.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlskit.server.answers import answer_plain

if TYPE_CHECKING:
    from tlskit.acme.renewal import RenewalPlan
    from tlskit.server.config import AcmeSettings, ServeConfig

log = logging.getLogger("tlskit.serve")

__all__ = ["ManagedCertificate", "ChallengeResponder", "start_managed_certificate", "next_check_delay"]

# The thread sleeps in slices of this length and compares the wall clock each time, because a
# monotonic sleep stands still while the host is suspended; a slice is no check, only a clock read.
_SLICE = 600.0
_CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # RFC 8555 8.3: base64url, so no path tricks


def start_managed_certificate(settings: AcmeSettings, state_dir: Path, *, host: str = "",
                              http_port: int | None = None,
                              say: Callable[[str], None] | None = None) -> ManagedCertificate:
    """The certificate for ``settings.names`` under ``state_dir/acme``, valid now: reused, renewed or ordered.

    http-01 is answered on ``host``:``http_port`` (80); a wildcard host listens everywhere. The
    caller starts the renewal thread (:meth:`ManagedCertificate.start_renewal`) once it listens.
    """
    from tlskit.acme import resolve_directory

    managed = ManagedCertificate(
        names=list(settings.names), out_dir=Path(state_dir) / "acme", directory=resolve_directory(settings.directory),
        email=settings.email, agree_tos=settings.agree_tos, directory_ca_file=settings.directory_ca_file,
        http_address=host if host not in ("0.0.0.0", "::") else "", http_port=http_port or 80,
        renew_days=settings.renew_days, max_sleep=settings.check_interval, eab_kid=settings.eab_kid,
        eab_hmac_key=settings.eab_hmac_key)
    managed.ensure(say)
    return managed


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
    renew_days: int | None = None       # None: by the lifetime (and ARI)
    max_sleep: float | None = None      # longest wait between two checks (None: as the plan says)
    eab_kid: str | None = None          # external account binding: only the first order registers
    eab_hmac_key: str | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def lineage(self):
        from tlskit.acme.store import Lineage, lineage_name

        return Lineage(self.out_dir / lineage_name(self.names[0]))

    @property
    def fullchain(self) -> Path:
        return self.lineage.fullchain

    @property
    def privkey(self) -> Path:
        return self.lineage.privkey

    @property
    def webroot(self) -> Path:
        return self.out_dir / "webroot"

    def serving(self, config: ServeConfig) -> ServeConfig:
        """``config`` serving this certificate: its files, http-01 answers on the redirect port, its expiry
        on /metrics."""
        import dataclasses

        return dataclasses.replace(config, cert=self.fullchain, key=self.privkey, redirect_port=self.http_port,
                                   acme_webroot=self.webroot, acme_lineages=(self.fullchain.parent,))

    # --- at start ----------------------------------------------------------------------------------

    def ensure(self, say=None) -> tuple[Path, Path]:
        """Return ``(fullchain, privkey)``, ordering or renewing first when needed. Raises TlskitError."""
        from tlskit.acme import HttpStandalone, issue_certificate, renew_due
        from tlskit.acme.identifiers import normalize_names

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
                                   eab_kid=self.eab_kid, eab_hmac_key=self.eab_hmac_key, force=True)
        say(f"certificate issued: serial {issued.serial}, valid until {issued.not_after:%Y-%m-%d %H:%M} UTC")
        return issued.fullchain, issued.privkey

    def _usable(self, lineage) -> bool:
        """A kept certificate for exactly these names, with its key, not yet expired."""
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
        """Renew in a daemon thread (one per server), waking when the certificate is due."""
        from tlskit.server.reload import log_to_stderr

        log_to_stderr()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tlskit-acme-renew", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        failed = False
        while True:
            delay, plan = self.next_check(failed)
            if plan is not None:
                log.info("next ACME renewal check in %s (renews %s UTC: %s)", _seconds(delay),
                         f"{plan.renew_at:%Y-%m-%d %H:%M:%S}", plan.reason)
            _sleep_until(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=delay))
            failed = self.renew_once() == "failed"

    def plan(self) -> RenewalPlan | None:
        """The renewal plan of the certificate in place (None when its files cannot be read)."""
        from tlskit.acme.lifecycle import lineage_plan
        from tlskit.errors import TlskitError

        lineage = self.lineage
        try:
            return lineage_plan(lineage, lineage.settings(), lineage.certificate(), days=self.renew_days,
                                use_ari=True)
        except TlskitError:
            return None

    def next_check(self, failed: bool) -> tuple[float, RenewalPlan | None]:
        plan = self.plan()
        return next_check_delay(plan, dt.datetime.now(dt.timezone.utc), failed, self.max_sleep), plan

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
                         f"{outcome.issued.not_after:%Y-%m-%d %H:%M:%S} UTC")
            elif outcome.status == "failed":
                log.warning("ACME renewal for %s failed (%s); still serving the current certificate",
                            ", ".join(outcome.names), outcome.error)
        return status


def next_check_delay(plan: RenewalPlan | None, now: dt.datetime, failed: bool, max_sleep: float | None = None) -> float:
    """Seconds until the renewal thread looks again.

    Not due: until the planned moment (or the CA's ARI Retry-After, if sooner). After a failure: a
    tenth of the time left before expiry, so a 6-day certificate failing at 2 days left is retried
    about every 5 hours and more often as expiry nears. Never sooner than a hundredth of the lifetime
    (at most a minute), so a renewal window wider than the lifetime does not hammer the CA; never
    later than ``max_sleep`` when one is given.
    """
    cap = float("inf") if max_sleep is None else max_sleep
    if plan is None:
        return min(60.0, cap)
    floor = min(60.0, max(1.0, plan.lifetime.total_seconds() / 100), cap)
    if failed:
        wait = (plan.not_after - now).total_seconds() / 10
    else:
        wait = (plan.renew_at - now).total_seconds()
        if plan.ari is not None:
            wait = min(wait, (plan.ari.retry_after - now).total_seconds())
    return max(min(wait, cap), floor)


def _sleep_until(moment: dt.datetime) -> None:
    import time

    while (left := (moment - dt.datetime.now(dt.timezone.utc)).total_seconds()) > 0:
        time.sleep(min(left, _SLICE))


def _seconds(value: float) -> str:
    from tlskit.acme.renewal import span

    return span(dt.timedelta(seconds=value)).replace("-", " ") + ("s" if value >= 2 else "")


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
        await answer_plain(send, status, body, method=scope["method"])
