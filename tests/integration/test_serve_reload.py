"""Certificate hot reload: replace the cert/key files under a running TLS listener, ask openssl s_client.

Polls until the served serial changes (bounded at 15 s); never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from pathlib import Path

import pytest

from conftest import free_port, openssl, require_binary
from peers_serve import poll_until
from tlskit.certificates import to_pem
from tlskit.issue import self_signed_certificate
from tlskit.keys import KeySpec, generate_key, private_key_pem
from tlskit.server.reload import CertificateReloader


def make_pair(cn: str = "localhost") -> tuple[bytes, bytes, str]:
    key = generate_key(KeySpec.parse("ec:p256"))
    cert = self_signed_certificate(key, {"CN": cn}, [], 10).certificate
    return to_pem(cert), private_key_pem(key), format(cert.serial_number, "X")


def replace(path: Path, data: bytes) -> None:
    """As renewal tools do: write beside, then rename into place."""
    tmp = path.with_suffix(".new")
    tmp.write_bytes(data)
    tmp.rename(path)


def served_serial(port: int) -> str:
    hello = openssl("s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                    input=b"", check=False)
    out = openssl("x509", "-noout", "-serial", input=hello.stdout, check=False)
    text = out.stdout.decode().strip()
    return text.split("=", 1)[1].upper() if "=" in text else ""


def wait_for_serial(port: int, expected: str, timeout: float = 15.0) -> str:
    return poll_until(lambda: served_serial(port), lambda seen: seen == expected, timeout, interval=0.1)


def build_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def listener(tmp_path):
    """A TLS listener on uvloop whose certificate a CertificateReloader manages."""
    require_binary("openssl")
    import uvloop

    cert_pem, key_pem, serial = make_pair()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    listening = build_context(cert, key)
    reloader = CertificateReloader(cert, key, build_context, interval=0.2)
    reloader.install(listening)
    reloader.start()
    port = free_port()
    loop = uvloop.new_event_loop()
    ready = threading.Event()

    async def handle(reader, writer):
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nok")
        await writer.drain()
        writer.close()

    stop = asyncio.Event()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=listening)
        ready.set()
        await stop.wait()
        server.close()
        await server.wait_closed()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield port, cert, key, serial, reloader
    reloader.stop()
    loop.call_soon_threadsafe(stop.set)
    thread.join(timeout=5)
    loop.close()


def test_replaced_pair_is_served_to_new_connections(listener, caplog):
    port, cert, key, first, reloader = listener
    assert served_serial(port) == first
    cert_pem, key_pem, second = make_pair()
    with caplog.at_level(logging.INFO, logger="tlskit.serve"):
        replace(key, key_pem)
        replace(cert, cert_pem)
        assert wait_for_serial(port, second) == second
    assert reloader.reloads == 1
    assert any(f"serial {second}" in r.getMessage() for r in caplog.records)


def test_bad_new_pair_is_refused_and_old_certificate_kept(listener, caplog):
    port, cert, key, first, reloader = listener
    other_cert, _other_key, _ = make_pair()
    with caplog.at_level(logging.WARNING, logger="tlskit.serve"):
        replace(cert, other_cert)  # its key is not key.pem
        poll_until(lambda: reloader.refusals, lambda refusals: refusals > 0, 15)
    assert reloader.refusals == 1
    assert served_serial(port) == first
    refusal = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusal and f"still serving serial {first}" in refusal[0]
    # Garbage is refused too; then a good pair still goes in.
    replace(cert, b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    poll_until(lambda: reloader.refusals, lambda refusals: refusals >= 2, 15)
    assert reloader.refusals == 2 and served_serial(port) == first
    cert_pem, key_pem, third = make_pair()
    replace(key, key_pem)
    replace(cert, cert_pem)
    assert wait_for_serial(port, third) == third


# --- the real `tlskit serve` -------------------------------------------------------------------------

import http.client

from peers_upstream import add_user, start_serve


def test_serve_picks_up_renewed_files_and_keeps_open_connections(tmp_path):
    """Renewal replaces --cert/--key under a running server: new handshakes get the new serial within
    15 s, a connection opened before keeps working, and no restart happens."""
    require_binary("openssl")
    state = tmp_path / "state"
    token = add_user(state, "alice")
    cert_pem, key_pem, first = make_pair()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    with start_serve(state, "--cert", str(cert), "--key", str(key)) as served:
        assert served_serial(served.port) == first
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        old = http.client.HTTPSConnection("127.0.0.1", served.port, context=context, timeout=10)
        headers = {"Authorization": f"Bearer {token}"}
        old.request("GET", "/api", headers=headers)
        assert old.getresponse().read() and old.sock is not None
        socket_before = old.sock
        cert_pem, key_pem, second = make_pair()
        replace(key, key_pem)
        replace(cert, cert_pem)
        assert wait_for_serial(served.port, second) == second
        assert served.wait_for_log(f"serial {second} (was {first})")
        old.request("GET", "/api", headers=headers)  # the connection opened before the reload
        response = old.getresponse()
        assert response.status == 200 and response.read()
        assert old.sock is socket_before
        assert _serial_of(old.sock.getpeercert(binary_form=True)) == first
        old.close()
        assert served.process.pid and served.process.poll() is None


def test_serve_refuses_a_bad_pair_and_keeps_serving_the_old_one(tmp_path):
    require_binary("openssl")
    state = tmp_path / "state"
    cert_pem, key_pem, first = make_pair()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    with start_serve(state, "--cert", str(cert), "--key", str(key)) as served:
        stranger, _, _ = make_pair()
        replace(cert, stranger)  # a certificate for another key
        assert served.wait_for_log("certificate reload refused")
        line = [x for x in served.stderr().splitlines() if "refused" in x][0]
        assert str(key) in line and f"still serving serial {first}" in line
        assert "Traceback" not in served.stderr()
        assert served_serial(served.port) == first
        # Putting a matching pair in place afterwards works.
        cert_pem, key_pem, third = make_pair()
        replace(key, key_pem)
        replace(cert, cert_pem)
        assert wait_for_serial(served.port, third) == third


def _serial_of(der: bytes) -> str:
    from cryptography import x509

    return format(x509.load_der_x509_certificate(der).serial_number, "X")
