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
{eku}
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
                digest: str = "sha256", levels: int = 4, int_eku: str | None = None) -> Pki:
    """root (RSA 2048) -> ``levels - 2`` intermediates (EC P-256) -> leaf (EC P-256), all signed by openssl.

    ``int_eku`` restricts the intermediates (e.g. "serverAuth", as many public CAs do).
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
        eku = f"extendedKeyUsage = {int_eku}" if int_eku else ""
        sections.append(_CA_SECTION.format(name=f"int{index}", aia=aia, eku=eku))
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


@dataclass
class V1Pki:
    """Certificates of the kinds RFC 5280 treats apart when there is no basicConstraints, made by openssl.

    ``root`` is a self-signed version 1 certificate (as old roots are) and ``leaf`` a v3 server
    certificate it issued; ``intermediate`` is a v1 certificate the root issued, and ``under`` a leaf
    signed by it; ``no_bc`` is a self-signed v3 server certificate without basicConstraints.
    Every ``X.key`` sits next to ``X.pem`` in ``dir``.
    """

    dir: Path
    root: Path
    leaf: Path
    intermediate: Path
    under: Path
    no_bc: Path

    def key(self, cert: Path) -> Path:
        return cert.with_suffix(".key")


_V1_CONFIG = """
[req]
distinguished_name = dn
[dn]
[leaf]
basicConstraints = critical,CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:{leaf}
[under]
basicConstraints = critical,CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:under.{leaf}
[no_bc]
subjectKeyIdentifier = hash
subjectAltName = DNS:{leaf}
"""


def v1_pki(directory: Path) -> V1Pki:
    """See :class:`V1Pki`. `openssl x509 -req` without extensions writes a version 1 certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    d = directory
    config = d / "openssl.cnf"
    config.write_text(_V1_CONFIG.format(leaf=LEAF_NAME))
    for name in ("root", "leaf", "intermediate", "under", "no_bc"):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(d / f"{name}.key"))

    def request(name: str, subject: str) -> Path:
        csr = d / f"{name}.csr"
        openssl("req", "-new", "-key", str(d / f"{name}.key"), "-subj", subject, "-config", str(config), "-out", str(csr))
        return csr

    def sign(name: str, subject: str, issuer: str, section: str | None, days: int) -> None:
        extensions = ["-extfile", str(config), "-extensions", section] if section else []
        openssl("x509", "-req", "-in", str(request(name, subject)), "-CA", str(d / f"{issuer}.pem"),
                "-CAkey", str(d / f"{issuer}.key"), "-set_serial", str(secrets.randbits(63) | 1 << 62),
                "-days", str(days), *extensions, "-out", str(d / f"{name}.pem"))

    openssl("x509", "-req", "-in", str(request("root", "/CN=V1 Root")), "-signkey", str(d / "root.key"),
            "-days", "3650", "-out", str(d / "root.pem"))
    sign("leaf", f"/CN={LEAF_NAME}", "root", "leaf", 30)
    sign("intermediate", "/CN=V1 Intermediate", "root", None, 365)
    sign("under", f"/CN=under.{LEAF_NAME}", "intermediate", "under", 30)
    openssl("req", "-x509", "-new", "-key", str(d / "no_bc.key"), "-subj", f"/CN={LEAF_NAME}", "-config", str(config),
            "-extensions", "no_bc", "-days", "30", "-out", str(d / "no_bc.pem"))
    return V1Pki(d, d / "root.pem", d / "leaf.pem", d / "intermediate.pem", d / "under.pem", d / "no_bc.pem")


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
    with serve_http(functools.partial(_QuietHandler, directory=str(directory)), port) as url:
        yield url


@contextlib.contextmanager
def serve_http(handler, port: int | None = None) -> Iterator[str]:
    """Run ``handler`` (a request handler class or factory) on 127.0.0.1 in a thread; yields the base URL."""
    port = port or free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# A real public chain, from cryptography's own documentation (certificates are public data):
