"""Whole-process `tlskit probe` against `openssl s_client -connect ... </dev/null` on the same local server.

Both start a fresh process per run, connect to the same `openssl s_server` on 127.0.0.1 (leaf +
intermediate, EC P-256, TLS 1.3), complete the handshake, verify the chain and the host name against the
same root, and exit. s_client gets stdin from /dev/null (it would otherwise wait for input); tlskit
never reads stdin. A second row verifies against each tool's default trust store (certifi's ~150 roots
for tlskit, the system's CA path for openssl), which is what a user's everyday probe costs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bench.common import ROOT, TLSKIT, Result, median_wall_ms, need, workdir

# An installed tlskit has its bytecode compiled (pip does it); a shell with PYTHONDONTWRITEBYTECODE=1
# would recompile tlskit's modules on every run and measure the compiler. The warm-up runs write them.
_ENV = {"PYTHONDONTWRITEBYTECODE": ""}


def _ms(command: list[str]) -> float:
    return median_wall_ms(command, runs=15, warmup=3, env=_ENV)


def _cpu_ms(command: list[str], runs: int = 15, warmup: int = 3) -> float:
    """Median user+system CPU time of the whole process: steadier than wall time on a busy machine."""
    import os
    import resource
    import statistics

    samples = []
    for index in range(warmup + runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, **_ENV}, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if index >= warmup:
            samples.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return statistics.median(samples)


def _pki(work):
    sys.path.insert(0, str(ROOT / "tests"))
    from peers_tls import build_pki  # the same test PKI as tests/test_probe.py, built with tlskit's LocalCA

    return build_pki(work / "pki")


def _start_server(openssl: str, pki, port: int) -> subprocess.Popen:
    import socket

    process = subprocess.Popen(
        [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(pki.leaf), "-key", str(pki.leaf_key),
         "-cert_chain", str(pki.intermediate), "-www", "-quiet"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise SystemExit("openssl s_server did not start")


def _check(command: list[str], expect: bytes) -> None:
    """Each side must really verify (exit 0, the verdict printed) or the timing means nothing."""
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    if done.returncode != 0 or expect not in done.stdout:
        raise SystemExit(f"bench command failed: {' '.join(command)}\n{done.stdout[-400:]!r}\n{done.stderr[-400:]!r}")


def run() -> list[Result]:
    openssl = need("openssl")
    work = workdir("probe")
    pki = _pki(work)
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = _start_server(openssl, pki, port)
    results = []
    try:
        target = f"127.0.0.1:{port}"
        tlskit_cmd = [*TLSKIT, "probe", target, "--servername", "localhost", "--ca-file", str(pki.root)]
        openssl_cmd = [openssl, "s_client", "-connect", target, "-servername", "localhost", "-CAfile", str(pki.root),
                       "-verify_hostname", "localhost", "-verify_return_error"]
        _check(tlskit_cmd, b"Verified")
        _check(openssl_cmd, b"Verify return code: 0 (ok)")
        results.append(Result(
            "probe local server, verify against a CA file (whole process)",
            _ms(tlskit_cmd), _ms(openssl_cmd), "ms", "lower", "openssl s_client",
            " ".join(["tlskit", *tlskit_cmd[len(TLSKIT):]]), " ".join(openssl_cmd) + " </dev/null", target="<= 2x"))

        results.append(Result(
            "probe local server, verify against a CA file (CPU time, whole process)",
            _cpu_ms(tlskit_cmd), _cpu_ms(openssl_cmd), "ms CPU", "lower", "openssl s_client",
            " ".join(["tlskit", *tlskit_cmd[len(TLSKIT):]]), " ".join(openssl_cmd) + " </dev/null", target="<= 2x"))

        # Default trust: the chain is private so both fail verification the same way (20); the work is
        # loading the default roots, handshaking and giving that verdict.
        tlskit_default = [*TLSKIT, "probe", target, "--servername", "localhost"]
        openssl_default = [openssl, "s_client", "-connect", target, "-servername", "localhost",
                           "-verify_hostname", "localhost"]
        results.append(Result(
            "probe local server, default trust store (whole process)",
            _ms(tlskit_default), _ms(openssl_default), "ms", "lower", "openssl s_client",
            " ".join(["tlskit", *tlskit_default[len(TLSKIT):]]), " ".join(openssl_default) + " </dev/null",
            target="<= 2x"))
        results.append(Result(
            "probe --json, CA file (whole process)",
            _ms([*tlskit_cmd, "--json"]), _ms(openssl_cmd), "ms", "lower", "openssl s_client",
            " ".join(["tlskit", *tlskit_cmd[len(TLSKIT):], "--json"]), " ".join(openssl_cmd) + " </dev/null",
            target="<= 2x"))
        # The same probe through the library, without the CLI: what typer's start-up adds is the difference.
        script = ("from pathlib import Path; from tlskit.probe import probe, ProbeOptions; "
                  f"r = probe(ProbeOptions('127.0.0.1', {port}, 'localhost', Path({str(pki.root)!r}))); "
                  "raise SystemExit(0 if r.verification.verified else 1)")
        library_cmd = [sys.executable, "-c", script]
        _check(library_cmd, b"")  # exit 0 only when verified
        results.append(Result(
            "probe through the library, no CLI (python -c, whole process)",
            _ms(library_cmd), _ms(openssl_cmd), "ms", "lower", "openssl s_client",
            "python -c 'from tlskit.probe import probe ...'", " ".join(openssl_cmd) + " </dev/null",
            target="information"))
    finally:
        server.kill()
        server.wait(timeout=10)
    return results


if __name__ == "__main__":
    print(json.dumps([r.as_dict() for r in run()], indent=2))
