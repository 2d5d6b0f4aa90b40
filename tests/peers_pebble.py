"""A real Pebble (Let's Encrypt's test CA) and pebble-challtestsrv (its mock DNS) on free loopback ports.

Used by tests/test_acme.py and bench/bench_acme.py. Pebble forgets everything when it stops, so one
instance per test module is enough and keeps the suite quick. Every name resolves to 127.0.0.1
through challtestsrv, so Pebble's validator connects back to our responders on ``http_port`` (http-01)
and ``tls_port`` (tls-alpn-01); dns-01 TXT records are set through challtestsrv's management API.

Example::

    with Pebble.start(tmp_path) as pebble:
        print(pebble.directory, pebble.ca_file)
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from conftest import free_port, wait_for_port

_START_TIMEOUT = 20.0
_CONFIG_TEMPLATE = Path(__file__).resolve().parent.parent / "fixtures" / "pebble" / "pebble-config.json"


def _listener_certificate(directory: Path) -> tuple[Path, Path]:
    """A local CA and a localhost certificate for Pebble's own HTTPS listener (made with tlskit).

    Clients trust the CA file (``--directory-ca-file``); the Debian package ships no certificate.
    """
    from tlskit.certificates import to_pem
    from tlskit.issue import LocalCA
    from tlskit.keys import KeySpec, generate_key, private_key_pem
    from tlskit.names import parse_sans

    ca = LocalCA.create(directory / "listener-ca", {"CN": "Pebble listener test CA"}, KeySpec.parse("ec:p256"))
    key = generate_key(KeySpec.parse("ec:p256"))
    issued = ca.issue({"CN": "localhost"}, parse_sans(["DNS:localhost", "IP:127.0.0.1"]), key, days=30)
    cert_path, key_path = directory / "listener.pem", directory / "listener.key"
    cert_path.write_bytes(to_pem(issued.certificate))
    key_path.write_bytes(private_key_pem(key))
    key_path.chmod(0o600)
    return directory / "listener-ca" / "ca.pem", cert_path


@dataclass
class Pebble:
    """A running Pebble + challtestsrv pair; stop() (or the context manager) ends both."""

    workdir: Path
    listen_port: int
    management_port: int
    http_port: int
    tls_port: int
    dns_port: int
    challtestsrv_port: int
    ca_file: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    eab_keys: dict[str, str] = field(default_factory=dict)

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.listen_port}/dir"

    @property
    def challtestsrv(self) -> str:
        return f"http://127.0.0.1:{self.challtestsrv_port}"

    @classmethod
    def start(cls, workdir: Path, env: dict[str, str] | None = None, eab_keys: dict[str, str] | None = None,
              pebble: str | None = None, challtestsrv: str | None = None, validity: int | None = None) -> Pebble:
        """Start challtestsrv then Pebble; return once Pebble's directory answers over HTTPS.

        ``env`` adds Pebble environment variables (e.g. ``PEBBLE_WFE_NONCEREJECT``,
        ``PEBBLE_ALTERNATE_ROOTS``); ``eab_keys`` turns on required external account binding with those
        kid -> base64url HMAC keys; ``validity`` is the certificates' lifetime in seconds (Pebble 2.4's
        ``certificateValidityPeriod``; its default is five years). Pebble makes notAfter one second
        short of it.
        """
        pebble = pebble or shutil.which("pebble") or "pebble"
        challtestsrv = challtestsrv or shutil.which("pebble-challtestsrv") or "pebble-challtestsrv"
        workdir.mkdir(parents=True, exist_ok=True)
        ca_file, cert_path = _listener_certificate(workdir)
        ports = [free_port() for _ in range(6)]
        while len(set(ports)) < 6:
            ports = [free_port() for _ in range(6)]
        self = cls(workdir, *ports, ca_file=ca_file, eab_keys=dict(eab_keys or {}))
        config = json.loads(_CONFIG_TEMPLATE.read_text())
        config["pebble"].update({
            "listenAddress": f"127.0.0.1:{self.listen_port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(cert_path),
            "privateKey": str(workdir / "listener.key"),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "externalAccountBindingRequired": bool(eab_keys),
        })
        if eab_keys:
            config["pebble"]["externalAccountMACKeys"] = dict(eab_keys)
        if validity is not None:
            config["pebble"]["certificateValidityPeriod"] = int(validity)
        (workdir / "pebble.json").write_text(json.dumps(config, indent=2))
        log = open(workdir / "pebble.log", "wb")
        try:
            self.processes.append(subprocess.Popen(
                [challtestsrv, "-http01", "", "-https01", "", "-tlsalpn01", "",
                 "-dns01", f"127.0.0.1:{self.dns_port}", "-management", f"127.0.0.1:{self.challtestsrv_port}",
                 "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
            deadline = time.monotonic() + _START_TIMEOUT
            wait_for_port(self.challtestsrv_port, self.processes[0], deadline - time.monotonic(),
                          log=workdir / "pebble.log")
            self.processes.append(subprocess.Popen(
                [pebble, "-config", str(workdir / "pebble.json"), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
                env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", **(env or {})},
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir))
            self._wait_directory(deadline)
        except BaseException:
            self.stop()
            raise
        finally:
            log.close()
        return self

    def _wait_directory(self, deadline: float) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        while time.monotonic() < deadline:
            if self.processes[-1].poll() is not None:
                raise RuntimeError(f"pebble exited: {(self.workdir / 'pebble.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.directory, context=context, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("pebble's directory did not answer in time")

    def get(self, path: str) -> bytes:
        """GET from Pebble's management interface, e.g. ``/roots/0`` (its issuing root)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.management_port}{path}", context=context,
                                    timeout=10) as response:
            return response.read()

    def root_file(self) -> Path:
        """Pebble's issuing root as a file for ``openssl verify -CAfile``."""
        path = self.workdir / "pebble-root.pem"
        path.write_bytes(self.get("/roots/0"))
        return path

    def dns_hook(self, log: Path | None = None) -> Path:
        """A --dns-hook script that sets/clears the TXT record through challtestsrv's management API.

        With ``log``, each call appends ``<action> <record> <value>`` there, so a test can see both ran.
        """
        path = self.workdir / "dns-hook.sh"
        path.write_text(
            "#!/bin/sh\n"
            "# tlskit acme dns-01 hook for pebble-challtestsrv: $1 is add or remove.\n"
            "set -e\n"
            f'api={self.challtestsrv}\n'
            + (f'echo "$1 $TLSKIT_DNS_RECORD $TLSKIT_DNS_VALUE" >> "{log}"\n' if log else "")
            +
            'case "$1" in\n'
            '  add) curl -sf -X POST -d "{\\"host\\":\\"$TLSKIT_DNS_RECORD\\",\\"value\\":\\"$TLSKIT_DNS_VALUE\\"}" '
            '"$api/set-txt" ;;\n'
            '  remove) curl -sf -X POST -d "{\\"host\\":\\"$TLSKIT_DNS_RECORD\\"}" "$api/clear-txt" ;;\n'
            '  *) echo "unknown action $1" >&2; exit 2 ;;\n'
            "esac\n"
        )
        path.chmod(0o755)
        return path

    def cert_status(self, serial_hex: str) -> str:
        """Pebble's view of a certificate it issued: "Valid" or "Revoked" (management API)."""
        return json.loads(self.get(f"/cert-status-by-serial/{serial_hex}"))["Status"]

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes.clear()

    def __enter__(self) -> Pebble:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pebble_fixture(tmp_path_factory, **kwargs) -> Pebble:
    """Start one Pebble for a test module; in CI a missing pebble FAILS (require_binary), else skips."""
    from conftest import require_binary

    pebble = require_binary("pebble")
    challtestsrv = require_binary("pebble-challtestsrv")
    require_binary("curl")  # the dns-01 hook script talks to challtestsrv with curl
    return Pebble.start(tmp_path_factory.mktemp("pebble"), pebble=pebble, challtestsrv=challtestsrv, **kwargs)


