"""`tlskit probe` never writes an SSLKEYLOGFILE, whatever the environment says.

Python's ssl.create_default_context() (and so urllib's https) appends every session's secrets to the
file SSLKEYLOGFILE names; a probe run from a shell where a debugging session left it set must not leave
the secrets of the servers it looked at on disk. The probe's own handshake and the https download of a
missing intermediate (--fetch) are both checked.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from conftest import run_tlskit
from peers_tls import build_pki, s_server
from peers_verdicts import Pki as VerdictPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_pki(tmp_path_factory.mktemp("keylog-pki"))


def test_probe_writes_no_keylog_file(pki, tmp_path):
    keylog = tmp_path / "keys.log"
    with s_server(pki.leaf, pki.leaf_key, pki.intermediate) as server:
        for extra in ((), ("--json",), ("--showcerts", "--alpn", "h2,http/1.1")):
            run = run_tlskit("probe", server.target, "-n", "localhost", "--ca-file", str(pki.root), *extra,
                             env={"SSLKEYLOGFILE": str(keylog)})
            assert run.returncode == 0, run.stderr
            assert not keylog.exists(), keylog.read_text()


@contextlib.contextmanager
def https_listener(cert, key) -> Iterator[int]:
    """A TLS server on 127.0.0.1 that completes each handshake and answers 404 (a caIssuers URL that
    serves nothing): where a client would log the session's secrets, if it logged them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(5)
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(65536)
                        tls.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except (OSError, ssl.SSLError):    # the client refused our certificate: fine here
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_probe_fetch_over_https_writes_no_keylog_file(pki, tmp_path):
    """The leaf's issuer is only reachable through an https caIssuers URL: the download's handshake
    happens (whatever the download then yields), and still no secret is logged."""
    certs = VerdictPki(tmp_path / "pki")
    root = certs.issue("root", "Keylog Root", None, ca=True)
    inter = certs.issue("inter", "Keylog Intermediate", root, ca=True)
    with https_listener(inter.path, certs.dir / "inter.key") as port:
        aia = x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(f"https://127.0.0.1:{port}/i.der"))])
        leaf = certs.issue("leaf", "localhost", inter, ca=False, extensions=[(aia, False)])
        keylog = tmp_path / "keys.log"
        with s_server(leaf.path, certs.dir / "leaf.key") as server:
            run = run_tlskit("probe", server.target, "-n", "localhost", "--ca-file", str(root.path), "--fetch",
                             env={"SSLKEYLOGFILE": str(keylog)})
    assert "i.der" in run.stderr, run.stderr          # the download was tried
    assert not keylog.exists(), keylog.read_text()
