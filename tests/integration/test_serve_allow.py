"""`tlskit serve` without `--allow` admits loopback clients only, checked against a running server.

A client on another machine reaches the server only when it listens beyond loopback (`--host 0.0.0.0`);
this machine's own non-loopback address is such a client. Where the machine has none, the same
decision is reached through a trusted proxy's X-Forwarded-For, which is what `--allow` judges then.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from conftest import require_binary
from peers_serve import start_serve


def non_loopback_ipv4() -> str | None:
    """An IPv4 address of this machine outside 127.0.0.0/8 (Linux: SIOCGIFADDR per interface), or None."""
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            try:
                answer = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
            except OSError:    # an interface without an IPv4 address
                continue
            address = socket.inet_ntoa(answer[20:24])
            if not ipaddress.ip_address(address).is_loopback:
                return address
    return None


def _status(served, address: str, token: str, *headers: str) -> tuple[int, str]:
    """GET a row as ``token``'s user, connecting from ``address`` to ``address`` (curl --interface)."""
    import subprocess

    command = [require_binary("curl"), "-sS", "--max-time", "30", "--cacert", str(served.ca),
               "--resolve", f"localhost:{served.port}:{address}", "--interface", address,
               "-H", f"X-API-Key: {token}", *(arg for header in headers for arg in ("-H", header)),
               "-w", "\n%{http_code}", f"https://localhost:{served.port}/api/products/1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    body, _, status = done.stdout.rpartition("\n")
    return int(status or 0), body


def test_default_allow_refuses_this_machines_non_loopback_address(tmp_path):
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no IPv4 address besides loopback (the X-Forwarded-For test covers it)")
    served = start_serve(tmp_path, "--host", "0.0.0.0")
    try:
        token = served.add_token_user("dave")
        assert _status(served, "127.0.0.1", token)[0] == 200
        status, body = _status(served, address, token)
        assert (status, body) == (403, '{"error":"forbidden","detail":"client address not allowed"}')
        assert f"{address} - - " in served.access_log(f"{address} - - ")
    finally:
        served.stop()


def test_default_allow_judges_the_forwarded_client_behind_a_trusted_proxy(tmp_path):
    """127.0.0.1 is the trusted proxy; the client it names is what the default loopback rule judges."""
    served = start_serve(tmp_path, "--trust-proxy", "127.0.0.1/32")
    try:
        token = served.add_token_user("dave")
        assert _status(served, "127.0.0.1", token, "X-Forwarded-For: 127.0.0.9")[0] == 200
        assert _status(served, "127.0.0.1", token, "X-Forwarded-For: ::1")[0] == 200
        for outside in ("192.0.2.7", "10.0.0.1", "128.0.0.1", "126.255.255.255", "::ffff:10.0.0.1", "2001:db8::1"):
            status, body = _status(served, "127.0.0.1", token, f"X-Forwarded-For: {outside}")
            assert (status, body) == (403, '{"error":"forbidden","detail":"client address not allowed"}'), outside
    finally:
        served.stop()
