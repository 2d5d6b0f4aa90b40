"""Crash safety of file writes: `tlskit csr --force` killed with SIGKILL leaves old or new files, never torn ones.

Two ways of killing are used. A deterministic one stops the process at every file-system step of the
write (each open, chmod, rename and unlink in the output directory, seen through a Python audit hook
that SIGKILLs its own process), so every gap between steps is covered on every run. A random one
kills a normal `tlskit csr --force` at random moments, as a power cut or an OOM kill would.

After each kill: each file holds either the bytes it had before or a complete new object that the
openssl binary parses; a new CSR always comes with its new key (the key is renamed first, so a CSR
never points at a key that was lost); the key stays 0600; leftover temp files are 0600 when they may
hold a key, and the next run removes them.
"""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, openssl, require_binary, run_tlskit
from tlskit_processes import run_tlskit_process, start_tlskit

KEY, CSR = "r.key", "r.csr"
CSR_ARGS = ["csr", "--key-type", "ec:p256", "--cn", "new.example.com", "--san", "www.new.example.com",
            "--out", CSR, "--key-out", KEY, "--force"]

# Runs tlskit's CLI in this interpreter and SIGKILLs itself at the CRASH_AT-th file-system event
# under CRASH_DIR, before that step happens. CRASH_AT=0 never kills and lists the events on stderr.
# Removing stale temp files is not a step: how many there are depends on the previous kill.
KILLER = r"""
import os, signal, sys
target = os.path.realpath(os.environ["CRASH_DIR"])
crash_at = int(os.environ["CRASH_AT"])
seen = 0
def hook(event, args):
    global seen
    if event not in ("open", "os.rename", "os.chmod") or not args:
        return
    path = args[0]
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    if not isinstance(path, str) or not os.path.realpath(path).startswith(target):
        return
    seen += 1
    if crash_at == 0:
        sys.stderr.write(f"step {seen}: {event} {os.path.basename(path)}\n")
    elif seen == crash_at:
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
from tlskit.cli.app import main
main(sys.argv[1:])
"""


def _start_csr(directory: Path, stderr):
    """`tlskit csr --force ...` in the background, started as the random kills will start it."""
    return start_tlskit(CSR_ARGS, cwd=directory, env=_env(), stdout=subprocess.DEVNULL, stderr=stderr)


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT), **extra}


def _make_old_files(directory: Path) -> dict[str, bytes]:
    run = run_tlskit("csr", "--key-type", "ec:p256", "--cn", "old.example.com", "--out", CSR, "--key-out", KEY,
                     cwd=directory)
    assert run.returncode == 0, run.stderr
    return {name: (directory / name).read_bytes() for name in (KEY, CSR)}


def _state(directory: Path, old: dict[str, bytes]) -> tuple[str, str]:
    """('old'|'new') for the key and the CSR, after checking each is whole and readable by openssl."""
    states = []
    for name in (KEY, CSR):
        path = directory / name
        assert path.exists(), f"{name} disappeared"
        data = path.read_bytes()
        if data == old[name]:
            states.append("old")
            continue
        # Not the old bytes: it must be a complete new object, not a torn or empty file.
        if name == KEY:
            openssl("pkey", "-in", str(path), "-noout")
        else:
            checked = openssl("req", "-in", str(path), "-verify", "-noout", "-subject")
            # openssl exits 0 even on a bad self-signature: its verdict is in the message.
            assert b"verify OK" in checked.stdout + checked.stderr, checked
            assert "new.example.com" in checked.stdout.decode(), checked
        states.append("new")
    assert stat.S_IMODE((directory / KEY).stat().st_mode) == 0o600
    key_state, csr_state = states
    if csr_state == "new":
        # A new CSR is only ever on disk next to the key it was made for.
        assert key_state == "new"
        from_key = openssl("pkey", "-in", str(directory / KEY), "-pubout").stdout
        from_csr = openssl("req", "-in", str(directory / CSR), "-noout", "-pubkey").stdout
        assert from_key == from_csr
    return key_state, csr_state


def _leftovers(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name not in (KEY, CSR))


def _check_leftovers_are_private(directory: Path) -> None:
    for path in _leftovers(directory):
        assert path.name.startswith((f".{KEY}.", f".{CSR}.")) and path.name.endswith(".tmp"), path.name
        if path.name.startswith(f".{KEY}."):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def _run_killer(directory: Path, crash_at: int, args: list[str] | None = None,
                watch: Path | None = None) -> subprocess.CompletedProcess:
    """Run tlskit ``args`` (default: the csr command) in ``directory``, SIGKILLed at step ``crash_at``
    of the file-system events under ``watch`` (default: ``directory``)."""
    return run_tlskit_process(args or CSR_ARGS, code=KILLER, cwd=directory, timeout=180,
                              env=_env(CRASH_DIR=str(watch or directory), CRASH_AT=str(crash_at)))


