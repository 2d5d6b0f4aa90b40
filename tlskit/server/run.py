"""Starting `tlskit serve`: state dir, certificate, users, dataset, sockets, the HTTP engine, workers.

:func:`prepare` does everything that can fail on bad input *before* anything listens, so errors are one
line and exit code 2 (or 3 when a port is taken). :func:`serve` then binds the sockets and runs the HTTP
engine (:mod:`.engine`, :mod:`.listener`) on them: the HTTPS one with our SSLContext, and the plain
``--redirect-port`` one. With ``--workers N`` the sockets are bound once and N forked processes accept
on them, watched by the master (:mod:`.workers`).

Each worker builds its own request path (:func:`build_app`): the handler (the dataset, or the upstream
proxy), the gate's limiter, the trusted-proxy middleware, and the certificate reloader on the listening
SSLContext.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from tlskit.errors import BindError, option
from tlskit.server.config import ServeConfig
from tlskit.server.stores import PostgresUrl

# SIGHUP (reload) and SIGUSR1 (reopen the log) stay pending, held by the kernel, until the event loop
# handles them: asked for while a worker starts, a reload is done once it can be, neither dropped nor
# fatal (their default action ends the process).
HELD_SIGNALS = frozenset({signal.SIGHUP, signal.SIGUSR1})

SHUTDOWN_GRACE = 5.0      # seconds in-flight requests get to finish after SIGTERM
FD_RESERVE = 64           # file descriptors kept free of client connections (databases, logs, upstream)


@dataclass
class Prepared:
    config: ServeConfig
    state_dir: Path
    cert: Path
    key: Path
    ca_cert: Path | None          # set when the certificate is our local CA's
    db: Path | PostgresUrl
    dataset: Path | PostgresUrl
    context: ssl.SSLContext
    user_count: int
    names: frozenset[str]         # what the certificate is for: the names the redirect port serves

    @property
    def url(self) -> str:
        host = self.config.host
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::", "::1", "") else host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"https://{shown}:{self.config.port}/"


def prepare(config: ServeConfig) -> Prepared:
    from tlskit.server import default_state_dir, default_users_db, ensure_state_dir
    from tlskit.server.dataset import check_dataset, ensure_demo_dataset
    from tlskit.server.limits import check_limits_store
    from tlskit.server.tls import certificate_names, ensure_local_certificate
    from tlskit.server.users import open_user_store

    state_dir = ensure_state_dir(Path(config.state_dir) if config.state_dir else default_state_dir())
    ca_cert = None
    if config.cert is None:
        local = ensure_local_certificate(state_dir, [config.host])
        cert, key, ca_cert = local.cert, local.key, local.ca_cert
    else:
        cert, key = Path(config.cert), Path(config.key)
    context = context_builder(config)(cert, key)
    dataset = config.dataset if config.dataset else ensure_demo_dataset(state_dir)
    check_dataset(dataset, config.dataset_schema)     # fail now, not on the first request
    check_limits_store(config.limits_store, state_dir, config.workers)
    db = config.db if config.db else default_users_db(state_dir)
    store = open_user_store(db)
    user_count = len(store.all())
    store.close()
    return Prepared(config, state_dir, cert, key, ca_cert, db, dataset, context, user_count,
                    certificate_names(cert))


def context_builder(config: ServeConfig):
    """``(cert, key) -> SSLContext`` with everything serve asks of TLS: the reloader rebuilds with it too."""
    from tlskit.server.tls import build_context

    def build(cert: Path, key: Path) -> ssl.SSLContext:
        from tlskit.files import read_passphrase

        # Read on every build: a renewed key may come with a new passphrase file.
        context = build_context(cert, key, read_passphrase(config.passphrase_file))
        if config.client_ca is not None:
            from tlskit.server.client_certs import configure

            configure(context, config.client_ca, config.client_cert, config.crl)
        return context

    return build


# ---- one worker's request path --------------------------------------------------------------------

def make_handler(prepared: Prepared):
    from tlskit.server.dataset import open_dataset

    config = prepared.config
    if config.upstream:
        from tlskit.server.proxy import upstream_handler

        # --upstream alone proxies every path; with an explicit --dataset, /api stays the dataset's.
        dataset = open_dataset(prepared.dataset, config.dataset_schema) if config.dataset else None
        return upstream_handler(config.upstream, config.key_headers, config.upstream_timeout, dataset,
                                config.upstream_ca_file)
    return open_dataset(prepared.dataset, config.dataset_schema)


def make_limiter(prepared: Prepared):
    from tlskit.server.limits import open_limiter

    config = prepared.config
    return open_limiter(config.limits_store, prepared.state_dir, config.workers, fail=config.limits_fail,
                        lease=config.limits_lease)


def build_app(prepared: Prepared, log_stream=None):
    """The ASGI application of one worker and its access log."""
    from tlskit.server.accesslog import AccessLog
    from tlskit.server.app import TlskitApp
    from tlskit.server.auth import Authenticator
    from tlskit.server.credentials import CredentialReader
    from tlskit.server.limits import Limits
    from tlskit.server.policy import Gate
    from tlskit.server.throttle import LoginThrottle
    from tlskit.server.users import open_user_source

    config = prepared.config
    authenticator = Authenticator(open_user_source(prepared.db, prepared.state_dir), throttle=LoginThrottle(config.throttle),
                                  hash_workers=config.hash_workers, auth_cache_ttl=config.auth_cache_ttl)
    gate = Gate(authenticator, CredentialReader(config.key_headers, config.allow_query_token),
                config.networks(), config.realm, make_limiter(prepared),
                Limits(config.max_requests, config.max_concurrent))
    from tlskit.server.metrics import Metrics, MetricsEndpoint

    access_log = AccessLog(log_stream, config.log_json, config.access_log_file) if config.access_log else None
    metrics = Metrics()
    app = TlskitApp(gate, make_handler(prepared), access_log, config.hsts_max_age, metrics=metrics,
                    metrics_endpoint=MetricsEndpoint(metrics, config.metrics_allow), upstream=bool(config.upstream))
    if config.trust_proxy:
        from tlskit.server.trusted_proxy import TrustedProxies, TrustedProxyMiddleware

        app = TrustedProxyMiddleware(app, TrustedProxies(config.trust_proxy))
    return app, access_log


def build_redirect_app(prepared: Prepared):
    """The plain-HTTP listener: 308 to HTTPS for the certificate's names (and http-01 answers with --acme)."""
    from tlskit.server.app import RedirectApp

    app = RedirectApp(prepared.config.port, prepared.names)
    if prepared.config.acme_webroot is not None:
        from tlskit.server.managed_acme import ChallengeResponder

        return ChallengeResponder(app, prepared.config.acme_webroot)
    return app


