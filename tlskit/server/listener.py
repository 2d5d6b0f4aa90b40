"""Accepting connections for the HTTP engine: TLS handshakes, connection caps and the timeout sweeper.

A connection counts as *pending* from the moment it is accepted until its first request's headers have
arrived: during the TLS handshake and while the client is still sending that first header section. One
client address (an IPv6 client by its /64, the block one host usually gets) may hold at most
``max_pending_per_ip`` pending connections; beyond that a new one is closed at once, so a thousand
half-open connections from one place cannot use up the process's file descriptors or lock out other
clients. Trusted proxies (``--trust-proxy``) are exempt: every client arrives through them. Over
``max_connections`` in all, an idle keep-alive connection makes room (as nginx reuses them) or the new
connection is closed.

The accept loop is ours (not ``create_server``'s), so the caps apply before any TLS work is done; a
handshake in progress is already counted, and it is bounded by ``handshake_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable

from tlskit.server.engine import HttpConnection, HttpLimits, ServerState
from tlskit.server.trusted_proxy import address_key

log = logging.getLogger("tlskit.serve")

SWEEP_SECONDS = 0.25
ACCEPT_BATCH = 64         # connections accepted per wake-up before other work gets a turn
ACCEPT_PAUSE = 0.1        # seconds without accepting after EMFILE and the like


class Listener:
    """Serves one listening socket: HTTPS when ``tls_context`` is given, plain HTTP otherwise."""

    def __init__(self, app, limits: HttpLimits, tls_context: ssl.SSLContext | None = None,
                 exempt: Callable[[str], bool] = lambda ip: False,
                 refusal_headers: list[tuple[bytes, bytes]] = ()) -> None:
        self.limits = limits
        self.tls_context = tls_context
        self.exempt = exempt
        self.state = ServerState(app, limits, "https" if tls_context else "http", ("", 0))
        self.state.on_settled = self._settled
        self.state.refusal_headers = b"".join(b"%s: %s\r\n" % pair for pair in refusal_headers)
        self.pending: dict[str, int] = {}
        self.handshaking = 0
        self.refused = 0
        self.sock: socket.socket | None = None
        self._accept_paused = False
        self._sweeper: asyncio.Task | None = None

    async def start(self, sock: socket.socket) -> None:
        """Accept on ``sock`` (already listening) until :meth:`shutdown`."""
        loop = asyncio.get_running_loop()
        self.sock = sock
        self.state.server_address = tuple(sock.getsockname()[:2])
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._accept)
        self._sweeper = loop.create_task(self._sweep())

    def _accept(self) -> None:
        """Accept what is waiting. Our own accept loop, so the caps apply before any TLS work is done
        and the client address is known before a protocol exists."""
        loop = asyncio.get_running_loop()
        for _ in range(ACCEPT_BATCH):
            try:
                conn, address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # EMFILE and the like: stop accepting for a moment rather than spin on a readable socket.
                if not self._accept_paused:
                    log.warning("cannot accept connections (%s); pausing accept for %.1f s",
                                exc.strerror or exc, ACCEPT_PAUSE)
                    self._accept_paused = True
                    loop.remove_reader(self.sock.fileno())
                    loop.call_later(ACCEPT_PAUSE, self._resume_accept)
                return
            client = (address[0], address[1]) if isinstance(address, tuple) else ("", 0)
            if not self.admit(client[0]):
                conn.close()
                continue
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = HttpConnection(self.state, client, tls=self.tls_context is not None)
            self.handshaking += 1
            loop.create_task(self._connect(conn, connection))

    def _resume_accept(self) -> None:
        self._accept_paused = False
        if not self.state.shutting_down:
            asyncio.get_running_loop().add_reader(self.sock.fileno(), self._accept)

    async def _connect(self, conn: socket.socket, connection: HttpConnection) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self.tls_context is None:
                await loop.connect_accepted_socket(lambda: connection, conn)
            else:
                await loop.connect_accepted_socket(lambda: connection, conn, ssl=self.tls_context,
                                                   ssl_handshake_timeout=self.limits.handshake_timeout)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, TimeoutError, ConnectionError, RuntimeError):
            conn.close()
            connection.settle()          # a failed or timed-out handshake is no longer pending
        except asyncio.CancelledError:
            conn.close()
            connection.settle()
            raise
        finally:
            self.handshaking -= 1

    # --- admission -------------------------------------------------------------------------------

    def admit(self, ip: str) -> bool:
        """Count a new connection from ``ip``, or say no (the caller closes it)."""
        if self.state.shutting_down:
            return False
        if len(self.state.connections) + self.handshaking >= self.limits.max_connections:
            idle = next((c for c in self.state.connections if c.idle), None)
            if idle is None:
                self.refused += 1
                return False
            idle.close()
        key = address_key(ip)
        count = self.pending.get(key, 0)
        if count >= self.limits.max_pending_per_ip and not self.exempt(ip):
            self.refused += 1
            return False
        self.pending[key] = count + 1
        return True

    def release(self, ip: str) -> None:
        key = address_key(ip)
        count = self.pending.get(key, 0) - 1
        if count > 0:
            self.pending[key] = count
        else:
            self.pending.pop(key, None)

    def _settled(self, connection: HttpConnection) -> None:
        self.release(connection.client[0])

    # --- deadlines and shutdown --------------------------------------------------------------------

    async def _sweep(self) -> None:
        second = 0
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = time.monotonic()
            for connection in list(self.state.connections):
                connection.check_deadline(now)
            if int(now) != second:
                second = int(now)
                self.state.refresh_date()

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, finish the requests in flight (up to ``grace`` seconds), close the rest."""
        self.state.shutting_down = True
        if self.sock is not None and not self._accept_paused:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        for connection in list(self.state.connections):
            if connection.idle or not connection.queue:
                connection.close()
            else:
                for request in connection.queue:
                    request.keep_alive = False
        deadline = time.monotonic() + grace
        while self.state.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.state.connections):
            connection.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
