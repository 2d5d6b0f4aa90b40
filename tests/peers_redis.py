"""A real Redis for tests: ``redis-server --port P --save ''`` on 127.0.0.1 in a temporary directory.

    redis = RedisServer.start(password="...")      # redis://:...@127.0.0.1:PORT/0
    redis = RedisServer.start(tls=True)            # rediss://127.0.0.1:PORT/0, a certificate from a throwaway CA
    redis.stop(); redis.restart()                   # an outage, and the server back on the same port
    redis.stop(); redis.reissue(); redis.restart()  # TLS: back with a certificate from another CA

With ``tls=True`` the server listens only on its TLS port (``--port 0``) with a certificate for
127.0.0.1 issued by tlskit's own LocalCA in the server's directory; clients are not asked for one.
``ca_file`` is that CA, which ``url`` names as ``ssl_ca_certs`` (``plain_url`` leaves it out).
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import free_port, require_binary, stop_process, wait_for_port


@dataclass
class RedisServer:
    port: int
    directory: Path
    password: str | None
    tls: bool = False
    proc: subprocess.Popen | None = None

    @classmethod
    def start(cls, password: str | None = None, tls: bool = False) -> RedisServer:
        require_binary("redis-server")
        server = cls(free_port(), Path(tempfile.mkdtemp(prefix="tlskit-redis-")), password, tls)
        if tls:
            server._issue_certificate(server.ca_file.parent)
        server.restart()
        return server

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca" / "ca.pem"

    @property
    def plain_url(self) -> str:
        """The URL without ``ssl_ca_certs``: a rediss:// one then trusts only the system store."""
        auth = f":{self.password}@" if self.password else ""
        return f"{'rediss' if self.tls else 'redis'}://{auth}127.0.0.1:{self.port}/0"

    @property
    def url(self) -> str:
        return f"{self.plain_url}?ssl_ca_certs={self.ca_file}" if self.tls else self.plain_url

    def reissue(self) -> None:
        """A new certificate from a CA of its own: clients trusting ``ca_file`` no longer trust the server."""
        self._issue_certificate(self.directory / "other-ca")

    def _issue_certificate(self, ca_dir: Path) -> None:
        from cryptography import x509

        from tlskit.certificates import to_pem
        from tlskit.issue import LocalCA
        from tlskit.keys import KeySpec, generate_key, private_key_pem

        ca = LocalCA.create(ca_dir, {"CN": f"tlskit test Redis CA {ca_dir.name}"}, days=2)
        key = generate_key(KeySpec.parse("ec:p256"))
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        issued = ca.issue({"CN": "127.0.0.1"}, names, key, days=2)
        (self.directory / "server.pem").write_bytes(to_pem(issued.certificate))
        (self.directory / "server.key").write_bytes(private_key_pem(key))
        (self.directory / "issuer.pem").write_bytes(to_pem(ca.certificate))   # redis-server wants a CA file

    def restart(self) -> None:
        command = [require_binary("redis-server"), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no"]
        if self.tls:
            command += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no",
                        "--tls-cert-file", str(self.directory / "server.pem"),
                        "--tls-key-file", str(self.directory / "server.key"),
                        "--tls-ca-cert-file", str(self.directory / "issuer.pem")]
        else:
            command += ["--port", str(self.port)]
        if self.password:
            command += ["--requirepass", self.password]
        log = self.directory / "log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, self.proc, 30, log=log)
        except AssertionError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
            self.proc = None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def redis_server():
    server = RedisServer.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def redis_tls():
    server = RedisServer.start(tls=True)
    try:
        yield server
    finally:
        server.destroy()
