"""Client certificates from `tlskit ca client` against a running `tlskit serve --client-ca --crl`, with curl
(PEM and PKCS#12) and openssl s_client: revoked with `tlskit ca revoke` + `tlskit ca crl`, refused within
seconds."""

from __future__ import annotations

import subprocess
import time

from conftest import openssl, require_binary, run_tlskit
from peers_serve import start_serve


def test_a_running_server_refuses_a_revoked_certificate_seconds_after_ca_crl(tmp_path):
    ca = tmp_path
    curl = require_binary("curl")
    (ca / "pw").write_text("for the p12\n")
    assert run_tlskit("ca", "init", "--dir", "ca", "--cn", "Serving CA", cwd=ca).returncode == 0
    for name, p12 in (("alice", ()), ("bob", ()), ("carol", ("--pkcs12", "carol.p12", "--passphrase-file", "pw"))):
        assert run_tlskit("ca", "client", name, "--ca-dir", "ca", *p12, cwd=ca).returncode == 0
    assert run_tlskit("ca", "crl", "--ca-dir", "ca", "--out", "ca.crl", cwd=ca).returncode == 0
    server = start_serve(ca, "--client-ca", str(ca / "ca" / "ca.pem"), "--crl", str(ca / "ca.crl"),
                         "--reload-interval", "0.2")
    try:
        for name in ("alice", "bob", "carol"):
            server.add_token_user(name)

        def status(*args: str) -> int:
            done = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20",
                                   "--resolve", f"localhost:{server.port}:127.0.0.1", "--cacert", str(server.ca),
                                   *args, f"https://localhost:{server.port}/api/me"],
                                  cwd=ca, capture_output=True, text=True, timeout=60)
            return int(done.stdout or 0)

        assert status("--cert", "alice.pem", "--key", "alice.key") == 200
        assert status("--cert-type", "P12", "--cert", "carol.p12:for the p12") == 200
        request = b"GET /api/me HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        done = openssl("s_client", "-connect", f"127.0.0.1:{server.port}", "-servername", "localhost", "-quiet",
                       "-CAfile", str(server.ca), "-cert", "bob.pem", "-key", "bob.key", input=request, check=False,
                       cwd=ca)
        assert b"200 OK" in done.stdout and b'"user":"bob"' in done.stdout, done.stdout[-300:]
        assert run_tlskit("ca", "revoke", "alice.pem", "--ca-dir", "ca", "--reason", "keyCompromise",
                          cwd=ca).returncode == 0
        # Recorded, not yet published: the server still has the old CRL.
        assert status("--cert", "alice.pem", "--key", "alice.key") == 200
        assert run_tlskit("ca", "crl", "--ca-dir", "ca", "--out", "ca.crl", cwd=ca).returncode == 0
        started = time.monotonic()
        while status("--cert", "alice.pem", "--key", "alice.key") != 0:   # 0: the handshake is refused
            assert time.monotonic() - started < 8, "the revoked certificate is still accepted"
            time.sleep(0.2)
        assert status("--cert", "bob.pem", "--key", "bob.key") == 200
        assert status("--cert-type", "P12", "--cert", "carol.p12:for the p12") == 200
    finally:
        server.stop()
