"""Operating `tlskit serve`: a config file, TLSKIT_* variables, SIGHUP, the access log file and SIGUSR1,
an encrypted key, /metrics (parsed with prometheus_client), the banner, and systemd units."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_one_line_error, child_pids, free_port, refused_port, require_binary, run_tlskit, stop_process
from peers_serve import start_serve

pytestmark = pytest.mark.slow


def _wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ---- settings: file, environment, flags ------------------------------------------------------------

def test_flags_beat_environment_beat_the_file(tmp_path):
    (tmp_path / "tlskit.toml").write_text('port = 9001\nrealm = "from-file"\nmax_requests = 5\n'
                                          'allow = ["10.0.0.0/8", "127.0.0.1"]\nstate_dir = "state"\n')
    run = run_tlskit("serve", "--config", "tlskit.toml", "--print-config", "--port", "9003", cwd=tmp_path,
                     env={"TLSKIT_PORT": "9002", "TLSKIT_REALM": "from-env"})
    assert run.returncode == 0, run.stderr
    import tomllib

    settings = tomllib.loads(run.stdout)
    assert settings["port"] == 9003 and "# flag" in next(l for l in run.stdout.splitlines() if l.startswith("port"))
    assert settings["realm"] == "from-env"
    assert settings["max_requests"] == 5 and settings["allow"] == ["10.0.0.0/8", "127.0.0.1"]
    # Relative paths in the file are relative to the file.
    assert settings["state_dir"] == str(tmp_path / "state")
    assert "TLSKIT_REALM" in next(l for l in run.stdout.splitlines() if l.startswith("realm"))


def test_print_config_masks_passwords_in_urls(tmp_path):
    (tmp_path / "t.toml").write_text('db = "postgresql://app:hunter2@db.internal/tlskit"\n')
    run = run_tlskit("serve", "--config", "t.toml", "--print-config", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "hunter2" not in run.stdout and "postgresql://app:********@db.internal/tlskit" in run.stdout


@pytest.mark.parametrize("text, words", [
    ('alow = ["10.0.0.0/8"]\n', ["unknown key 'alow'", "bad.toml", "did you mean 'allow'"]),
    ('port = "8443"\n', ["'port'", "bad.toml", "integer"]),
    ('allow = [1, 2]\n', ["'allow'", "bad.toml", "list of strings"]),
    ('no_access_log = "yes"\n', ["'no_access_log'", "bad.toml", "true or false"]),
    ('port = \n', ["bad.toml", "not valid TOML"]),
])
def test_a_bad_file_is_one_line_naming_key_and_file(tmp_path, text, words):
    (tmp_path / "bad.toml").write_text(text)
    run = run_tlskit("serve", "--config", "bad.toml", "--state-dir", "state", cwd=tmp_path)
    assert_one_line_error(run, 2)
    for word in words:
        assert word in run.stderr, run.stderr
    assert not (tmp_path / "state").exists()


def test_a_bad_variable_is_one_line(tmp_path):
    run = run_tlskit("serve", "--state-dir", "state", cwd=tmp_path, env={"TLSKIT_MAX_REQUESTS": "lots"})
    assert_one_line_error(run, 2, "TLSKIT_MAX_REQUESTS")


@pytest.mark.parametrize("where, value, named", [
    ("flag", "10.0.0.0/33", "bad --trust-proxy '10.0.0.0/33'"),
    ("environment", "10.0.0.0/33", "bad TLSKIT_TRUST_PROXY '10.0.0.0/33'"),
    ("file", "10.0.0.0/33", "bad trust_proxy in t.toml '10.0.0.0/33'"),
    ("file", 0, "max_header_line in t.toml 0 is not positive"),
    ("environment", 0, "TLSKIT_MAX_HEADER_LINE 0 is not positive"),
])
def test_a_bad_value_is_named_where_it_was_given(tmp_path, where, value, named):
    setting = "trust_proxy" if isinstance(value, str) else "max_header_line"
    args, env = ["serve", "--state-dir", "state"], {}
    if where == "flag":
        args += ["--" + setting.replace("_", "-"), str(value)]
    elif where == "environment":
        env["TLSKIT_" + setting.upper()] = str(value)
    else:
        (tmp_path / "t.toml").write_text(f"{setting} = {value!r}\n".replace("'", '"'))
        args += ["--config", "t.toml"]
    run = run_tlskit(*args, cwd=tmp_path, env=env)
    assert_one_line_error(run, 2)
    assert run.stderr.startswith(f"error: {named}"), run.stderr
    # Only the place the value came from is named: a flag the user never typed would send them looking.
    if where != "flag":
        assert "--" not in run.stderr, run.stderr
    assert not (tmp_path / "state").exists()


def test_the_config_file_may_come_from_tlskit_config(tmp_path):
    (tmp_path / "c.toml").write_text("max_concurrent = 3\n")
    run = run_tlskit("serve", "--print-config", env={"TLSKIT_CONFIG": str(tmp_path / "c.toml")})
    assert "max_concurrent = 3" in run.stdout, run.stdout + run.stderr


# ---- SIGHUP -----------------------------------------------------------------------------------------

def test_sighup_reloads_allow_list_limits_and_log_format_and_names_what_needs_a_restart(tmp_path):
    config = tmp_path / "tlskit.toml"
    config.write_text("max_requests = 100\n")
    served = start_serve(tmp_path, "--config", str(config))
    try:
        token = served.add_token_user("alice")
        auth = ("-H", f"Authorization: Bearer {token}")
        first = served.curl("/api/me", *auth)
        assert first.status == 200 and first.json["limits"]["max_requests"] == 100
        config.write_text('max_requests = 2\nlog_json = true\nmax_header_line = 2048\n')
        served.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: "settings reloaded" in served.stderr(), what="the reload line")
        assert served.curl("/api/me", *auth).json["limits"]["max_requests"] == 2
        assert "HTTP limits" in served.stderr() and "restart" in served.stderr()
        assert served.curl("/api/me", *auth).status == 429      # the new limit counts from the reload on
        last_line = served.access_log('"status":429').strip().splitlines()[-1]
        assert json.loads(last_line)["status"] == 429           # log_json took effect
        # A broken file is refused whole: the server keeps what it has.
        config.write_text("max_requests = [\n")
        served.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: "settings reload refused" in served.stderr(), what="the refusal line")
        assert served.proc.poll() is None
        # The allow-list: loopback leaves it, and the next request from 127.0.0.1 is refused.
        config.write_text('allow = ["10.0.0.0/8"]\n')
        served.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: served.stderr().count("settings reloaded") >= 2, what="the second reload")
        assert served.curl("/api/me", *auth).status == 403
    finally:
        served.stop()


# ---- the access log file and SIGUSR1 ---------------------------------------------------------------

def test_access_log_file_is_reopened_on_sigusr1(tmp_path):
    log = tmp_path / "access.log"
    served = start_serve(tmp_path, "--access-log", str(log))
    try:
        served.curl("/api/first")
        _wait_for(lambda: log.exists() and "/api/first" in log.read_text(), what="the first line")
        assert served.stdout_path.read_text() == ""              # nothing on stdout
        log.rename(tmp_path / "access.log.1")                     # what logrotate does
        served.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        served.curl("/api/second")
        _wait_for(lambda: log.exists() and "/api/second" in log.read_text(), what="a line in the new file")
        assert "/api/second" not in (tmp_path / "access.log.1").read_text()
        assert "/api/first" not in log.read_text()
    finally:
        served.stop()


def test_access_log_and_no_access_log_exclude_each_other(tmp_path):
    run = run_tlskit("serve", "--access-log", "a.log", "--no-access-log", "--state-dir", "s", cwd=tmp_path)
    assert_one_line_error(run, 2, "exclude each other")


# ---- an encrypted key ------------------------------------------------------------------------------

@pytest.fixture
def encrypted_pair(tmp_path):
    (tmp_path / "pass").write_text("open sesame\n")
    run = run_tlskit("selfsign", "--cn", "localhost", "--san", "127.0.0.1", "--passphrase-file", "pass",
                     "--out", "cert.pem", "--key-out", "key.pem", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert b"ENCRYPTED" in (tmp_path / "key.pem").read_bytes()
    return tmp_path


def test_an_encrypted_key_is_served_with_its_passphrase_file(encrypted_pair):
    work = encrypted_pair
    served = start_serve(work, "--cert", str(work / "cert.pem"), "--key", str(work / "key.pem"),
                         "--passphrase-file", str(work / "pass"))
    try:
        served.ca = work / "cert.pem"
        assert served.curl("/api").status == 401
    finally:
        served.stop()


def test_an_encrypted_key_without_passphrase_fails_at_once_even_on_a_terminal(encrypted_pair):
    """OpenSSL would ask "Enter PEM pass phrase:" on the controlling terminal and wait: never that."""
    import fcntl
    import pty
    import termios

    work = encrypted_pair
    master, slave = pty.openpty()

    def take_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tlskit", "serve", "--cert", "cert.pem", "--key", "key.pem",
                             "--port", str(free_port()), "--state-dir", "state"], cwd=work, stdin=slave,
                            stdout=slave, stderr=slave, preexec_fn=take_terminal, env={**os.environ, "NO_COLOR": "1"})
    os.close(slave)
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.write(master, b"\n")
        stop_process(proc)
        raise AssertionError("serve waited for a passphrase")
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    text = output.decode(errors="replace")
    assert code == 2, text
    assert "encrypted" in text and "--passphrase-file" in text
    assert "pass phrase" not in text.lower()
    assert time.monotonic() - started < 20


def test_a_wrong_passphrase_is_one_line(encrypted_pair):
    (encrypted_pair / "wrong").write_text("not it\n")
    run = run_tlskit("serve", "--cert", "cert.pem", "--key", "key.pem", "--passphrase-file", "wrong",
                     "--state-dir", "state", "--port", str(free_port()), cwd=encrypted_pair)
    assert_one_line_error(run, 2, "wrong passphrase")


# ---- /metrics ---------------------------------------------------------------------------------------

def _families(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(families: dict, family: str, sample: str | None = None, **labels) -> float:
    total = 0.0
    for item in families[family].samples:
        if (sample is None or item.name == sample) and all(item.labels.get(k) == v for k, v in labels.items()):
            total += item.value
    return total


def test_metrics_count_requests_refusals_latency_and_certificate_expiry(tmp_path):
    served = start_serve(tmp_path, "--metrics-allow", "127.0.0.1/32", "--max-requests", "100")
    try:
        token = served.add_token_user("alice", "GET")
        auth = ("-H", f"Authorization: Bearer {token}")
        for _ in range(3):
            assert served.curl("/api/products", *auth).status == 200
        assert served.curl("/api").status == 401                                         # missing
        assert served.curl("/api", "-H", "Authorization: Bearer tlk_wrong").status == 401  # wrong
        assert served.curl("/api/products", *auth, method="POST", data="{}").status == 403  # method
        served.users("set", "alice", "--max-requests", "4")
        time.sleep(1.2)                                                # the store is re-read each second
        statuses = [served.curl("/api/products", *auth).status for _ in range(3)]
        assert 429 in statuses
        reply = served.curl("/metrics")
        assert reply.status == 200 and reply.header("content-type").startswith("text/plain; version=0.0.4")
        families = _families(reply.body.decode())
        assert _value(families, "tlskit_requests", status="200", user="alice") >= 3 + statuses.count(200)
        assert _value(families, "tlskit_requests", status="401", user="-") == 2
        assert _value(families, "tlskit_auth_failures", reason="missing") == 1
        assert _value(families, "tlskit_auth_failures", reason="wrong") == 1
        assert _value(families, "tlskit_denials", reason="method") == 1
        assert _value(families, "tlskit_denials", reason="limit") == statuses.count(429)
        count = _value(families, "tlskit_request_duration_seconds", "tlskit_request_duration_seconds_count")
        assert count == 3 + 3 + 3
        buckets = [s for s in families["tlskit_request_duration_seconds"].samples if s.name.endswith("_bucket")]
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == count
        left = _value(families, "tlskit_certificate_expiry_seconds", path=str(served.state_dir / "localhost.pem"))
        assert 360 * 86400 < left <= 366 * 86400
    finally:
        served.stop()


def test_metrics_need_an_allowed_address_or_the_metrics_privilege(tmp_path):
    served = start_serve(tmp_path)
    try:
        reader = served.add_token_user("prometheus", "METRICS")
        plain = served.add_token_user("bob", "GET")
        assert served.curl("/metrics").status == 401
        assert served.curl("/metrics", "-H", f"Authorization: Bearer {plain}").status == 403
        allowed = served.curl("/metrics", "-H", f"Authorization: Bearer {reader}")
        assert allowed.status == 200
        assert "tlskit_requests" in _families(allowed.body.decode())
        listed = served.users("list", "--json").json["users"]
        assert next(u for u in listed if u["name"] == "prometheus")["methods"] == ["METRICS"]
    finally:
        served.stop()


def test_metrics_of_every_worker_and_of_reloads(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("max_requests = 0\n")
    served = start_serve(tmp_path, "--workers", "2", "--metrics-allow", "127.0.0.1", "--config", str(config))
    try:
        for _ in range(10):
            served.curl("/api")
        served.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: served.stderr().count("settings reloaded") >= 2, what="both workers' reloads")
        time.sleep(1.5)                                   # each worker publishes its counts every second

        def scraped():
            families = _families(served.curl("/metrics").body.decode())
            return families if _value(families, "tlskit_requests", status="401") >= 10 else None

        families = _wait_for(scraped, what="every worker's counts")
        assert _value(families, "tlskit_requests", status="401") == 10
        workers = {s.labels.get("worker") for s in families["tlskit_requests"].samples}
        assert None not in workers
        assert _value(families, "tlskit_reloads", what="settings", result="done") == 2
    finally:
        served.stop()


def test_a_worker_killed_by_a_signal_is_replaced_with_the_reloaded_settings(tmp_path):
    """The out-of-memory killer takes a worker: the master starts another, which applies the settings
    its siblings reloaded on a SIGHUP, not those the master started with."""
    config = tmp_path / "c.toml"
    config.write_text("max_requests = 0\n")
    served = start_serve(tmp_path, "--workers", "2", "--config", str(config))
    try:
        before = _wait_for(lambda: (pids := child_pids(served.proc.pid)) and len(pids) == 2 and pids,
                           what="two workers")
        config.write_text('max_requests = 0\nallow = ["10.9.9.0/24"]\n')
        served.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: served.stderr().count("settings reloaded: allow changed") == 2, what="both reloads")
        killed = min(before)
        os.kill(killed, signal.SIGKILL)
        after = _wait_for(lambda: (pids := child_pids(served.proc.pid)) and len(pids) == 2 and killed not in pids
                          and pids, what="a new worker")
        assert len(after & before) == 1
        assert f"worker {killed} was killed by SIGKILL; starting another" in served.stderr()
        _wait_for(lambda: served.stderr().count("settings reloaded: allow changed") == 3, what="the new worker's")
        # 127.0.0.1 is no longer allowed: every worker, the new one too, turns the connection away.
        assert [served.curl("/api").status for _ in range(8)] == [403] * 8
    finally:
        assert served.stop() == 0, served.stderr()


_FAILING_WORKER = """
import os, signal, sys
from tlskit.errors import InputError, TlskitError
from tlskit.server.run import HELD_SIGNALS
from tlskit.server.reload import log_to_stderr
from tlskit.server.workers import supervise