def test_kill_at_every_write_step_leaves_old_or_new_files(tmp_path):
    require_binary("openssl")
    probe = _run_killer(_fresh(tmp_path, "steps"), 0)
    assert probe.returncode == 0, probe.stderr
    steps = [line for line in probe.stderr.splitlines() if line.startswith("step ")]
    # At least: stage key, stage CSR, rename key, rename CSR. Fewer means the hook sees nothing.
    assert sum("os.rename" in s for s in steps) == 2, steps
    assert len(steps) >= 4, steps

    observed = set()
    for crash_at in range(1, len(steps) + 1):
        directory = _fresh(tmp_path, f"at{crash_at}")
        old = _make_old_files(directory)
        run = _run_killer(directory, crash_at)
        assert run.returncode == -signal.SIGKILL, (crash_at, steps[crash_at - 1], run.returncode, run.stderr)
        observed.add(_state(directory, old))
        _check_leftovers_are_private(directory)
        # The next ordinary run succeeds and cleans up what the killed one left.
        again = run_tlskit(*CSR_ARGS, cwd=directory)
        assert again.returncode == 0, again.stderr
        assert _state(directory, old) == ("new", "new")
        assert _leftovers(directory) == [], (steps[crash_at - 1], _leftovers(directory))
    # Every kill point was reached: before any rename, between the two, and after both.
    assert observed == {("old", "old"), ("new", "old"), ("new", "new")}, (observed, steps)


def test_kill_at_random_moments_never_tears_a_file(tmp_path):
    require_binary("openssl")
    directory = _fresh(tmp_path, "random")
    old = _make_old_files(directory)
    durations = []
    for _ in range(2):       # the first may include starting the launcher itself
        start = time.perf_counter()
        assert _start_csr(directory, subprocess.DEVNULL).wait(timeout=60) == 0
        durations.append(time.perf_counter() - start)
    duration = min(durations)
    old = {name: (directory / name).read_bytes() for name in (KEY, CSR)}

    rng = random.Random(int(os.environ.get("CRASH_SEED", "0")) or None)
    outcomes = []

    def killed(state_wanted) -> bool:
        return any(code == -signal.SIGKILL and state_wanted(state) for _, code, state, _ in outcomes)

    def landed_on_both_sides() -> bool:
        return killed(lambda state: state == ("old", "old")) and killed(lambda state: state != ("old", "old"))

    # At least 20 kills at random. A run of a few tens of milliseconds on a loaded machine can make 20
    # miss one side of the first rename by chance; then up to 40 more aim at the missing side: an early
    # kill for the old files, or a kill as soon as the key's inode changes (the first rename) for a new key.
    while len(outcomes) < 20 or (len(outcomes) < 60 and not landed_on_both_sides()):
        watch_rename = len(outcomes) >= 20 and killed(lambda state: state == ("old", "old"))
        if len(outcomes) >= 20 and not watch_rename:
            delay = rng.uniform(0.0, duration * 0.3)
        # Most kills aim at the end of the run, where the files are written; some anywhere.
        elif rng.random() < 0.3:
            delay = rng.uniform(0.0, duration * 1.2)
        else:
            delay = rng.uniform(duration * 0.6, duration * 1.2)
        with open(directory.parent / "random.err", "w+b") as err:
            key_inode = (directory / KEY).stat().st_ino
            start = time.perf_counter()
            child = _start_csr(directory, err)
            if watch_rename:
                while child.poll() is None and (directory / KEY).stat().st_ino == key_inode:
                    pass
            else:
                time.sleep(delay)
            child.send_signal(signal.SIGKILL)
            delay = time.perf_counter() - start
            child.wait(timeout=60)
            err.seek(0)
            assert child.returncode in (0, -signal.SIGKILL), err.read()
        state = _state(directory, old)
        _check_leftovers_are_private(directory)
        outcomes.append((round(delay, 3), child.returncode, state, len(_leftovers(directory))))
        old = {name: (directory / name).read_bytes() for name in (KEY, CSR)}
    again = run_tlskit(*CSR_ARGS, cwd=directory)
    assert again.returncode == 0, again.stderr
    assert _leftovers(directory) == []
    # The kills really landed around the writes: some before the first rename, some after one. (A kill
    # inside the millisecond between staging and renaming is rare at random; the step test above puts
    # one at every step.)
    assert landed_on_both_sides(), "(delay, exit code, files, leftovers) of each run:\n" + "\n".join(map(str, outcomes))