class PebbleProxy:
    """An HTTPS proxy in front of Pebble for what Pebble 2.4 does not do, and to see what a client sends.

    * ``throttle=(path, seconds)``: the first POST to ``path`` is answered 429 + ``Retry-After`` (Pebble
      never sends Retry-After), so a test sees the client wait as long as the CA asks.
    * ``profiles``: added to the directory's ``meta.profiles`` (Pebble 2.4 has no profiles; it ignores
      a ``profile`` field in newOrder and issues as usual).
    * ``renewal_info``: a function cert-ID -> suggestedWindow dict; the directory then names a
      ``renewalInfo`` URL on the proxy (Pebble 2.4 has no ARI) and the proxy answers it.
    * ``posts``: every POST's path and decoded JWS payload, in order (e.g. newOrder's ``profile`` and
      ``replaces``); ``renewal_info_asked``: the cert IDs that were looked up.

    Pebble builds its URLs from the Host header, which the proxy keeps as its own, so the client talks
    to the proxy throughout.
    """

    def __init__(self, pebble: Pebble, *, throttle: tuple[str, int] | None = None,
                 profiles: dict[str, str] | None = None, renewal_info=None,
                 retry_after_ari: int | None = None) -> None:
        import http.server
        import threading

        self.pebble, self.throttle = pebble, throttle
        self.profiles, self.renewal_info, self.retry_after_ari = profiles, renewal_info, retry_after_ari
        self.seen: list[tuple[str, str, float]] = []   # (method, path, monotonic time)
        self.posts: list[tuple[str, dict]] = []
        self.renewal_info_asked: list[str] = []
        self._throttled = False
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _forward(self) -> None:
                import http.client

                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.seen.append((self.command, self.path, time.monotonic()))
                if self.command == "POST" and body:
                    proxy.posts.append((self.path, _jws_payload(body)))
                if proxy.throttle and self.command == "POST" and self.path.startswith(proxy.throttle[0]) \
                        and not proxy._throttled:
                    proxy._throttled = True
                    problem = json.dumps({"type": "urn:ietf:params:acme:error:rateLimited",
                                          "detail": "slow down (test proxy)", "status": 429}).encode()
                    self._answer(429, problem, {"Content-Type": "application/problem+json",
                                                "Retry-After": str(proxy.throttle[1])})
                    return
                if proxy.renewal_info and self.command == "GET" and self.path.startswith("/renewal-info/"):
                    cert_id = self.path[len("/renewal-info/"):]
                    proxy.renewal_info_asked.append(cert_id)
                    headers = {"Content-Type": "application/json"}
                    if proxy.retry_after_ari is not None:
                        headers["Retry-After"] = str(proxy.retry_after_ari)
                    self._answer(200, json.dumps(proxy.renewal_info(cert_id)).encode(), headers)
                    return
                context = ssl.create_default_context(cafile=str(proxy.pebble.ca_file))
                upstream = http.client.HTTPSConnection("127.0.0.1", proxy.pebble.listen_port, context=context,
                                                       timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                if self.command == "GET" and self.path == "/dir" and response.status == 200:
                    data = proxy._directory(data)
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("connection", "content-length", "transfer-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_POST = do_HEAD = _forward

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pebble.workdir / "listener.pem", pebble.workdir / "listener.key")
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def _directory(self, data: bytes) -> bytes:
        directory = json.loads(data)
        if self.profiles is not None:
            directory.setdefault("meta", {})["profiles"] = self.profiles
        if self.renewal_info is not None:
            directory["renewalInfo"] = f"https://127.0.0.1:{self.port}/renewal-info"
        return json.dumps(directory).encode()

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def times(self, method: str, prefix: str) -> list[float]:
        return [t for m, p, t in self.seen if m == method and p.startswith(prefix)]

    def payloads(self, prefix: str) -> list[dict]:
        return [payload for path, payload in self.posts if path.startswith(prefix)]

    def __enter__(self) -> PebbleProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _jws_payload(body: bytes) -> dict:
    """The payload of a flattened JWS (RFC 7515 7.2.2) as JSON; {} for POST-as-GET."""
    import base64

    try:
        payload = json.loads(body).get("payload", "")
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}
