"""Shared helpers for benchmarks: each bench module exposes ``run() -> list[Result]``.

A Result compares tlskit and its peer measured in the same run; ``ratio`` is tlskit/peer for the
metric as given (for times lower is better, for rates higher is better; ``better`` says which).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tlskit.files import process_alive

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
TLSKIT = [str(ROOT / ".venv" / "bin" / "tlskit")] if (ROOT / ".venv" / "bin" / "tlskit").exists() else [sys.executable, "-m", "tlskit"]


@dataclass
class Result:
    work: str
    tlskit: float
    peer: float
    unit: str              # "ms", "req/s", "handshakes/s", "s"
    better: str            # "lower" or "higher"
    peer_name: str
    tlskit_command: str
    peer_command: str
    target: str = ""       # e.g. "<= 2x", ">= 0.5x"

    @property
    def ratio(self) -> float:
        return self.tlskit / self.peer if self.peer else float("inf")

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": round(self.ratio, 3)}


def median_wall_ms(command: list[str], runs: int = 15, warmup: int = 2, cwd: Path | None = None,
                   env: dict | None = None, before=None) -> float:
    """Median whole-process wall time of ``command`` in milliseconds (stdin from /dev/null)."""
    samples = []
    for index in range(warmup + runs):
        if before:
            before()
        start = time.perf_counter()
        subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       cwd=cwd, env={**os.environ, **(env or {})}, check=False)
        elapsed = (time.perf_counter() - start) * 1000
        if index >= warmup:
            samples.append(elapsed)
    return statistics.median(samples)


def need(binary: str) -> str:
    path = shutil.which(binary)
    if not path:
        raise SystemExit(f"bench needs {binary}: run `make bench` (it installs the peers)")
    return path


def workdir(name: str) -> Path:
    """A fresh directory for one bench run. The pid keeps two runs of the same bench (a standalone
    module and `make bench`) from deleting each other's servers' files; a dead run's directory goes."""
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob(f"{name}.*"):
        pid = old.name.rsplit(".", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = OUT / f"{name}.{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path