def test_a_live_writers_temp_file_is_left_alone(tmp_path):
    """Cleaning up is only for dead writers: a temp file whose process is alive survives the next run."""
    directory = _fresh(tmp_path, "live")
    _make_old_files(directory)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdin=subprocess.DEVNULL)
    try:
        live = directory / f".{KEY}.{sleeper.pid}.abcd1234.tmp"
        live.write_bytes(b"partial")
        dead_pid = _dead_pid()
        dead = directory / f".{KEY}.{dead_pid}.efgh5678.tmp"
        dead.write_bytes(b"partial")
        run = run_tlskit(*CSR_ARGS, cwd=directory)
        assert run.returncode == 0, run.stderr
        assert live.exists()
        assert not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.DEVNULL)
    child.wait()
    return child.pid


def _fresh(base: Path, name: str) -> Path:
    directory = (base / name).resolve()
    directory.mkdir()
    return directory


# --- the server: SIGKILL while clients write ------------------------------------------------------------
#
# Writers insert rows and then update them, one request at a time each, and note every answer they
# got. The server is SIGKILLed at a random moment. Then SQLite itself is asked (integrity check, and
# each row): every insert or update the client saw acknowledged is there; an unacknowledged one may or
# may not be, but nothing in between. Several rounds restart the server on the same dataset.

WRITERS = 8


def test_server_killed_mid_request_loses_no_acknowledged_row(tmp_path):
    import sqlite3
    import threading

    from peers_rawhttp import request, tls_context
    from peers_serve import start_serve

    rng = random.Random(int(os.environ.get("CRASH_SEED", "0")) or None)
    state = tmp_path / "state"
    acknowledged: dict[str, dict] = {}      # name -> {"id", "stock": last acked, "maybe": in-flight stock}
    lost_connections = 0
    unexpected: list = []                   # any answer but the expected one, or a cut-off (status 0)
    for round_number in range(4):
        served = start_serve(tmp_path, state_dir=state)
        try:
            if round_number == 0:
                token = served.add_token_user("writer", methods="all")
            context = tls_context(served.ca)
            auth = [(b"Authorization", b"Bearer " + token.encode()), (b"Content-Type", b"application/json")]
            stop = threading.Event()
            lock = threading.Lock()

            def writer(index: int) -> None:
                nonlocal lost_connections
                import json as _json

                name = f"crash-r{round_number}-w{index}"
                try:
                    reply = request(served.port, served.ca, "POST", "/api/products", auth,
                                    _json.dumps({"name": name, "price": 1.5, "stock": 0}).encode(), context=context)
                except OSError:
                    with lock:
                        lost_connections += 1
                    return
                if reply.status != 201:
                    # Status 0: killed before answering, the row may or may not exist. Anything else (a 500,
                    # a 503 for a locked database) is a failure the kill does not excuse.
                    with lock:
                        if reply.status == 0:
                            lost_connections += 1
                        else:
                            unexpected.append((name, "POST", reply.status, reply.body[:200]))
                    return
                row = _json.loads(reply.body)
                with lock:
                    acknowledged[name] = {"id": row["id"], "stock": 0, "maybe": None}
                stock = 0
                while not stop.is_set():
                    stock += 1
                    with lock:
                        acknowledged[name]["maybe"] = stock
                    try:
                        reply = request(served.port, served.ca, "PUT", f"/api/products/{row['id']}", auth,
                                        _json.dumps({"stock": stock}).encode(), context=context)
                    except OSError:
                        with lock:
                            lost_connections += 1
                        return
                    if reply.status != 200 or _json.loads(reply.body)["stock"] != stock:
                        with lock:
                            if reply.status == 0:
                                lost_connections += 1
                            else:
                                unexpected.append((name, "PUT", reply.status, reply.body[:200]))
                        return
                    with lock:
                        acknowledged[name].update(stock=stock, maybe=None)

            threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.3, 1.5))
            served.proc.kill()                       # SIGKILL: no shutdown, no flush, no goodbye
            served.proc.wait(timeout=10)
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
            assert not any(t.is_alive() for t in threads)
            assert not unexpected, unexpected
        finally:
            stop_quietly(served)
        # What SQLite has after the crash (opening it recovers a hot journal, as the next server would).
        db = sqlite3.connect(str(state / "demo.sqlite"))
        try:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            for name, expected in acknowledged.items():
                row = db.execute("SELECT id, stock FROM products WHERE name = ?", (name,)).fetchone()
                assert row is not None, f"acknowledged insert {name} is gone"
                assert row[0] == expected["id"]
                allowed = {expected["stock"], expected["maybe"]} - {None}
                assert row[1] in allowed, (name, row, expected)
        finally:
            db.close()
    # The test really raced the kill: rows were acknowledged, and writers were cut off mid-request.
    assert len(acknowledged) >= WRITERS
    assert sum(entry["stock"] for entry in acknowledged.values()) > 0
    assert lost_connections >= 1
    print(f"{len(acknowledged)} rows, {sum(e['stock'] for e in acknowledged.values())} acknowledged updates, "
          f"{lost_connections} requests cut by the kill")
    # A final server over the same file serves the rows through the API.
    served = start_serve(tmp_path, state_dir=state)
    try:
        name, expected = sorted(acknowledged.items())[0]
        reply = request(served.port, served.ca, "GET", f"/api/products/{expected['id']}",
                        [(b"Authorization", b"Bearer " + token.encode())])
        assert reply.status == 200 and name.encode() in reply.body
    finally:
        stop_quietly(served)


