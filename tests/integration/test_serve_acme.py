"""`tlskit serve --acme` against a real Pebble: the server orders its certificate at start, serves it,
answers http-01 on its redirect port for renewals, and hot-reloads what it renewed.

Pebble's validator resolves every name to 127.0.0.1 (pebble-challtestsrv) and connects to
``pebble.http_port``, so that is the server's ``--redirect-port``.
"""

from __future__ import annotations

import time

import pytest

from conftest import assert_one_line_error, free_port, openssl, require_binary, run_tlskit
from peers_pebble import pebble_fixture
from peers_upstream import add_user, curl, start_serve

pytestmark = pytest.mark.slow

NAME = "app.example.test"


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    instance = pebble_fixture(tmp_path_factory)
    yield instance
    instance.stop()


def acme_options(pebble, *extra: str) -> list[str]:
    return ["--acme", NAME, "--email", "ops@example.com", "--agree-tos", "--directory", pebble.directory,
            "--directory-ca-file", str(pebble.ca_file), "--redirect-port", str(pebble.http_port), *extra]


def served_certificate(port: int) -> tuple[str, str]:
    """(serial, issuer) of what the server presents for NAME, as openssl s_client sees it."""
    hello = openssl("s_client", "-connect", f"127.0.0.1:{port}", "-servername", NAME, input=b"", check=False)
    out = openssl("x509", "-noout", "-serial", "-issuer", input=hello.stdout).stdout.decode()
    fields = dict(line.split("=", 1) for line in out.splitlines())
    return fields["serial"].upper(), fields["issuer"]


def test_serve_acme_obtains_serves_and_reuses(pebble, tmp_path):
    require_binary("curl")
    state = tmp_path / "state"
    token = add_user(state, "alice")
    root = pebble.root_file()
    with start_serve(state, *acme_options(pebble), timeout=120) as served:
        assert "certificate issued: serial" in served.stderr()
        serial, issuer = served_certificate(served.port)
        assert "Pebble Intermediate CA" in issuer
        # A client that trusts only Pebble's root verifies the whole chain and the name.
        done = curl("--cacert", str(root), "--resolve", f"{NAME}:{served.port}:127.0.0.1", "-o", "/dev/null",
                    "-w", "%{http_code}", "-H", f"Authorization: Bearer {token}", f"https://{NAME}:{served.port}/api")
        assert done.stdout == "200", done.stderr
        # The redirect port (where http-01 was answered) now redirects to HTTPS, for the certificate's
        # name only (no open redirect for a Host the server does not serve).
        redirect = curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", f"Host: {NAME}",
                        f"http://127.0.0.1:{pebble.http_port}/x?y=1")
        assert redirect.stdout == f"308 https://{NAME}:{served.port}/x?y=1"
        elsewhere = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{pebble.http_port}/x")
        assert elsewhere.stdout == "400"
        lineage = state / "acme" / NAME
        assert {p.name for p in lineage.iterdir()} >= {"privkey.pem", "cert.pem", "chain.pem", "fullchain.pem"}
        assert (lineage / "privkey.pem").stat().st_mode & 0o777 == 0o600
    # A restart reuses the kept certificate: no new order.
    with start_serve(state, *acme_options(pebble), timeout=120) as again:
        assert served_certificate(again.port)[0] == serial
        assert "ordering" not in again.stderr()


def test_serve_acme_renews_a_short_lived_certificate_on_its_own_schedule(tmp_path_factory, tmp_path):
    """Pebble issues 30-second certificates here. No check interval is given: the server plans the
    renewal from the lifetime (a third left, 20 s after issuance), says when, renews on its redirect
    listener's http-01 answers, and its hot reload hands the new certificate to new connections."""
    short = pebble_fixture(tmp_path_factory, validity=30)
    try:
        with start_serve(tmp_path / "state", *acme_options(short), timeout=120) as served:
            first, _ = served_certificate(served.port)
            assert served.wait_for_log("next ACME renewal check in"), served.stderr()
            planned = served.stderr().split("next ACME renewal check in ", 1)[1].split(" ", 1)[0]
            assert 10 <= int(planned) <= 20, served.stderr()
            deadline = time.monotonic() + 60
            serial = first
            while serial == first and time.monotonic() < deadline:
                time.sleep(0.5)
                serial, issuer = served_certificate(served.port)
            assert serial != first, served.stderr()
            assert "Pebble Intermediate CA" in issuer
            assert served.wait_for_log("ACME certificate for app.example.test renewed (due since")
            assert served.wait_for_log("certificate reloaded")
            assert "Traceback" not in served.stderr()
    finally:
        short.stop()


