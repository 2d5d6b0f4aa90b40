"""Certificate hot reload: new connections get a renewed certificate within seconds, without a restart.

Renewal (certbot, `tlskit acme renew`, a deploy script) replaces the cert and key files. A thread polls
their inode, size and mtime every ``interval`` seconds; when they change and then hold still for one more
poll (cert and key are rarely replaced in the same instant), it builds a complete new ``SSLContext`` from
them. The listening context, the one the server was started with, gets an ``sni_callback`` that hands
each new handshake the current context (``ssl_object.context = current``): OpenSSL then serves that
context's certificate. Connections already open keep theirs, so nothing is dropped.

A bad new pair (key does not match, garbage, half-written file) is refused with one log line and the
old certificate stays in service; the next change is tried again.

Usage::

    listening = build_context(cert, key)
    reloader = CertificateReloader(cert, key, build_context)
    reloader.install(listening)   # before the server starts accepting
    reloader.start()              # a daemon thread; reloader.stop() ends it
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CertificateReloader", "FileState", "Loaded"]

log = logging.getLogger("tlskit.serve")

ContextBuilder = Callable[[Path, Path], ssl.SSLContext]


@dataclass(frozen=True)
class FileState:
    """What tells us a file was replaced: rename-into-place changes the inode, rewrite changes mtime/size."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileState | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return cls(st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Loaded:
    """The certificate currently served, for log lines."""

    serial: str
    not_after: str
    subject: str


class CertificateReloader:
    """Watches a cert/key pair and swaps the served certificate when they are replaced with a valid pair."""

    def __init__(self, cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str],
                 build_context: ContextBuilder, interval: float = 1.0, also_watch: tuple[Path, ...] = ()) -> None:
        self.cert_path = Path(cert_path)
        self.key_path = Path(key_path)
        # Files the context is also built from (the client CA, a CRL): a change to one rebuilds it too.
        self.also_watch = tuple(Path(p) for p in also_watch)
        self.build_context = build_context
        self.interval = interval
        self.current: ssl.SSLContext | None = None
        self.loaded: Loaded | None = None
        self.reloads = 0
        self.refusals = 0
        self._seen = self._states()
        self._pending: tuple | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _states(self) -> tuple[FileState | None, ...]:
        return tuple(FileState.of(path) for path in (self.cert_path, self.key_path, *self.also_watch))

    # --- serving ---------------------------------------------------------------------------------

    def install(self, listening: ssl.SSLContext, loop=None) -> None:
        """Make ``listening`` hand every new handshake the current context. Call before serving.

        The per-handshake callback is set only once a reload has happened: until then the listening
        context is the current one, and a Python call in every handshake would cost ~3% of handshakes/s.
        With ``loop`` (the serving event loop) it is set from that loop's thread, never while a handshake
        runs there with the GIL released.
        """
        if self.current is None:
            self.current = listening
            self.loaded = describe(self.cert_path)
        self._listening = listening
        self._loop = loop

    _listening: ssl.SSLContext | None = None
    _loop = None

    def _arm(self) -> None:
        if self._listening is not None and self._listening.sni_callback is None:
            self._listening.sni_callback = self._choose_context

    def _choose_context(self, ssl_object, server_name: str | None, listening: ssl.SSLContext):
        # OpenSSL runs this for every ClientHello, with or without SNI (server_name is then None).
        # Returning None continues the handshake; an exception here would abort it, so none escapes.
        try:
            current = self.current
            if current is not None and current is not listening:
                ssl_object.context = current
        except Exception as exc:  # pragma: no cover - defensive; the old certificate is still served
            log.warning("certificate selection failed (%s); serving the listening certificate", exc)
        return None

    # --- watching --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tlskit-cert-reload", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def check(self) -> bool:
        """One poll. Returns True when a new certificate went into service."""
        states = self._states()
        if states == self._seen:
            self._pending = None
            return False
        if states != self._pending:
            # Changed since the last poll: wait until both files hold still for one interval.
            self._pending = states
            return False
        self._pending = None
        self._seen = states
        if None in states:
            missing = (self.cert_path, self.key_path, *self.also_watch)[states.index(None)]
            log.warning("certificate reload refused: %s is missing; still serving serial %s",
                        missing, self.loaded.serial if self.loaded else "?")
            self.refusals += 1
            return False
        return self.reload()

    def reload(self) -> bool:
        """Build a context from the files now on disk and put it in service, or refuse and keep the old."""
        try:
            context = self.build_context(self.cert_path, self.key_path)
            loaded = describe(self.cert_path)
        except Exception as exc:
            self.refusals += 1
            log.warning("certificate reload refused: %s + %s are not a usable pair (%s); still serving serial %s",
                        self.cert_path, self.key_path, _short(exc), self.loaded.serial if self.loaded else "?")
            return False
        self.current = context
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._arm)
        else:
            self._arm()
        previous = self.loaded
        self.loaded = loaded
        self.reloads += 1
        log.info("certificate reloaded from %s: serial %s (was %s), valid until %s", self.cert_path,
                 loaded.serial, previous.serial if previous else "?", loaded.not_after)
        return True


def describe(cert_path: Path) -> Loaded:
    from cryptography import x509

    from tlskit.names import name_to_slash

    data = cert_path.read_bytes()
    cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    return Loaded(serial=format(cert.serial_number, "X"), not_after=cert.not_valid_after_utc.isoformat(),
                  subject=name_to_slash(cert.subject))


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, ssl.SSLError) and exc.reason:
        text = exc.reason.replace("_", " ").lower()
    return text[:200]


def log_to_stderr() -> None:
    """Make reload (and proxy) log lines visible: ``tlskit serve: ...`` on stderr, INFO and up.

    Python's last-resort handler shows WARNING and up only; without this, INFO lines from ``tlskit.serve``
    (a reload, a renewal) vanish.
    """
    logger = logging.getLogger("tlskit.serve")
    if not logger.handlers:
        import sys

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("tlskit serve: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def watch(cert: Path, key: Path, listening: ssl.SSLContext, build_context: ContextBuilder, interval: float = 1.0,
          loop=None, also_watch: tuple[Path, ...] = ()) -> CertificateReloader:
    """What `tlskit serve` runs in each worker: rebuild the context into ``listening`` when its files change."""
    log_to_stderr()
    reloader = CertificateReloader(cert, key, build_context, interval=interval, also_watch=also_watch)
    reloader.install(listening, loop)
    reloader.start()
    return reloader
