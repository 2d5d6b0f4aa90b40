"""The scripts under examples/ make the inputs of the README's console examples: run each one and the
README's command that uses it, and check the outcome the README shows."""

from __future__ import annotations

import http.server
import json
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import free_port, require_binary, run_tlskit, stop_process, wait_for_port

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The shell scripts call $TLSKIT: this interpreter's tlskit, whatever is on PATH.
SCRIPT_ENV = {**os.environ, "TLSKIT": f"{shlex.quote(sys.executable)} -m tlskit"}


def _script(name: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(EXAMPLES / name), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env or SCRIPT_ENV, stdin=subprocess.DEVNULL)


def _background(name: str, *args: str, cwd: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / name), "--port", str(port), *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, 30)
    except AssertionError:
        stop_process(proc)
        raise
    return proc


def test_chain_pki_gives_the_readme_chain(tmp_path):
    made = _script("chain-pki.sh", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    run = run_tlskit("chain", "bundle.crt", "--ca-file", "root/ca.pem", "--host", "www.example.com", "--key",
                     "www.key", "--out", "fullchain.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Chain OK: Wrote fullchain.pem: 3 certificates" in run.stdout + run.stderr
    assert "note: dropped 1 duplicate certificate" in run.stdout + run.stderr
    gap = run_tlskit("chain", "www.crt", "int2/ca.pem", "--ca-file", "root/ca.pem", "--out", "x.pem", cwd=tmp_path)
    assert gap.returncode == 1 and "no certificate for /CN=Example Intermediate 1" in gap.stderr
    assert run_tlskit("chain", "www.crt", "notes.txt", cwd=tmp_path).returncode == 2


def test_aia_server_serves_the_missing_intermediates(tmp_path):
    port = free_port()
    server = _background("aia_server.py", cwd=tmp_path, port=port)
    try:
        without = run_tlskit("chain", "leaf.pem", "--ca-file", "root.pem", cwd=tmp_path)
        assert without.returncode == 1 and f"--fetch to download it from http://127.0.0.1:{port}/int2.der" in without.stderr
        fetched = run_tlskit("chain", "leaf.pem", "--ca-file", "root.pem", "--fetch", "--out", "fullchain.pem",
                             cwd=tmp_path)
        assert fetched.returncode == 0, fetched.stderr
        assert "fetched /CN=Demo Intermediate 1" in fetched.stdout + fetched.stderr
    finally:
        stop_process(server)
    down = run_tlskit("chain", "leaf.pem", "--ca-file", "root.pem", "--fetch", cwd=tmp_path)
    assert down.returncode == 3


def test_starttls_responder_is_probed_through_starttls(tmp_path):
    for args in (("ca", "init", "--dir", "root", "--cn", "Demo Root"),
                 ("ca", "init", "--dir", "inter", "--cn", "Demo Intermediate", "--parent", "root"),
                 ("csr", "--cn", "localhost", "--san", "127.0.0.1", "--out", "site.csr", "--key-out", "site.key"),
                 ("ca", "sign", "site.csr", "--ca-dir", "inter", "--out", "site.pem")):
        assert run_tlskit(*args, cwd=tmp_path).returncode == 0, args
    port = free_port()
    server = _background("starttls_smtp.py", "--cert", "site.pem", "--key", "site.key", "--chain", "inter/ca.pem",
                         cwd=tmp_path, port=port)
    try:
        probe = run_tlskit("probe", f"localhost:{port}", "--starttls", "smtp", "--ca-file", "root/ca.pem", cwd=tmp_path)
        assert probe.returncode == 0, probe.stdout + probe.stderr
        assert "after STARTTLS (smtp)" in probe.stdout and "Certificates sent: 2" in probe.stdout
    finally:
        stop_process(server)


def test_upstream_behind_serve(tmp_path):
    from peers_upstream import add_user, curl, start_serve

    port = free_port()
    upstream = _background("upstream.py", cwd=tmp_path, port=port)
    try:
        token = add_user(tmp_path / "st", "alice")
        with start_serve(tmp_path / "st", "--upstream", f"http://127.0.0.1:{port}") as served:
            done = curl("--cacert", str(tmp_path / "st" / "ca" / "ca.pem"), "-H", f"Authorization: Bearer {token}",
                        f"https://localhost:{served.port}/hello.json")
            assert done.stdout == '{"hello":"from upstream"}', done.stderr
    finally:
        stop_process(upstream)


def test_dns_hook_sets_and_clears_the_record(tmp_path):
    require_binary("curl")
    received: list[tuple[str, dict]] = []

    class ChallTestSrv(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    mock = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ChallTestSrv)
    threading.Thread(target=mock.serve_forever, daemon=True).start()
    env = {**SCRIPT_ENV, "CHALLTESTSRV": f"http://127.0.0.1:{mock.server_address[1]}",
           "TLSKIT_DNS_RECORD": "_acme-challenge.example.org.", "TLSKIT_DNS_VALUE": "v4lue"}
    try:
        assert _script("dns-hook.sh", "add", cwd=tmp_path, env=env).returncode == 0
        assert _script("dns-hook.sh", "remove", cwd=tmp_path, env=env).returncode == 0
        assert _script("dns-hook.sh", "bogus", cwd=tmp_path, env=env).returncode == 2
    finally:
        mock.shutdown()
    assert received == [("/set-txt", {"host": "_acme-challenge.example.org.", "value": "v4lue"}),
                        ("/clear-txt", {"host": "_acme-challenge.example.org."})]


def test_pebble_script_issues_through_http01_and_the_dns_hook(tmp_path):
    """examples/pebble.sh on its fixed ports, then the README's `acme issue` for a name and a wildcard."""
    import signal
    import time

    require_binary("pebble")
    require_binary("pebble-challtestsrv")
    for port in (14000, 15000, 5001, 5002, 8053, 8055):
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=0.2):
                pytest.skip(f"port {port}, which examples/pebble.sh uses, is taken")
        except OSError:
            pass
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        # A session of its own: the script and both servers are stopped together, whatever happens.
        script = subprocess.Popen(["sh", str(EXAMPLES / "pebble.sh")], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=SCRIPT_ENV, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while "Pebble: https://127.0.0.1:14000/dir" not in log.read_text() and time.monotonic() < deadline:
            assert script.poll() is None, log.read_text()
            time.sleep(0.1)
        common = ("--agree-tos", "--out-dir", "certs", "--directory", "https://127.0.0.1:14000/dir",
                  "--directory-ca-file", "pebble-ca.pem")
        http01 = run_tlskit("acme", "issue", "example.com", *common, "--http-port", "5002", "--bind", "127.0.0.1",
                            cwd=tmp_path)
        assert http01.returncode == 0, http01.stderr
        hook = f"sh {shlex.quote(str(EXAMPLES / 'dns-hook.sh'))}"
        dns01 = run_tlskit("acme", "issue", "*.example.org", *common, "--dns-hook", hook, cwd=tmp_path)
        assert dns01.returncode == 0, dns01.stderr
        assert (tmp_path / "pebble-root.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
    finally:
        os.killpg(script.pid, signal.SIGTERM)
        try:
            script.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()


@pytest.mark.parametrize("name", ["aia_server.py", "starttls_smtp.py", "upstream.py"])
def test_each_python_example_explains_itself(name):
    done = subprocess.run([sys.executable, str(EXAMPLES / name), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "usage:" in done.stdout


# ---- the README against the code --------------------------------------------------------------------

README = EXAMPLES.parent / "README.md"


def test_every_example_the_readme_names_exists_and_each_is_listed():
    import re

    text = README.read_text()
    named = set(re.findall(r"examples/([\w.-]+\.(?:sh|py))", text))
    shipped = {p.name for p in EXAMPLES.iterdir() if p.suffix in (".sh", ".py")}
    assert named <= shipped, named - shipped
    index = (EXAMPLES / "README.md").read_text()
    assert all(f"`{name}`" in index for name in shipped), shipped


def _documented_signature(text: str, call: str) -> list[tuple[str, str | None]]:
    """``name(a, b=1, *, c=None)`` as written in the README (code spans may wrap lines): [(a, None), ...]."""
    start = text.index(f"`{call}(") + len(call) + 2
    depth, end = 1, start
    while depth:
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        end += 1
    params = []
    for part in " ".join(text[start:end - 1].split()).split(", "):
        if part in ("*", "..."):
            continue
        name, _, default = part.partition("=")
        params.append((name, default or None))
    return params


@pytest.mark.parametrize("call, target", [
    ("write_csr", "tlskit.csr:write_csr"),
    ("LocalCA.create", "tlskit.issue:LocalCA.create"),
    ("sign_csr_file", "tlskit.issue:sign_csr_file"),
    ("write_self_signed", "tlskit.issue:write_self_signed"),
    ("issue_certificate", "tlskit.acme:issue_certificate"),
    ("renew_due", "tlskit.acme:renew_due"),
    ("revoke_certificate", "tlskit.acme:revoke_certificate"),
])
def test_the_readmes_python_signatures_are_the_codes(call, target):
    import importlib
    import inspect

    module, _, attribute = target.partition(":")
    function = importlib.import_module(module)
    for part in attribute.split("."):
        function = getattr(function, part)
    actual = [p for p in inspect.signature(function).parameters.values() if p.name not in ("self", "cls")]
    documented = _documented_signature(README.read_text(), call)
    assert [name for name, _ in documented] == [p.name for p in actual]
    for (name, default), parameter in zip(documented, actual):
        if default in ("None", "True", "False"):
            assert parameter.default is {"None": None, "True": True, "False": False}[default], name
        elif default is not None and default[0].isdigit():
            assert parameter.default == float(default), (name, default)
        elif default is not None and default[0] in "'\"":
            assert parameter.default == default[1:-1], (name, default)