def test_serve_acme_errors_are_one_line(pebble, tmp_path):
    run = run_tlskit("serve", "--state-dir", str(tmp_path), "--port", str(free_port()), "--acme", NAME,
                     "--cert", "x.pem", "--key", "x.key")
    assert_one_line_error(run, 2, "--acme")
    # The CA cannot validate: nothing answers where Pebble looks (port taken by us, not bound by tlskit).
    run = run_tlskit("serve", "--state-dir", str(tmp_path), "--port", str(free_port()), "--acme", NAME,
                     "--email", "ops@example.com", "--agree-tos", "--directory", f"https://127.0.0.1:{free_port()}/dir",
                     "--redirect-port", str(free_port()))
    assert run.returncode == 3 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("error: ")


def test_serve_acme_port_taken_is_the_same_bind_error_as_serves_own(pebble, tmp_path):
    """Something else holds the http-01 port: one line, exit 3 as for a taken --port, nothing listens."""
    import socket

    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", pebble.http_port))
        blocker.listen(1)
        run = run_tlskit("serve", "--state-dir", str(tmp_path), "--port", str(free_port()),
                         *acme_options(pebble), "--host", "127.0.0.1")
    assert run.returncode == 3, run.stderr
    error = run.stderr.strip().splitlines()[-1]     # after the "ordering a certificate" progress line
    assert error.startswith(f"error: cannot listen on 127.0.0.1:{pebble.http_port} for http-01"), error
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "acme" / NAME / "fullchain.pem").exists()


def test_background_renewal_failure_keeps_serving(tmp_path_factory, tmp_path):
    """The CA goes away before a 30-second certificate is due: the renewal logs one line and the
    current certificate stays in service; the retry comes sooner as expiry nears."""
    own = pebble_fixture(tmp_path_factory, validity=30)
    try:
        with start_serve(tmp_path / "state", *acme_options(own), timeout=120) as served:
            assert served_certificate(served.port)[1].startswith("CN = Pebble Intermediate CA")
            own.stop()
            assert served.wait_for_log("still serving the current certificate", timeout=60), served.stderr()
            serial, issuer = served_certificate(served.port)
            assert "Pebble Intermediate CA" in issuer and serial
            assert served.process.poll() is None and "Traceback" not in served.stderr()
    finally:
        own.stop()


def test_serve_acme_registers_with_external_account_binding(tmp_path_factory, tmp_path):
    """A CA that asks for EAB (ZeroSSL, Google Trust Services...): without it, the one error line names the
    flags serve has; with them the account registers and the certificate is served. The HMAC key is a
    secret: --print-config masks it and the systemd unit leaves it off the command line."""
    import base64

    hmac = base64.urlsafe_b64encode(b"thirty-two bytes of serve secret").decode().rstrip("=")
    strict = pebble_fixture(tmp_path_factory, eab_keys={"kid-7": hmac})
    try:
        refused = run_tlskit("serve", "--state-dir", str(tmp_path / "a"), "--port", str(free_port()),
                             *acme_options(strict), "--host", "127.0.0.1")
        assert refused.returncode == 2, refused.stderr
        error = refused.stderr.strip().splitlines()[-1]     # after the "ordering a certificate" progress line
        assert error.startswith("error: this CA requires external account binding"), error
        assert "--eab-kid and --eab-hmac-key" in error and "Traceback" not in refused.stderr
        assert not (tmp_path / "a" / "acme" / NAME / "fullchain.pem").exists()

        printed = run_tlskit("serve", "--print-config", *acme_options(strict, "--eab-kid", "kid-7"),
                             env={"TLSKIT_EAB_HMAC_KEY": hmac})
        assert printed.returncode == 0, printed.stderr
        assert 'eab_hmac_key = "********"  # TLSKIT_EAB_HMAC_KEY' in printed.stdout and hmac not in printed.stdout
        unit = run_tlskit("serve", "--print-systemd-unit", *acme_options(strict, "--eab-kid", "kid-7"),
                          env={"TLSKIT_EAB_HMAC_KEY": hmac})
        assert unit.returncode == 0, unit.stderr
        assert hmac not in unit.stdout and "--eab-kid kid-7" in unit.stdout
        assert "# Left out of ExecStart: TLSKIT_EAB_HMAC_KEY (--eab-hmac-key)" in unit.stdout

        with start_serve(tmp_path / "b", *acme_options(strict, "--eab-kid", "kid-7", "--eab-hmac-key", hmac),
                         timeout=120) as served:
            assert "certificate issued: serial" in served.stderr()
            assert "Pebble Intermediate CA" in served_certificate(served.port)[1]
            assert hmac not in served.stderr()
    finally:
        strict.stop()
