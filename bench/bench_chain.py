"""`tlskit chain` against `openssl verify` on the same files: a 4-level chain lost in certifi's bundle.

The pile is what a user really hands over when they `cat` everything they have: certifi's ~150 roots
with a leaf and two intermediates shuffled in. tlskit has to find the leaf, order the chain, check
every signature, verify it with the WebPKI rules and write fullchain.pem; openssl gets the leaf
separately (it cannot find it by itself) and the same pile as -untrusted. Both are whole processes.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from bench.common import TLSKIT, Result, median_wall_ms, need, workdir


def _build_pile(work: Path) -> tuple[Path, Path, Path, Path]:
    """root -> int1 -> int2 -> leaf with tlskit's CA; returns (root, leaf, mixed pile, leaf+intermediates)."""
    import certifi

    from tlskit.certificates import to_pem
    from tlskit.issue import LocalCA
    from tlskit.keys import KeySpec, generate_key
    from tlskit.names import parse_sans

    root = LocalCA.create(work / "root", {"CN": "Bench Root"}, KeySpec.parse("rsa:2048"))
    int1 = LocalCA.create(work / "int1", {"CN": "Bench Intermediate 1"}, parent=root)
    int2 = LocalCA.create(work / "int2", {"CN": "Bench Intermediate 2"}, parent=int1)
    leaf = int2.issue({"CN": "bench.example.com"}, parse_sans(["bench.example.com"]),
                      generate_key(KeySpec.parse("ec:p256"))).certificate
    (work / "leaf.pem").write_bytes(to_pem(leaf))
    ours = [to_pem(c) for c in (leaf, int2.certificate, int1.certificate)]
    (work / "small.pem").write_bytes(b"".join(reversed(ours)))
    bundle = Path(certifi.where()).read_bytes()
    blocks = [b"-----BEGIN CERTIFICATE-----" + part.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
              for part in bundle.split(b"-----BEGIN CERTIFICATE-----")[1:]]
    blocks += ours
    random.Random(42).shuffle(blocks)
    (work / "mixed.pem").write_bytes(b"".join(blocks))
    return work / "root" / "ca.pem", work / "leaf.pem", work / "mixed.pem", work / "small.pem"


def _count(path: Path) -> int:
    return path.read_bytes().count(b"-----BEGIN CERTIFICATE-----")


def run() -> list[Result]:
    openssl = need("openssl")
    work = workdir("chain")
    root, leaf, mixed, small = _build_pile(work)
    out = work / "fullchain.pem"
    results = []
    for label, pile in ((f"{_count(mixed)} certs: 4-level chain shuffled into certifi's bundle", mixed),
                        ("3 certs: leaf + 2 intermediates, reversed", small)):
        tlskit_cmd = [*TLSKIT, "chain", str(pile), "--ca-file", str(root), "--out", str(out), "--force"]
        openssl_cmd = [openssl, "verify", "-CAfile", str(root), "-untrusted", str(pile), str(leaf)]
        results.append(Result(
            f"chain: order + verify + write, {label} (whole process)",
            median_wall_ms(tlskit_cmd), median_wall_ms(openssl_cmd), "ms", "lower", "openssl verify",
            " ".join(["tlskit", *tlskit_cmd[len(TLSKIT):]]), " ".join(openssl_cmd), target="<= 2x"))
    return results


def library_ms(runs: int = 20) -> float:
    """In-process time of load_inputs + build_chain on the big pile (start-up excluded), for the notes."""
    import statistics

    from tlskit.chain import build_chain, load_inputs
    from tlskit.trust import TrustStore

    work = workdir("chain-lib")
    root, _, mixed, _ = _build_pile(work)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        build_chain(load_inputs([str(mixed)])[0], TrustStore.from_file(root))
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


if __name__ == "__main__":
    print(json.dumps([r.as_dict() for r in run()], indent=2))
