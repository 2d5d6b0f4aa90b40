"""Whole-process timings of the everyday CLI paths against openssl: start-up and making a key + CSR.

Both sides start a fresh process per run, as a user's shell does, so interpreter start-up counts.
"""

from __future__ import annotations

import json

from bench.common import TLSKIT, Result, median_wall_ms, need, workdir


def run() -> list[Result]:
    openssl = need("openssl")
    work = workdir("cli")
    results = []

    help_ms = median_wall_ms([*TLSKIT, "--help"])
    openssl_help_ms = median_wall_ms([openssl, "version"])
    results.append(Result("CLI start-up (tlskit --help vs openssl version)", help_ms, openssl_help_ms, "ms", "lower",
                          "openssl", "tlskit --help", "openssl version", target="< 150 ms absolute"))

    def clean():
        for path in work.iterdir():
            path.unlink()

    tlskit_csr = [*TLSKIT, "csr", "--key-type", "ec:p256", "--subject", "/C=IN/O=Bench/CN=bench.example.com",
                  "--out", str(work / "t.csr"), "--key-out", str(work / "t.key")]
    openssl_csr = [openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                   "-subj", "/C=IN/O=Bench/CN=bench.example.com", "-addext", "subjectAltName=DNS:bench.example.com",
                   "-keyout", str(work / "o.key"), "-out", str(work / "o.csr")]
    results.append(Result("csr ec:p256 (key + CSR, whole process)", median_wall_ms(tlskit_csr, before=clean),
                          median_wall_ms(openssl_csr, before=clean), "ms", "lower", "openssl",
                          " ".join(["tlskit", *tlskit_csr[len(TLSKIT):]]), " ".join(openssl_csr), target="<= 2x"))

    tlskit_rsa = [*TLSKIT, "csr", "--key-type", "rsa:2048", "--cn", "bench.example.com",
                  "--out", str(work / "r.csr"), "--key-out", str(work / "r.key")]
    openssl_rsa = [openssl, "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=bench.example.com",
                   "-keyout", str(work / "ro.key"), "-out", str(work / "ro.csr")]
    results.append(Result("csr rsa:2048 (key + CSR, whole process)", median_wall_ms(tlskit_rsa, runs=9, before=clean),
                          median_wall_ms(openssl_rsa, runs=9, before=clean), "ms", "lower", "openssl",
                          " ".join(["tlskit", *tlskit_rsa[len(TLSKIT):]]), " ".join(openssl_rsa), target="<= 2x"))
    return results


if __name__ == "__main__":
    print(json.dumps([r.as_dict() for r in run()], indent=2))
