"""A real PostgreSQL for tests: initdb + pg_ctl on a free 127.0.0.1 port, in a temporary directory.

Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin. PostgreSQL refuses to run as
root, so as root the cluster belongs to the ``postgres`` user (``runuser``). Connections over TCP need
a password (scram-sha-256), as a deployment's would; the Unix socket sits in the cluster's directory.

    server = PostgresServer.start()
    url = server.new_database()        # postgresql://tlskit:...@127.0.0.1:PORT/t_...
    server.stop_server(); server.start_server()     # an outage, and the server back on the same port
    pids = server.pause(); server.resume(pids)       # a server that hangs (SIGSTOP), and continues
    server.destroy()

Outside CI a missing PostgreSQL skips the test; in CI (CI=true) it fails (`make test` installs it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import IN_CI, child_pids, free_port

ROLE = "tlskit"


def postgres_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if candidates:
        return candidates[-1]
    message = f"PostgreSQL's {name} is not installed (make test installs the postgresql package)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class PostgresServer:
    directory: Path
    port: int
    password: str
    pg_ctl: str

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @classmethod
    def start(cls) -> PostgresServer:
        initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
        directory = Path(tempfile.mkdtemp(prefix="tlskit-pg-"))
        password = secrets.token_urlsafe(12)
        (directory / "pw").write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres", "postgres")
            shutil.chown(directory / "pw", "postgres", "postgres")
        server = cls(directory, free_port(), password, pg_ctl)
        subprocess.run(_as_owner([initdb, "-D", str(server.data), "-U", "postgres", "-E", "UTF8", "--no-sync",
                                  "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={directory / 'pw'}"]),
                       check=True, capture_output=True, timeout=120)
        server.start_server()
        server.superuser(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'")
        return server

    def start_server(self) -> None:
        # fsync=off: nothing here outlives the machine. synchronous_commit stays on: an immediate stop (a
        # crash) would otherwise drop commits still in the WAL buffers, the users of a test among them.
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c full_page_writes=off -c max_connections=200")
        done = subprocess.run(_as_owner([self.pg_ctl, "-D", str(self.data), "-l", str(self.directory / "log"),
                                         "-o", options, "-w", "-t", "60", "start"]),
                              capture_output=True, text=True, timeout=90)
        if done.returncode != 0:
            log = (self.directory / "log").read_text(errors="replace") if (self.directory / "log").exists() else ""
            raise AssertionError(f"pg_ctl start failed: {done.stdout} {done.stderr} {log[-2000:]}")

    def stop_server(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash as clients see it: every connection drops at once."""
        subprocess.run(_as_owner([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"]),
                       capture_output=True, timeout=60)

    def processes(self) -> list[int]:
        """The postmaster and its children (to pause them all: a server that hangs)."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return [pid, *child_pids(pid)]

    def pause(self) -> list[int]:
        """Stop every process of the server (SIGSTOP): one that hangs, its connections open. Give the
        list to ``resume``, in a ``finally``: a stopped cluster outlives the test otherwise."""
        stopped = []
        for pid in self.processes():
            # A backend that was exiting (the connection of the caller's last query) is gone by now:
            # it needs no pause, and raising here would leave the others stopped with nobody to resume them.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        return stopped

    @staticmethod
    def resume(pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def url(self, database: str, user: str = ROLE, password: str | None = None) -> str:
        secret = self.password if password is None else password
        auth = f"{user}:{secret}@" if secret else f"{user}@"
        return f"postgresql://{auth}127.0.0.1:{self.port}/{database}"

    def superuser(self, sql: str, database: str = "postgres") -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url(database, "postgres"), autocommit=True, connect_timeout=10) as db:
            cursor = db.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def new_database(self) -> str:
        name = "t_" + secrets.token_hex(6)
        self.superuser(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def destroy(self) -> None:
        # A paused process left behind (a test that failed before its resume) would hold up the stop.
        with contextlib.suppress(OSError, ValueError, IndexError):
            self.resume(self.processes())
        self.stop_server()
        shutil.rmtree(self.directory, ignore_errors=True)


def wait_until(predicate, seconds: float = 10.0, step: float = 0.05):
    """Poll ``predicate`` until it returns something truthy (returned), or give up after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


@pytest.fixture(scope="module")
def postgres():
    """One PostgreSQL per test module (and xdist worker); each test takes a database of its own."""
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(postgres) -> str:
    return postgres.new_database()