# cryptography.io's Let's Encrypt leaf and its issuer E1, valid together on 2024-01-12, ending at
# ISRG Root X2 which certifi carries.
PUBLIC_AT = "2024-01-12T00:00:00+00:00"
PUBLIC_LEAF = b"""-----BEGIN CERTIFICATE-----
MIIDgTCCAwegAwIBAgISBJUzlK20QGqPf5xI0aoE8OIBMAoGCCqGSM49BAMDMDIx
CzAJBgNVBAYTAlVTMRYwFAYDVQQKEw1MZXQncyBFbmNyeXB0MQswCQYDVQQDEwJF
MTAeFw0yMzExMjIyMDUyNDBaFw0yNDAyMjAyMDUyMzlaMBoxGDAWBgNVBAMTD2Ny
eXB0b2dyYXBoeS5pbzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABAh2A0yuOByJ
lxK3ps5vbSOT6ZmvAlflGLn8kEseeodIAockm0ISTb/NGSpu/SY4ITefAOSaulKn
BzDgmqjGRKujggITMIICDzAOBgNVHQ8BAf8EBAMCB4AwHQYDVR0lBBYwFAYIKwYB
BQUHAwEGCCsGAQUFBwMCMAwGA1UdEwEB/wQCMAAwHQYDVR0OBBYEFJu7f03HjjwJ
MU6rfwDBzxySTrs5MB8GA1UdIwQYMBaAFFrz7Sv8NsI3eblSMOpUb89Vyy6sMFUG
CCsGAQUFBwEBBEkwRzAhBggrBgEFBQcwAYYVaHR0cDovL2UxLm8ubGVuY3Iub3Jn
MCIGCCsGAQUFBzAChhZodHRwOi8vZTEuaS5sZW5jci5vcmcvMBoGA1UdEQQTMBGC
D2NyeXB0b2dyYXBoeS5pbzATBgNVHSAEDDAKMAgGBmeBDAECATCCAQYGCisGAQQB
1nkCBAIEgfcEgfQA8gB3AEiw42vapkc0D+VqAvqdMOscUgHLVt0sgdm7v6s52IRz
AAABi/kFXv4AAAQDAEgwRgIhAI9uF526YzU/DEfpmWRA28fn9gryrWMUCXQnEejQ
K/trAiEA12ePSql3sGJ/QgXc6ceQB/XAdwzwDB+2CHr6T14vvvUAdwDuzdBk1dsa
zsVct520zROiModGfLzs3sNRSFlGcR+1mwAAAYv5BV8kAAAEAwBIMEYCIQD1mqTn
b1hOpZWAUlwVM4EJLYA9HtlOvF70bfrGHpAX4gIhAI8pktDxrUwfTXPuA+eMFPbC
QraG6dMkB+HOmTz+hgKyMAoGCCqGSM49BAMDA2gAMGUCMQC+PwiHciKMaJyRJkGa
KFjT/1ICAUsCm8o5h4Xxm0LoOCJVggaXeamDEYnPWbxGETgCME5TJzLIDuF3z6vX
1SLZDdvHEHLKfOL8/h8KctkjLQ8OJycxwIc+zK+xexVoIuxRhA==
-----END CERTIFICATE-----
"""
PUBLIC_E1 = b"""-----BEGIN CERTIFICATE-----
MIICxjCCAk2gAwIBAgIRALO93/inhFu86QOgQTWzSkUwCgYIKoZIzj0EAwMwTzEL
MAkGA1UEBhMCVVMxKTAnBgNVBAoTIEludGVybmV0IFNlY3VyaXR5IFJlc2VhcmNo
IEdyb3VwMRUwEwYDVQQDEwxJU1JHIFJvb3QgWDIwHhcNMjAwOTA0MDAwMDAwWhcN
MjUwOTE1MTYwMDAwWjAyMQswCQYDVQQGEwJVUzEWMBQGA1UEChMNTGV0J3MgRW5j
cnlwdDELMAkGA1UEAxMCRTEwdjAQBgcqhkjOPQIBBgUrgQQAIgNiAAQkXC2iKv0c
S6Zdl3MnMayyoGli72XoprDwrEuf/xwLcA/TmC9N/A8AmzfwdAVXMpcuBe8qQyWj
+240JxP2T35p0wKZXuskR5LBJJvmsSGPwSSB/GjMH2m6WPUZIvd0xhajggEIMIIB
BDAOBgNVHQ8BAf8EBAMCAYYwHQYDVR0lBBYwFAYIKwYBBQUHAwIGCCsGAQUFBwMB
MBIGA1UdEwEB/wQIMAYBAf8CAQAwHQYDVR0OBBYEFFrz7Sv8NsI3eblSMOpUb89V
yy6sMB8GA1UdIwQYMBaAFHxClq7eS0g7+pL4nozPbYupcjeVMDIGCCsGAQUFBwEB
BCYwJDAiBggrBgEFBQcwAoYWaHR0cDovL3gyLmkubGVuY3Iub3JnLzAnBgNVHR8E
IDAeMBygGqAYhhZodHRwOi8veDIuYy5sZW5jci5vcmcvMCIGA1UdIAQbMBkwCAYG
Z4EMAQIBMA0GCysGAQQBgt8TAQEBMAoGCCqGSM49BAMDA2cAMGQCMHt01VITjWH+
Dbo/AwCd89eYhNlXLr3pD5xcSAQh8suzYHKOl9YST8pE9kLJ03uGqQIwWrGxtO3q
YJkgsTgDyj2gJrjubi1K9sZmHzOa25JK1fUpE8ZwYii6I4zPPS/Lgul/
-----END CERTIFICATE-----
"""