first = sys.argv[1]

def worker():
    try:
        os.close(os.open(first, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        signal.pause()                  # the worker that serves on
    raise InputError("cannot open the thing", "no such file", "give another")

log_to_stderr()
try:
    supervise(2, worker, HELD_SIGNALS)
except TlskitError as exc:
    print(f"error: {exc.message}", file=sys.stderr)
    sys.exit(exc.exit_code)
"""


def test_a_worker_that_fails_stops_the_server_with_its_error(tmp_path):
    """A worker whose start fails says why; the master stops the other one and fails with the same code,
    instead of serving on with a worker missing."""
    from tlskit_processes import run_tlskit_process

    run = run_tlskit_process([str(tmp_path / "first")], code=_FAILING_WORKER, timeout=20)
    lines = run.stderr.splitlines()
    assert run.returncode == 2, run.stderr
    failed = int(next(line for line in lines if ": error: " in line).split()[3].rstrip(":"))
    assert lines == [f"tlskit serve: worker {failed}: error: cannot open the thing (no such file); give another",
                     f"tlskit serve: worker {failed} exited with code 2; stopping the other workers",
                     f"error: worker {failed} of tlskit serve exited with code 2 (its error is above); "
                     "fix what it names, then start tlskit serve again"]


def test_a_sighup_while_the_workers_start_reaches_each_of_them(tmp_path):
    """Once the port accepts connections the master may still be forking and the workers still building
    their apps; a SIGHUP sent then is acted on by every worker as soon as it can, not dropped."""
    from conftest import wait_for_port
    from peers_serve import poll_until
    from tlskit_processes import start_tlskit

    config = tmp_path / "c.toml"
    config.write_text("max_requests = 0\n")
    port, stderr = free_port(), tmp_path / "serve.err"
    with open(tmp_path / "serve.out", "wb") as out, open(stderr, "wb") as err:
        proc = start_tlskit(["serve", "--port", str(port), "--state-dir", str(tmp_path / "state"), "--workers", "2",
                             "--config", str(config)], stdout=out, stderr=err)
    try:
        wait_for_port(port, proc, log=stderr)          # bound and listening: the workers may not be there yet
        proc.send_signal(signal.SIGHUP)
        poll_until(stderr.read_text, lambda text: text.count("settings reloaded") >= 2, timeout=15)
        assert proc.poll() is None
    finally:
        stop_process(proc)


def test_metrics_count_upstream_errors(tmp_path):
    with refused_port() as dead:                         # every request to the upstream is a 502
        served = start_serve(tmp_path, "--upstream", f"http://127.0.0.1:{dead}", "--metrics-allow", "127.0.0.1")
        try:
            token = served.add_token_user("alice")
            assert served.curl("/anything", "-H", f"Authorization: Bearer {token}").status == 502
            families = _families(served.curl("/metrics").body.decode())
            assert _value(families, "tlskit_upstream_errors", status="502") == 1
        finally:
            served.stop()


def test_metrics_show_the_acme_lineage_and_certificate_reloads(tmp_path_factory, tmp_path):
    """Pebble issues 30-second certificates: the lineage's gauge counts down from at most 30 s, and the
    renewal's hot reload is counted and moves the gauge forward."""
    from peers_pebble import pebble_fixture
    from peers_upstream import curl, start_serve as start_acme_serve

    name = "app.example.test"
    pebble = pebble_fixture(tmp_path_factory, validity=30)
    state = tmp_path / "state"
    try:
        with start_acme_serve(state, "--acme", name, "--email", "ops@example.com", "--agree-tos",
                              "--directory", pebble.directory, "--directory-ca-file", str(pebble.ca_file),
                              "--redirect-port", str(pebble.http_port), "--metrics-allow", "127.0.0.1",
                              timeout=120) as served:
            lineage = str(state / "acme" / name / "cert.pem")

            def scrape() -> dict:
                done = curl("-k", "--resolve", f"{name}:{served.port}:127.0.0.1", f"https://{name}:{served.port}/metrics")
                assert done.returncode == 0, done.stderr
                return _families(done.stdout)

            first = _value(scrape(), "tlskit_certificate_expiry_seconds", path=lineage)
            assert 0 < first <= 30
            # Renewed 20 s after issuance, then hot-reloaded: a later notAfter, and one more reload.
            families = _wait_for(lambda: (lambda f: f if _value(f, "tlskit_certificate_expiry_seconds", path=lineage)
                                          > first else None)(scrape()), timeout=60, what="the renewed lineage")
            families = _wait_for(lambda: (lambda f: f if _value(f, "tlskit_reloads", what="certificate",
                                                                result="done") >= 1 else None)(scrape()),
                                 timeout=15, what="the certificate reload")
            served_now = _value(families, "tlskit_certificate_expiry_seconds",
                                path=str(state / "acme" / name / "fullchain.pem"))
            assert 0 < served_now <= 30
    finally:
        pebble.stop()


# ---- the banner --------------------------------------------------------------------------------------

def test_the_banner_hints_work_as_printed(tmp_path):
    served = start_serve(tmp_path)
    try:
        banner = served.stderr()
        add = next(line for line in banner.splitlines() if line.startswith("Add a user:"))
        command = add.partition(":")[2].split()
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)   # as printed
        assert done.returncode == 0, done.stderr
    finally:
        served.stop()
    again = start_serve(tmp_path, state_dir=served.state_dir)
    try:
        banner = again.stderr()
        assert "users add alice" not in banner                  # alice exists now
        users = next(line for line in banner.splitlines() if line.startswith("Users:"))
        listed = subprocess.run(users.partition(":")[2].split(), capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and "alice" in listed.stdout
    finally:
        again.stop()


def test_the_banner_with_an_upstream_calls_the_root(tmp_path):
    served = start_serve(tmp_path, "--upstream", f"http://127.0.0.1:{free_port()}")
    try:
        call = next(line for line in served.stderr().splitlines() if line.startswith("Call the API:"))
        assert call.rstrip().endswith(f"https://localhost:{served.port}/")
    finally:
        served.stop()


# ---- systemd ------------------------------------------------------------------------------------------

def _verify(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess:
    analyze = require_binary("systemd-analyze")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return subprocess.run([analyze, "verify", *(str(tmp_path / name) for name in files)], capture_output=True,
                          text=True, timeout=60)


def test_the_serve_unit_is_hardened_and_verifies(tmp_path):
    (tmp_path / "tlskit.toml").write_text('allow = ["10.0.0.0/8"]\n')
    run = run_tlskit("serve", "--config", "tlskit.toml", "--port", "443", "--redirect-port", "80",
                     "--access-log", "/var/log/tlskit/access.log", "--print-systemd-unit", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    unit = run.stdout
    for line in ("User=tlskit", "ProtectSystem=strict", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                 "Restart=on-failure", "StateDirectory=tlskit", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert f"\n{line}\n" in unit, line
    assert "ReadWritePaths=-/var/lib/tlskit -/var/log/tlskit" in unit
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert f"--config {tmp_path / 'tlskit.toml'}" in exec_start and "--state-dir /var/lib/tlskit" in exec_start
    assert "--print-systemd-unit" not in exec_start
    done = _verify(tmp_path, {"tlskit.service": unit})
    assert done.returncode == 0, done.stderr
    high = run_tlskit("serve", "--port", "8443", "--print-systemd-unit", cwd=tmp_path).stdout
    assert "AmbientCapabilities" not in high and "\nCapabilityBoundingSet=\n" in high


def test_the_renew_timer_verifies(tmp_path):
    run = run_tlskit("acme", "renew", "--out-dir", str(tmp_path / "certs"), "--deploy-hook", "systemctl reload nginx",
                     "--print-systemd-timer")
    assert run.returncode == 0, run.stderr
    files = {}
    for part in run.stdout.split("### ")[1:]:
        name, _, text = part.partition("\n")
        files[name] = text
    assert sorted(files) == ["tlskit-renew.service", "tlskit-renew.timer"]
    assert "OnCalendar=" in files["tlskit-renew.timer"] and "Persistent=true" in files["tlskit-renew.timer"]
    assert "--deploy-hook 'systemctl reload nginx'" in files["tlskit-renew.service"]
    (tmp_path / "certs").mkdir()
    done = _verify(tmp_path, files)
    assert done.returncode == 0, done.stderr
