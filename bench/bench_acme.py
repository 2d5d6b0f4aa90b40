"""`tlskit acme issue` vs `certbot certonly --standalone` and `lego run --http`: wall time of one
http-01 issuance.

All three run against the same Pebble (PEBBLE_VA_NOSLEEP=1, no injected badNonce) with the same
challenge (standalone http-01 on Pebble's httpPort), the same key type (EC P-256) and an account kept
between runs, interleaved, each run for a fresh name so no side skips the challenge on a cached
authorization. Figure: median whole-process wall time in ms, lower is better.

    .venv/bin/python -m bench.bench_acme
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from bench.common import ROOT, TLSKIT, Result, need, workdir

RUNS = 7
WARMUP = 1


def _certbot() -> str:
    candidate = ROOT / ".venv" / "bin" / "certbot"
    if candidate.exists():
        return str(candidate)
    raise SystemExit("bench needs certbot: .venv/bin/pip install certbot (make bench-deps does it)")


def _timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env={**os.environ, **(env or {})}, timeout=300)
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stderr.decode(errors='replace')[-600:]}")
    return elapsed


def run() -> list[Result]:
    sys.path.insert(0, str(ROOT / "tests"))
    from peers_pebble import Pebble

    base = workdir("acme")
    certbot = _certbot()
    lego = need("lego")
    # Pebble rejects 5% of nonces by default; certbot's acme retries a badNonce only once and then
    # fails the whole run now and then ("JWS has an invalid anti-replay nonce"), so the bench turns
    # the injection off for every side (tests/test_acme.py covers tlskit under 50% rejection).
    pebble = Pebble.start(base / "pebble", env={"PEBBLE_WFE_NONCEREJECT": "0"})
    try:
        http = ["--http-port", str(pebble.http_port), "--bind", "127.0.0.1"]
        tlskit_cmd = [*TLSKIT, "acme", "issue", "NAME", "--agree-tos", "--email", "bench@example.com",
                      "--out-dir", str(base / "tlskit"), "--directory", pebble.directory,
                      "--directory-ca-file", str(pebble.ca_file), *http]
        certbot_cmd = [certbot, "certonly", "--standalone", "--http-01-port", str(pebble.http_port),
                       "--http-01-address", "127.0.0.1", "--server", pebble.directory, "-d", "NAME",
                       "--agree-tos", "--register-unsafely-without-email", "--non-interactive",
                       "--key-type", "ecdsa", "--elliptic-curve", "secp256r1",
                       "--config-dir", str(base / "certbot" / "config"), "--work-dir", str(base / "certbot" / "work"),
                       "--logs-dir", str(base / "certbot" / "logs")]
        certbot_env = {"REQUESTS_CA_BUNDLE": str(pebble.ca_file)}
        lego_cmd = [lego, "--server", pebble.directory, "--email", "bench@example.com", "--accept-tos",
                    "--http", "--http.port", f"127.0.0.1:{pebble.http_port}", "--domains", "NAME",
                    "--key-type", "ec256", "--path", str(base / "lego"), "run"]
        lego_env = {"LEGO_CA_CERTIFICATES": str(pebble.ca_file)}
        ours, certbots, legos = [], [], []
        for index in range(WARMUP + RUNS):
            t = _timed([f"t{index}.bench.example.com" if a == "NAME" else a for a in tlskit_cmd])
            c = _timed([f"c{index}.bench.example.com" if a == "NAME" else a for a in certbot_cmd], certbot_env)
            g = _timed([f"g{index}.bench.example.com" if a == "NAME" else a for a in lego_cmd], lego_env)
            if index >= WARMUP:
                ours.append(t)
                certbots.append(c)
                legos.append(g)
    finally:
        pebble.stop()
    show = lambda cmd: " ".join("example.com" if a == "NAME" else a for a in cmd)  # noqa: E731
    work = "acme issue, 1 name, http-01 standalone (Pebble, new name each run, account reused)"
    mine = round(statistics.median(ours), 1)
    return [
        Result(work=work, tlskit=mine, peer=round(statistics.median(certbots), 1), unit="ms", better="lower",
               peer_name="certbot " + _version([certbot, "--version"]), tlskit_command=show(tlskit_cmd),
               peer_command=show(certbot_cmd), target="<= 0.5x"),
        Result(work=work, tlskit=mine, peer=round(statistics.median(legos), 1), unit="ms", better="lower",
               peer_name="lego " + _lego_version(), tlskit_command=show(tlskit_cmd), peer_command=show(lego_cmd),
               target="<= 1.0x"),
    ]


def _version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    return (done.stdout or done.stderr).strip().split()[-1] if done.returncode == 0 else "?"


def _lego_version() -> str:
    """Debian's lego says "lego version dev"; its package knows the release."""
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "lego"], capture_output=True, text=True)
    return done.stdout.split("-")[0] if done.returncode == 0 and done.stdout else _version([need("lego"), "--version"])


if __name__ == "__main__":
    print(json.dumps([r.as_dict() for r in run()], indent=2))
