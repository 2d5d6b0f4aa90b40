"""A real Redis for tests: ``redis-server --port P --save ''`` on 127.0.0.1 in a temporary directory.

    redis = RedisServer.start(password="...")      # redis://:...@127.0.0.1:PORT/0
    redis.stop(); redis.restart()                   # an outage, and the server back on the same port
"""

from __future__ import annotations

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
    proc: subprocess.Popen | None = None

    @classmethod
    def start(cls, password: str | None = None) -> RedisServer:
        require_binary("redis-server")
        server = cls(free_port(), Path(tempfile.mkdtemp(prefix="tlskit-redis-")), password)
        server.restart()
        return server

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def restart(self) -> None:
        command = [require_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no"]
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
