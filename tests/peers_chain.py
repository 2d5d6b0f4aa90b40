"""Real PKIs for the chain tests: built with the openssl binary and with tlskit's own CA, plus an AIA server.

Both builders make root -> intermediate 1 -> intermediate 2 -> leaf (four levels) and return the
paths; the openssl one can put AIA caIssuers URLs into the leaf and the intermediates so that
``--fetch`` has something to follow.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conftest import free_port, openssl, run_tlskit

LEAF_NAME = "www.example.test"


@dataclass
class Pki:
    """Paths of one PKI; ``intermediates`` is ordered from the leaf's issuer up to the root's child."""

    root: Path
    intermediates: list[Path]
    leaf: Path
    leaf_key: Path
    names: dict[str, str] = field(default_factory=dict)  # role -> subject as /CN=...

    @property
    def all_certs(self) -> list[Path]:
        return [self.leaf, *self.intermediates, self.root]


_OPENSSL_CONFIG = """
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

_CA_SECTION = """
[{name}]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
{aia}
"""

_LEAF_SECTION = """
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:{name},DNS:example.test
{aia}
"""


def openssl_pki(directory: Path, prefix: str = "OpenSSL", aia_base: str | None = None, leaf_days: int = 90,
                digest: str = "sha256", levels: int = 4) -> Pki:
    """root (RSA 2048) -> ``levels - 2`` intermediates (EC P-256) -> leaf (EC P-256), all signed by openssl.

    With ``aia_base`` (http://127.0.0.1:PORT), each non-root certificate gets an AIA caIssuers URL
    ``{aia_base}/<issuer file>.der`` pointing at the DER of its issuer.
    """
    directory.mkdir(parents=True, exist_ok=True)
    d = directory
    n_int = levels - 2
    sections = [_OPENSSL_CONFIG]
    for index in range(1, n_int + 1):
        issuer = "root" if index == 1 else f"int{index - 1}"
        aia = f"authorityInfoAccess = caIssuers;URI:{aia_base}/{issuer}.der" if aia_base else ""
        sections.append(_CA_SECTION.format(name=f"int{index}", aia=aia))
    leaf_issuer = f"int{n_int}" if n_int else "root"
    aia = f"authorityInfoAccess = caIssuers;URI:{aia_base}/{leaf_issuer}.der" if aia_base else ""
    sections.append(_LEAF_SECTION.format(name=LEAF_NAME, aia=aia))
    config = d / "openssl.cnf"
    config.write_text("\n".join(sections))

    names = {"root": f"/CN={prefix} Root"}
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(d / "root.key"))
    openssl("req", "-x509", "-new", "-key", str(d / "root.key"), "-subj", names["root"], "-days", "3650",
            "-config", str(config), "-extensions", "root", f"-{digest}", "-out", str(d / "root.pem"))
    issuer = "root"
    for index in range(1, n_int + 1):
        name = f"int{index}"
        names[name] = f"/CN={prefix} Intermediate {index}"
        _openssl_signed(d, name, names[name], issuer, config, name, 1825, digest)
        issuer = name
    names["leaf"] = f"/CN={LEAF_NAME}"
    _openssl_signed(d, "leaf", names["leaf"], issuer, config, "leaf", leaf_days, digest)
    for name in ["root", *[f"int{i}" for i in range(1, n_int + 1)]]:
        openssl("x509", "-in", str(d / f"{name}.pem"), "-outform", "DER", "-out", str(d / f"{name}.der"))
    intermediates = [d / f"int{i}.pem" for i in range(n_int, 0, -1)]
    return Pki(d / "root.pem", intermediates, d / "leaf.pem", d / "leaf.key", names)


def _openssl_signed(d: Path, name: str, subject: str, issuer: str, config: Path, section: str, days: int,
                    digest: str) -> None:
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(d / f"{name}.key"))
    openssl("req", "-new", "-key", str(d / f"{name}.key"), "-subj", subject, "-config", str(config),
            "-out", str(d / f"{name}.csr"))
    openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / f"{issuer}.pem"),
            "-CAkey", str(d / f"{issuer}.key"), "-set_serial", str(secrets.randbits(63) | 1 << 62),
            "-days", str(days), "-extfile", str(config), "-extensions", section, f"-{digest}",
            "-out", str(d / f"{name}.pem"))


def tlskit_pki(directory: Path, prefix: str = "Tlskit", leaf_days: int = 90, int_days: int = 1825) -> Pki:
    """root -> intermediate 1 -> intermediate 2 -> leaf, made with `tlskit ca init --parent` and `ca sign`."""
    directory.mkdir(parents=True, exist_ok=True)

    def ok(*args: str) -> None:
        run = run_tlskit(*args, cwd=directory)
        assert run.returncode == 0, (args, run.stderr)

    ok("ca", "init", "--dir", "root", "--cn", f"{prefix} Root", "--key-type", "rsa:2048")
    ok("ca", "init", "--dir", "int1", "--cn", f"{prefix} Intermediate 1", "--parent", "root", "--days", str(int_days))
    ok("ca", "init", "--dir", "int2", "--cn", f"{prefix} Intermediate 2", "--parent", "int1", "--days", str(int_days))
    ok("csr", "--cn", LEAF_NAME, "--san", "example.test", "--out", "leaf.csr", "--key-out", "leaf.key")
    ok("ca", "sign", "leaf.csr", "--ca-dir", "int2", "--days", str(leaf_days), "--out", "leaf.pem")
    d = directory
    return Pki(d / "root" / "ca.pem", [d / "int2" / "ca.pem", d / "int1" / "ca.pem"], d / "leaf.pem", d / "leaf.key",
               {"root": f"/CN={prefix} Root", "int1": f"/CN={prefix} Intermediate 1",
                "int2": f"/CN={prefix} Intermediate 2", "leaf": f"/CN={LEAF_NAME}"})


def pem_subjects(path: Path) -> list[str]:
    """Subjects of every certificate in a PEM file, in file order, as the openssl binary reads them."""
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", path.read_bytes(), re.DOTALL)
    subjects = []
    for block in blocks:
        out = openssl("x509", "-noout", "-subject", "-nameopt", "compat", input=block).stdout.decode().strip()
        subjects.append(out.removeprefix("subject="))
    return subjects


def openssl_verify(root: Path, fullchain: Path) -> subprocess.CompletedProcess:
    """`openssl verify -CAfile root -untrusted fullchain fullchain`: checks the leaf (first cert) up to root."""
    return openssl("verify", "-CAfile", str(root), "-untrusted", str(fullchain), str(fullchain), check=False)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def http_server(directory: Path, port: int | None = None) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a CA's caIssuers repository); yields the base URL; always stopped."""
    port = port or free_port()
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
