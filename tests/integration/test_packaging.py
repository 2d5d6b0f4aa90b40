"""tlskit as an operator installs it: a built wheel in a fresh virtualenv, outside the source tree.

The wheel must carry everything zero-config `tlskit serve` reads (the demo dataset is package data);
an editable install (what `make venv` does) must not print setuptools' deprecation warnings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

from conftest import ROOT, free_port, require_binary, stop_process, wait_for_port

pytestmark = pytest.mark.slow

_NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", "out",
                                     ".pytest_cache", "results.json")


def _source_copy(target: Path) -> Path:
    """The project as a clone has it: building in place would leave build/ and egg-info in the tree."""
    shutil.copytree(ROOT, target, ignore=_NOT_SOURCE)
    return target


def _pip(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """pip acting on ``env_dir``: the test run's own pip with --python, so the new virtualenv needs no pip
    of its own (ensurepip costs five seconds of CPU), and builds stay isolated as a user's are."""
    import sys

    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"),
                           "--disable-pip-version-check", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtualenv with the wheel built from a copy of the source tree, and nothing else of ours.

    The third-party dependencies come from the test run's own environment, added as a plain path: the
    .pth files there (the editable tlskit among them) are not processed, so only the wheel's tlskit can
    be imported, and the test does not spend a minute reinstalling cryptography, aiohttp and psycopg.
    """
    import sysconfig

    work = tmp_path_factory.mktemp("wheel")
    source = _source_copy(work / "src")
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=False, clear=True).create(env_dir)
    wheels = work / "wheels"
    _pip(env_dir, "wheel", "--no-deps", "-w", str(wheels), str(source), cwd=work)
    (wheel,) = wheels.glob("tlskit-*.whl")
    _pip(env_dir, "install", "--no-deps", str(wheel), cwd=work)
    (site_dir,) = (env_dir / "lib").glob("python3*/site-packages")
    (site_dir / "zz-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return work, env_dir, wheel


def test_the_wheel_carries_the_demo_dataset(installed):
    import zipfile

    _, _, wheel = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "tlskit/data/demo.sql" in names
    assert not any(name.startswith(("tests/", "fixtures/", "bench/")) for name in names)


def test_zero_config_serve_from_the_installed_wheel(installed):
    curl = require_binary("curl")
    work, env_dir, _ = installed
    tlskit = env_dir / "bin" / "tlskit"
    run_dir = work / "elsewhere"
    run_dir.mkdir()
    # HOME and the state dir are the new user's: nothing of the source tree or of other tests is reachable.
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(run_dir), "NO_COLOR": "1"}
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import tlskit; print(tlskit.__file__)"],
                           cwd=run_dir, env=env, capture_output=True, text=True, check=True).stdout
    assert str(env_dir) in where and str(ROOT) not in where
    added = subprocess.run([str(tlskit), "users", "add", "alice", "--token", "--json"], cwd=run_dir, env=env,
                           capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    import json

    token = json.loads(added.stdout)["token"]
    port = free_port()
    log = run_dir / "serve.err"
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(tlskit), "serve", "--port", str(port)], cwd=run_dir, env=env,
                                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, 60, log=log)
        ca = run_dir / ".local" / "share" / "tlskit" / "ca" / "ca.pem"
        reply = subprocess.run([curl, "-sS", "--cacert", str(ca), "-H", f"Authorization: Bearer {token}",
                                f"https://localhost:{port}/api/products?limit=1", "--resolve",
                                f"localhost:{port}:127.0.0.1"], capture_output=True, text=True, timeout=30)
        assert reply.returncode == 0, reply.stderr
        assert json.loads(reply.stdout)["rows"], reply.stdout
    finally:
        stop_process(proc)
    assert "missing" not in log.read_text()


def test_an_editable_install_prints_no_setuptools_warning(installed, tmp_path):
    work, env_dir, _ = installed
    source = _source_copy(tmp_path / "src")
    done = _pip(env_dir, "install", "--no-deps", "-e", str(source), cwd=tmp_path)
    output = done.stdout + done.stderr
    assert "Warning" not in output and "compat" not in output.lower(), output
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import tlskit; print(tlskit.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONPATH": ""}).stdout
    assert where.startswith(str(source)), where
    # An editable install is a plain path entry: no import hook slows every start.
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    assert not list(site.glob("__editable___*finder.py"))
