"""The HTTP engine under `tlskit serve` vs the maintained ASGI servers it could run on instead.

The same application for all: tlskit's own request path (trusted IPs, Basic auth against the same
users database with its verified-credential cache, the dataset GET, the access log), built by
bench/engine_app.py. The same certificate, TLS 1.2+, one worker process pinned to CPU 0, wrk on CPU 1.
Candidates, each at its defaults except what makes the comparison fair (uvloop where supported, no
server access log since the app writes one):

- uvicorn with its httptools protocol (what tlskit ran on before) and with h11;
- hypercorn (h11, uvloop worker);
- granian (Rust: hyper + rustls, one runtime thread).

Each row is tlskit's engine / the candidate, keep-alive GETs and new connections per GET. Why tlskit
keeps its own engine whatever these say (limits, trailers, per-address caps, the TLS stack the rest of
tlskit shares) is in bench/README.md.

    .venv/bin/python -m bench.bench_engines
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.bench_serve import PATH, same_body, setup, start_tlskit_serve
from bench.common import Result, need, workdir
from bench.servers import CLIENT_CPU, SERVER_CPU, _wait_or_stop, free_port, pin, stop, wrk

RUNS = int(os.environ.get("BENCH_ENGINE_RUNS", "3"))
DURATION = int(os.environ.get("BENCH_ENGINE_SECONDS", "5"))
PY = sys.executable


def candidates(cert: Path, key: Path, port: int) -> dict[str, list[str]]:
    app = "bench.engine_app:app"
    uvicorn = [PY, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
               "--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--no-access-log", "--log-level", "warning"]
    return {
        "uvicorn (httptools)": [*uvicorn, "--http", "httptools"],
        "uvicorn (h11)": [*uvicorn, "--http", "h11"],
        "hypercorn": [PY, "-m", "hypercorn", app, "--bind", f"127.0.0.1:{port}", "--workers", "1",
                      "--worker-class", "uvloop", "--certfile", str(cert), "--keyfile", str(key)],
        "granian": [PY, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
                    "--workers", "1", "--runtime-threads", "1", "--loop", "uvloop", "--ssl-certificate", str(cert),
                    "--ssl-keyfile", str(key), "--no-ws", "--log-level", "warning", app],
    }


def start_candidate(work: Path, env: dict, name: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = candidates(env["state"] / "localhost.pem", env["state"] / "localhost.key", port)[name]
    environment = {**os.environ, "TLSKIT_BENCH_STATE": str(env["state"]), "TLSKIT_BENCH_DB": str(env["db"]),
                   "TLSKIT_BENCH_LOG": str(work / f"{name.split()[0]}-{port}.log"),
                   "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    with open(work / f"engine-{port}.err", "wb") as err:
        proc = subprocess.Popen([*pin(SERVER_CPU), *command], stdout=subprocess.DEVNULL, stderr=err,
                                stdin=subprocess.DEVNULL, env=environment, cwd=str(work))
    _wait_or_stop(port, proc, name)
    return proc, port


def run() -> list[Result]:
    need("wrk")
    work = workdir("engines")
    env = setup(work)
    proc, port = start_tlskit_serve(work, env)
    try:
        same_body(work, env, port)
    finally:
        stop(proc)
    headers = [env["apr"]]
    results = []
    for name in candidates(Path("c"), Path("k"), 0):
        for close in (False, True):
            sent = headers + (["Connection: close"] if close else [])
            ours, theirs = [], []
            tproc, tport = start_tlskit_serve(work, env)
            cproc, cport = start_candidate(work, env, name)
            try:
                for warm in (tport, cport):     # warm up, and fill each server's credential cache
                    wrk(f"https://127.0.0.1:{warm}{PATH}", sent, 2, cpu=CLIENT_CPU)
                for _ in range(RUNS):
                    ours.append(wrk(f"https://127.0.0.1:{tport}{PATH}", sent, DURATION, cpu=CLIENT_CPU))
                    theirs.append(wrk(f"https://127.0.0.1:{cport}{PATH}", sent, DURATION, cpu=CLIENT_CPU))
            finally:
                stop(tproc)
                stop(cproc)
            kind = "new connection per GET (handshakes/s)" if close else "keep-alive GET"
            results.append(Result(
                work=f"engine: tlskit's HTTP engine vs {name}, {kind}, apr1 user, same app",
                tlskit=round(statistics.median(ours), 1), peer=round(statistics.median(theirs), 1),
                unit="handshakes/s" if close else "req/s", better="higher", peer_name=name,
                tlskit_command=f"taskset -c {SERVER_CPU} tlskit serve (1 worker)",
                peer_command=f"taskset -c {SERVER_CPU} {name} on bench.engine_app:app (1 worker)", target=""))
    return results


if __name__ == "__main__":
    rows = run()
    json.dump([r.as_dict() for r in rows], sys.stdout, indent=2)
    sys.stdout.write("\n")