def stop_quietly(served) -> None:
    if served.proc.poll() is None:
        served.stop()


# --- ACME: the same kill at every write step of `tlskit acme issue --force` ---------------------------

LINEAGE_FILES = ("privkey.pem", "cert.pem", "chain.pem", "fullchain.pem", "renewal.json")


def test_acme_issue_killed_at_every_write_step_leaves_old_or_new_files(tmp_path):
    """Pebble issues a new certificate on each run; the run dies at write step 1, 2, 3 ... in turn."""
    import json as _json

    from peers_pebble import pebble_fixture

    class _Factory:  # pebble_fixture wants a tmp_path_factory; one directory is enough here
        @staticmethod
        def mktemp(name):
            path = tmp_path / name
            path.mkdir()
            return path

    pebble = pebble_fixture(_Factory)
    try:
        out = tmp_path / "out"
        lineage = out / "kill.example.com"
        args = ["acme", "issue", "kill.example.com", "--force", "--agree-tos", "--email", "t@example.com",
                "--out-dir", str(out), "--directory", pebble.directory, "--directory-ca-file", str(pebble.ca_file),
                "--http-port", str(pebble.http_port), "--bind", "127.0.0.1"]
        first = run_tlskit(*args, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        probe = _run_killer(tmp_path, 0, args, lineage)
        assert probe.returncode == 0, probe.stderr[-2000:]
        steps = [line for line in probe.stderr.splitlines() if line.startswith("step ")]
        assert sum("os.rename" in s for s in steps) >= len(LINEAGE_FILES), steps  # one per file, at least

        renamed_cert_first = 0
        for crash_at in range(1, len(steps) + 1):
            old = {name: (lineage / name).read_bytes() for name in LINEAGE_FILES}
            run = _run_killer(tmp_path, crash_at, args, lineage)
            assert run.returncode == -signal.SIGKILL, (crash_at, steps[crash_at - 1], run.stderr[-2000:])
            new = set()
            for name in LINEAGE_FILES:
                data = (lineage / name).read_bytes()
                if data == old[name]:
                    continue
                new.add(name)
                if name == "privkey.pem":
                    openssl("pkey", "-in", str(lineage / name), "-noout")
                elif name == "renewal.json":
                    _json.loads(data)
                else:
                    openssl("x509", "-in", str(lineage / name), "-noout")
            assert stat.S_IMODE((lineage / "privkey.pem").stat().st_mode) == 0o600
            for leftover in lineage.glob(".privkey.pem.*"):
                assert stat.S_IMODE(leftover.stat().st_mode) == 0o600
            # The key is renamed first: a new certificate never sits next to the key it does not belong to.
            if "cert.pem" in new:
                assert "privkey.pem" in new
                from_key = openssl("pkey", "-in", str(lineage / "privkey.pem"), "-pubout").stdout
                from_cert = openssl("x509", "-in", str(lineage / "cert.pem"), "-noout", "-pubkey").stdout
                assert from_key == from_cert
                renamed_cert_first += 1
        assert renamed_cert_first >= 1, steps
        # The next run heals whatever mix the kills left, and leaves no temp file.
        again = run_tlskit(*args, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert sorted(p.name for p in lineage.iterdir() if p.name.startswith(".")) == []
        openssl("verify", "-CAfile", str(pebble.root_file()), "-untrusted", str(lineage / "chain.pem"),
                str(lineage / "cert.pem"))
    finally:
        pebble.stop()
