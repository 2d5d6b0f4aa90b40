"""SIGHUP: read the settings again and apply what can change while serving; name what needs a restart.

What changes live, for the requests that come next: the allow-list (``allow``), the default per-user
limits (``max_requests``, ``max_concurrent``), the login throttle (``max_auth_failures``,
``auth_ban_seconds``), the access log (``log_json``, ``access_log``, ``no_access_log``) and
``metrics_allow``. Anything else (ports, certificate paths, HTTP limits, the upstream...) is bound to
sockets, contexts or handlers built at start: a changed value is logged as needing a restart, and the
running value stays. A new set of settings that does not pass :func:`~tlskit.server.config.build_config`
is refused whole, with one log line, and the server goes on as it was.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from tlskit.errors import TlskitError
from tlskit.server.config import ServeConfig

log = logging.getLogger("tlskit.serve")

# ServeConfig fields applied live, and the settings (flag names) each stands for in log lines.
LIVE = {"allow": "allow", "max_requests": "max_requests", "max_concurrent": "max_concurrent",
        "throttle": "max_auth_failures/auth_ban_seconds", "log_json": "log_json", "access_log": "no_access_log",
        "access_log_file": "access_log", "metrics_allow": "metrics_allow"}
_FLAG_NAMES = {"http": "the HTTP limits (max_header_*, *_timeout, keepalive_*, max_pending_per_ip, "
                       "max_connections)", "key_headers": "key_header"}


class SettingsReloader:
    """Applies reloaded settings to one worker's application (a :class:`~tlskit.server.app.TlskitApp`)."""

    def __init__(self, config: ServeConfig, app, load: Callable[[], ServeConfig], metrics=None) -> None:
        self.config = config
        self.app = app
        self.load = load
        self.metrics = metrics

    def reload(self) -> bool:
        """One SIGHUP. True when the new settings were read (even if some need a restart)."""
        try:
            new = self.load()
        except TlskitError as exc:
            log.warning("settings reload refused: %s; the running settings stay", exc.message)
            self._count(False)
            return False
        old = self.config
        changed = [f.name for f in dataclasses.fields(ServeConfig) if getattr(old, f.name) != getattr(new, f.name)]
        live = [name for name in changed if name in LIVE]
        later = [name for name in changed if name not in LIVE]
        self._apply(old, new, live)
        self.config = dataclasses.replace(old, **{name: getattr(new, name) for name in live})
        if live:
            log.info("settings reloaded: %s changed", ", ".join(LIVE[name] for name in live))
        else:
            log.info("settings reloaded: nothing that changes live is different")
        if later:
            log.warning("settings reload: %s changed; restart tlskit serve to apply (the running values stay)",
                        ", ".join(_FLAG_NAMES.get(name, name) for name in later))
        self._count(True)
        return True

    def _count(self, done: bool) -> None:
        if self.metrics is not None:
            self.metrics.count_reload("settings", done)

    def _apply(self, old: ServeConfig, new: ServeConfig, live: list[str]) -> None:
        from tlskit.server.limits import Limits

        gate = self.app.gate
        if "allow" in live:
            gate.reconfigure(networks=new.networks())
        if "max_requests" in live or "max_concurrent" in live:
            gate.reconfigure(default_limits=Limits(new.max_requests, new.max_concurrent))
        if "throttle" in live:
            gate.authenticator.throttle.settings = new.throttle
        if "metrics_allow" in live and self.app.metrics_endpoint is not None:
            self.app.metrics_endpoint.networks = new.metrics_allow
        if {"access_log", "access_log_file", "log_json"} & set(live):
            self._access_log(old, new)

    def _access_log(self, old: ServeConfig, new: ServeConfig) -> None:
        from tlskit.server.accesslog import AccessLog

        current = self.app.access_log
        if not new.access_log:
            self.app.access_log = None
        elif current is None or new.access_log_file != old.access_log_file:
            try:
                self.app.access_log = AccessLog(json_lines=new.log_json, path=new.access_log_file)
            except OSError as exc:
                log.warning("access log %s cannot be opened (%s); logging stays as it was", new.access_log_file,
                            exc.strerror or exc)
                return
        else:
            current.set_format(new.log_json)
            return
        if current is not None and current is not self.app.access_log:
            current.close()


@dataclass
class Operations:
    """What one worker runs for its operator besides serving: signal handlers, shared metrics."""

    app: object
    settings: SettingsReloader | None
    shared: object = None
    timer: object = None

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.shared is not None:
            self.shared.remove()
        if self.app.access_log is not None:
            self.app.access_log.close()


def start_operations(prepared, app, certificate_reloader, load: Callable[[], ServeConfig] | None, loop) -> Operations:
    """In a worker's event loop: SIGHUP reloads the settings (``load`` reads them again), SIGUSR1 reopens
    the access log file, and /metrics learns the reload counts and the certificates to watch."""
    import signal

    from tlskit.server.metrics import SharedCounts, certificate_seconds_left

    core = getattr(app, "app", app)          # the TlskitApp, inside the trusted-proxy middleware
    config = prepared.config
    metrics = core.metrics
    if certificate_reloader is not None:
        metrics.reload_sources.append(lambda: (("certificate", "done", certificate_reloader.reloads),
                                               ("certificate", "refused", certificate_reloader.refusals)))
    metrics.certificates.append(certificate_seconds_left(prepared.cert))
    for lineage in config.acme_lineages:
        metrics.certificates.append(certificate_seconds_left(lineage / "cert.pem"))
    operations = Operations(core, SettingsReloader(config, core, load, metrics) if load is not None else None)
    if config.workers > 1:
        shared = SharedCounts(prepared.state_dir / "metrics" / str(config.port))
        core.metrics_endpoint.shared = shared
        operations.shared = shared

        def publish() -> None:
            shared.publish(metrics)
            operations.timer = loop.call_later(1.0, publish)

        publish()

    def hangup() -> None:
        if operations.settings is None:
            log.warning("SIGHUP: these settings were not read from flags or a file; nothing to reload")
        else:
            operations.settings.reload()

    def reopen() -> None:
        if core.access_log is not None:
            core.access_log.reopen()

    loop.add_signal_handler(signal.SIGHUP, hangup)
    loop.add_signal_handler(signal.SIGUSR1, reopen)
    return operations
