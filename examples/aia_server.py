"""The README's `tlskit chain --fetch` example: a leaf whose intermediates are only reachable through
its AIA caIssuers URLs, and the HTTP server that publishes them (as a CA's repository does).

Writes root.pem (Demo Root) and leaf.pem (www.example.test, issued by Demo Intermediate 2) in the
current directory, int1.der and int2.der under ./aia/, then serves ./aia/ until Ctrl-C:

    python3 examples/aia_server.py            # http://127.0.0.1:8099/; --port N for another
    tlskit chain leaf.pem --ca-file root.pem --fetch --out fullchain.pem     # in another terminal
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import http.server
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(cn: str, key, issuer_cert, issuer_key, days: int, ca: bool, aia_url: str | None,
                 sans: list[str] = ()) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    issuer_name = issuer_cert.subject if issuer_cert is not None else _name(cn)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                        critical=True)
    else:
        builder = (builder.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                                         critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False))
    if issuer_cert is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                        critical=False)
    if aia_url:
        # Where a client that lacks the issuer downloads it (RFC 5280 4.2.2.1).
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(aia_url))]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def make_pki(out: Path, base_url: str) -> None:
    root_key, int1_key, int2_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    root = _certificate("Demo Root", root_key, None, None, 3650, True, None)
    int1 = _certificate("Demo Intermediate 1", int1_key, root, root_key, 1826, True, None)
    int2 = _certificate("Demo Intermediate 2", int2_key, int1, int1_key, 1826, True, f"{base_url}/int1.der")
    leaf = _certificate("www.example.test", leaf_key, int2, int2_key, 90, False, f"{base_url}/int2.der",
                        ["www.example.test"])
    (out / "aia").mkdir(exist_ok=True)
    (out / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (out / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (out / "aia" / "int1.der").write_bytes(int1.public_bytes(serialization.Encoding.DER))
    (out / "aia" / "int2.der").write_bytes(int2.public_bytes(serialization.Encoding.DER))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--make-only", action="store_true", help="write the files and exit, serve nothing")
    args = parser.parse_args()
    base_url = f"http://127.0.0.1:{args.port}"
    make_pki(Path.cwd(), base_url)
    print("wrote root.pem, leaf.pem, aia/int1.der, aia/int2.der", flush=True)
    if args.make_only:
        return
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(Path.cwd() / "aia"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    print(f"serving the intermediates on {base_url}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
