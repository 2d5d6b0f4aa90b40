"""`tlskit ca install/uninstall` against this machine's real trust stores: curl, certutil and keytool decide.

The test changes the system store (and Java's cacerts); its teardown puts both back as they were.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import IN_CI, require_binary, run_tlskit
from peers_serve import start_serve

pytestmark = pytest.mark.slow

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture
def machine_trust(tmp_path):
    """Root and Debian's update-ca-certificates are needed; everything they change is restored."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("ca install tests need root")
        pytest.skip("ca install tests change the system trust store: they need root")
    require_binary("update-ca-certificates")
    from tlskit.truststores import DEBIAN_ANCHORS, TrustPlan

    anchors_before = set(DEBIAN_ANCHORS.glob("*"))
    bundle_before = SYSTEM_BUNDLE.read_bytes()
    keystore = None
    found = TrustPlan(Path("."), b"", "", "", tmp_path).java_keystore()
    if found is not None:
        keystore = found[1]
        shutil.copy2(keystore, tmp_path / "cacerts.saved")
    try:
        yield
    finally:
        added = set(DEBIAN_ANCHORS.glob("*")) - anchors_before
        for path in added:
            path.unlink()
        if added or SYSTEM_BUNDLE.read_bytes() != bundle_before:
            subprocess.run(["update-ca-certificates", "--fresh"], capture_output=True, check=True)
        if keystore is not None:
            shutil.copy2(tmp_path / "cacerts.saved", keystore)
        assert SYSTEM_BUNDLE.read_bytes() == bundle_before


# Variables that would point curl at a bundle of their own: the test is about curl's default store.
_CA_VARIABLES = ("CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")


def _curl(url: str, port: int) -> subprocess.CompletedProcess:
    # No --cacert: curl trusts what the system store trusts.
    env = {name: value for name, value in os.environ.items() if name not in _CA_VARIABLES}
    return subprocess.run([require_binary("curl"), "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                           "--resolve", f"localhost:{port}:127.0.0.1", url], capture_output=True, text=True,
                          timeout=30, env=env)


def test_curl_and_java_trust_serve_after_install_and_not_after_uninstall(machine_trust, tmp_path):
    """One install and one uninstall, checked by curl (the system store) and keytool (Java's cacerts):
    each cycle runs update-ca-certificates and with it Debian's Java hook, seconds of CPU a run."""
    keytool = require_binary("keytool")
    served = start_serve(tmp_path)
    ca_dir = served.state_dir / "ca"
    # A HOME of its own: no NSS database of the real user is touched.
    env = {"HOME": str(tmp_path / "home")}
    uninstalled = False
    try:
        url = f"https://localhost:{served.port}/api"
        before = _curl(url, served.port)
        assert before.returncode == 60, before          # the local CA is not trusted yet
        plan = run_tlskit("ca", "install", "--ca-dir", str(ca_dir), "--dry-run", "--json", env=env)
        assert plan.returncode == 0, plan.stderr
        assert {s["store"]: s["result"] for s in plan.json["stores"]}["system"] == "would add"
        assert _curl(url, served.port).returncode == 60  # a dry run changes nothing
        installed = run_tlskit("ca", "install", "--ca-dir", str(ca_dir), "--json", env=env)
        assert installed.returncode == 0, installed.stderr
        stores = {s["store"]: s for s in installed.json["stores"]}
        assert stores["system"]["result"] == "added"
        java = stores["java"]
        assert java["result"] in ("added", "present"), java
        fingerprint = ":".join(installed.json["fingerprint_sha256"][i:i + 2]
                               for i in range(0, 64, 2)).upper()

        def listed() -> str:
            return subprocess.run([keytool, "-list", "-keystore", java["location"], "-storepass", "changeit"],
                                  capture_output=True, text=True).stdout.upper()

        assert fingerprint in listed()
        trusted = _curl(url, served.port)
        assert trusted.returncode == 0 and trusted.stdout == "401", trusted
        again = run_tlskit("ca", "install", "--ca-dir", str(ca_dir), "--json", env=env)
        assert {s["store"]: s["result"] for s in again.json["stores"]}["system"] == "present"
        removed = run_tlskit("ca", "uninstall", "--ca-dir", str(ca_dir), "--json", env=env)
        assert removed.returncode == 0, removed.stderr
        assert {s["store"]: s["result"] for s in removed.json["stores"]}["system"] == "removed"
        after = _curl(url, served.port)
        assert after.returncode == 60, after
        assert fingerprint not in listed()
        uninstalled = True
    finally:
        # Whatever failed above, the CA leaves this machine's stores (machine_trust then checks it did).
        if not uninstalled:
            run_tlskit("ca", "uninstall", "--ca-dir", str(ca_dir), env=env)
        served.stop()


def test_nss_databases_of_firefox_and_chromium(tmp_path):
    certutil = require_binary("certutil")
    home = tmp_path / "home"
    chromium = home / ".pki" / "nssdb"
    firefox = home / ".mozilla" / "firefox" / "abcd.default-release"
    for db in (chromium, firefox):
        db.mkdir(parents=True)
        subprocess.run([certutil, "-N", "-d", f"sql:{db}", "--empty-password"], check=True, capture_output=True)
    assert run_tlskit("ca", "init", "--dir", "ca", "--cn", "NSS Test", cwd=tmp_path).returncode == 0
    env = {"HOME": str(home)}
    installed = run_tlskit("ca", "install", "--ca-dir", str(tmp_path / "ca"), "--store", "nss", "--json", env=env)
    assert installed.returncode == 0, installed.stderr
    assert [(s["location"], s["result"]) for s in installed.json["stores"]] == [
        (f"sql:{chromium}", "added"), (f"sql:{firefox}", "added")]
    nickname = installed.json["name"]
    for db in (chromium, firefox):
        shown = subprocess.run([certutil, "-L", "-d", f"sql:{db}", "-n", nickname], capture_output=True, text=True)
        assert shown.returncode == 0 and "C,," in subprocess.run([certutil, "-L", "-d", f"sql:{db}"],
                                                                 capture_output=True, text=True).stdout
    removed = run_tlskit("ca", "uninstall", "--ca-dir", str(tmp_path / "ca"), "--store", "nss", "--json", env=env)
    assert [s["result"] for s in removed.json["stores"]] == ["removed", "removed"], removed.stdout
    for db in (chromium, firefox):
        gone = subprocess.run([certutil, "-L", "-d", f"sql:{db}", "-n", nickname], capture_output=True)
        assert gone.returncode != 0


def test_an_intermediate_or_a_missing_ca_is_refused(tmp_path):
    from conftest import assert_one_line_error

    assert_one_line_error(run_tlskit("ca", "install", "--ca-dir", str(tmp_path / "nothing")), 2, "not a tlskit CA")
    assert run_tlskit("ca", "init", "--dir", "root", "--cn", "Root", cwd=tmp_path).returncode == 0
    assert run_tlskit("ca", "init", "--dir", "sub", "--cn", "Sub", "--parent", "root", cwd=tmp_path).returncode == 0
    assert_one_line_error(run_tlskit("ca", "install", "--ca-dir", str(tmp_path / "sub"), "--dry-run"), 2,
                          "intermediate")