def install_tls(prepared: Prepared, context: ssl.SSLContext):
    """The certificate reloader on the listening context (None with --reload-interval 0)."""
    if prepared.config.reload_interval > 0:
        from tlskit.server.reload import watch

        config = prepared.config
        also = tuple(p for p in (config.client_ca, config.crl) if p is not None)
        return watch(prepared.cert, prepared.key, context, context_builder(config), config.reload_interval,
                     asyncio.get_running_loop(), also)
    return None


# ---- listening ------------------------------------------------------------------------------------

def bind(host: str, port: int, setting: str = "port") -> socket.socket:
    """A listening socket; ``setting`` is the option that chose ``port``, for the message if it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {host}:{port}", exc.strerror or str(exc),
                           f"choose another {option(setting)}/{option('host')}, or stop what uses it") from None
    sock.set_inheritable(True)
    return sock


def connection_budget(prepared: Prepared) -> ServeConfig:
    """The config with ``max_connections`` lowered to what the file-descriptor limit allows.

    The soft limit is first raised to the hard one (as nginx's ``worker_rlimit_nofile``); client
    connections then get all of it but a reserve, so the process never runs out of descriptors.
    """
    import dataclasses

    config = prepared.config
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    allowed = max(16, soft - FD_RESERVE)
    if config.http.max_connections <= allowed:
        return config
    return dataclasses.replace(config, http=dataclasses.replace(config.http, max_connections=allowed))


async def _serve_async(prepared: Prepared, sockets: dict[str, socket.socket], load_config=None) -> None:
    from tlskit.server.app import NOSNIFF, hsts
    from tlskit.server.listener import Listener
    from tlskit.server.live import start_operations
    from tlskit.server.reload import log_to_stderr
    from tlskit.server.trusted_proxy import TrustedProxies

    log_to_stderr()
    config = connection_budget(prepared)
    app, _ = build_app(prepared)
    reloader = install_tls(prepared, prepared.context)
    # Every client of a trusted proxy arrives through it: the per-address cap does not apply to it.
    exempt = TrustedProxies(config.trust_proxy).trusts if config.trust_proxy else (lambda ip: False)
    refusal_headers = [hsts(config.hsts_max_age), NOSNIFF]
    https = Listener(app, config.http, prepared.context, exempt, refusal_headers)
    if config.client_ca is not None:
        from tlskit.server.client_certs import ClientVerifier

        https.state.client_certificates = ClientVerifier(config.client_ca, config.crl)
    listeners = [(https, sockets["https"])]
    if "redirect" in sockets:
        listeners.append((Listener(build_redirect_app(prepared), config.http, None, exempt), sockets["redirect"]))
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    operations = start_operations(prepared, app, reloader, load_config, loop)   # SIGHUP, SIGUSR1, metrics
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
    for listener, sock in listeners:
        await listener.start(sock)
    try:
        await stopping.wait()
    finally:
        await asyncio.gather(*(listener.shutdown(SHUTDOWN_GRACE) for listener, _ in listeners))
        closer = getattr(app, "aclose", None)
        if closer is not None:
            await closer()
        operations.stop()          # flushes the access log in use (SIGHUP may have replaced it)


def _run_worker(prepared: Prepared, sockets: dict[str, socket.socket], load_config=None) -> None:
    import gc

    import uvloop

    # What start-up made lives as long as the process: keep it out of every collection, and collect the
    # young generation less often (each connection makes a few short-lived cycles; the collector was 2%
    # of a handshake-bound worker's CPU in a perf profile).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20000, 20, 20)
    uvloop.run(_serve_async(prepared, sockets, load_config))


def start(config: ServeConfig, on_ready=None, load_config=None, say=None) -> None:
    """`tlskit serve` once its options are checked: the access log file, the --acme certificate (obtained
    before anything listens, renewed once it does), :func:`prepare`, then :func:`serve`.

    ``on_ready(prepared)`` runs once the sockets listen; ``load_config`` reads the settings again on
    SIGHUP; ``say`` reports the progress of an ACME order."""
    from tlskit.server import default_state_dir
    from tlskit.server.config import check_access_log

    check_access_log(config)
    managed = None
    if config.acme is not None:
        from tlskit.server.managed_acme import start_managed_certificate

        managed = start_managed_certificate(
            config.acme, Path(config.state_dir) if config.state_dir else default_state_dir(),
            host=config.host, http_port=config.redirect_port, say=say)
        config = managed.serving(config)
        if load_config is not None:
            reread = load_config

            def load_config():
                return managed.serving(reread())
    prepared = prepare(config)
    if managed is not None:
        managed.start_renewal()
    serve(prepared, on_ready=None if on_ready is None else lambda: on_ready(prepared), load_config=load_config)


def serve(prepared: Prepared, on_ready=None, load_config=None) -> None:
    """Bind, then serve until SIGINT/SIGTERM. ``on_ready`` runs once the sockets listen; ``load_config``
    reads the settings again on SIGHUP (:mod:`.live`)."""
    config = prepared.config
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)      # forked workers inherit the mask
    sockets = {"https": bind(config.host, config.port)}
    if config.redirect_port is not None:
        sockets["redirect"] = bind(config.host, config.redirect_port, "redirect_port")
    if on_ready is not None:
        on_ready()
    if config.workers == 1:
        _run_worker(prepared, sockets, load_config)
        return
    from tlskit.server.reload import log_to_stderr
    from tlskit.server.workers import supervise

    log_to_stderr()
    supervise(config.workers, lambda: _run_worker(prepared, sockets, load_config), HELD_SIGNALS)
