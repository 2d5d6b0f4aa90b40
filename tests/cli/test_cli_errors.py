"""What a user can type gets one line and the documented exit code, never "unexpected ... traceback"."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from conftest import assert_one_line_error, openssl, run_tlskit


def run_on_read_only(directory, *args: str):
    """Run tlskit with ``directory`` mounted read-only (a private mount namespace; root ignores modes)."""
    if os.geteuid() != 0:
        os.chmod(directory, 0o555)
        return run_tlskit(*args)
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is needed to make a read-only directory as root")
    path = shlex.quote(str(directory))
    command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "tlskit", *args))
    script = f"mount --bind {path} {path} && mount -o remount,bind,ro {path} && exec {command}"
    done = subprocess.run([unshare, "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    if "mount:" in done.stderr:
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
    from conftest import Run

    return Run(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("command", [("selfsign", "--cn", "x"), ("ca", "init", "--dir", "ca", "--cn", "x")])
def test_a_validity_past_year_9999_is_input(tmp_path, command):
    run = run_tlskit(*command, "--days", "99999999", cwd=tmp_path)
    assert_one_line_error(run, 2, "year 9999")
    assert not list(tmp_path.rglob("*.pem"))


def test_a_state_dir_that_is_a_file_or_under_one_is_input(tmp_path):
    (tmp_path / "f").write_text("x")
    assert_one_line_error(run_tlskit("serve", "--state-dir", str(tmp_path / "f")), 2, "not a directory")
    assert_one_line_error(run_tlskit("serve", "--state-dir", str(tmp_path / "f" / "sub")), 2, "state directory")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "x")
    assert_one_line_error(run_tlskit("serve", "--state-dir", str(tmp_path / "dangling")), 2, "state directory")


def test_ca_init_and_csr_in_a_read_only_directory(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    assert_one_line_error(run_on_read_only(ro, "ca", "init", "--dir", str(ro / "ca"), "--cn", "x"), 2,
                          "cannot create the CA directory")
    assert_one_line_error(run_on_read_only(ro, "csr", "--cn", "x", "--out", str(ro / "x.csr")), 2, "cannot write")


def test_users_on_a_read_only_database(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    db = ro / "users.sqlite"
    assert run_tlskit("users", "add", "bob", "--token", "--db", str(db)).returncode == 0
    for args in (("add", "alice", "--token"), ("set", "bob", "--new-token"), ("remove", "bob")):
        run = run_on_read_only(ro, "users", *args, "--db", str(db))
        assert_one_line_error(run, 2, "cannot write the users database")
    listed = run_on_read_only(ro, "users", "list", "--db", str(db))
    assert listed.returncode == 0 and "bob" in listed.stdout
    assert_one_line_error(run_on_read_only(ro, "users", "add", "carol", "--token", "--db", str(ro / "new.sqlite")),
                          2, "read-only file system")


def test_debug_works_after_the_subcommand(tmp_path):
    (tmp_path / "f").write_text("x")
    for args in (("--debug", "csr", "--cn", "x", "--out", "f/x.csr"), ("csr", "--cn", "x", "--out", "f/x.csr", "--debug")):
        run = run_tlskit(*args, cwd=tmp_path)
        assert run.returncode == 2, run.stderr          # the documented code, as without --debug
        assert "Traceback" in run.stderr and "No such option" not in run.stderr, run.stderr
        assert run.stderr.strip().splitlines()[-1].startswith("error: "), run.stderr
    quiet = run_tlskit("csr", "--cn", "x", "--out", "f/x.csr", cwd=tmp_path)
    assert_one_line_error(quiet, 2)


def test_a_value_after_double_dash_is_left_alone():
    from tlskit.cli.app import split_debug

    assert split_debug(["csr", "--debug", "--", "--debug"]) == (["csr", "--", "--debug"], True)
    assert split_debug(["csr", "--cn", "x"]) == (["csr", "--cn", "x"], os.environ.get("TLSKIT_DEBUG") == "1")


# ---- output ---------------------------------------------------------------------------------------

def test_users_list_is_not_cut_when_piped(tmp_path):
    db = tmp_path / "u.sqlite"
    long_name = "a-very-long-user-name-that-would-not-fit@team.example.test"
    assert run_tlskit("users", "add", long_name, "--token", "--methods", "all", "--db", str(db)).returncode == 0
    run = run_tlskit("users", "list", "--db", str(db), env={"COLUMNS": "40"})
    assert run.returncode == 0
    header, row = run.stdout.splitlines()
    assert header.split()[:2] == ["name", "methods"]
    assert row.split()[:2] == [long_name, "GET,POST,PUT,PATCH,DELETE"]
    assert "…" not in run.stdout


def test_prompts_end_in_one_colon(tmp_path):
    run = run_tlskit("csr", "--interactive", "--out", "p.csr", input="IN\n\n\n\n\nexample.test\n\n", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "::" not in run.stdout + run.stderr
    assert "Country Name (2 letter code) []: " in run.stdout + run.stderr


def test_group_help_shows_whole_summaries():
    run = run_tlskit("users", "--help", env={"COLUMNS": "80"})
    text = " ".join(run.stdout.split())
    assert ("Add a user with a password (argon2id), a token (stored as a hash), pinned client certificates and/or "
            "an S3 key pair (its secret sealed with STATE_DIR/s3-secrets.key); any one of them is enough.") in text
    assert "..." not in run.stdout.partition("Commands:")[2]


def test_each_passphrase_file_help_says_what_it_does_there():
    helps = {}
    for command in (("csr",), ("selfsign",), ("ca", "init"), ("ca", "sign"), ("inspect",), ("serve",)):
        text = " ".join(run_tlskit(*command, "--help", env={"COLUMNS": "200"}).stdout.split())
        start = text.index("--passphrase-file")
        helps[command] = text[start:start + 120]
    assert "decrypts the CA key" in helps[("ca", "sign")]
    assert "encrypts the new CA key" in helps[("ca", "init")]
    assert "decrypts the encrypted keys" in helps[("inspect",)]
    assert "--key" in helps[("serve",)] and "encrypt" not in helps[("serve",)].split("decrypt")[0]


def test_users_set_methods_claims_no_default():
    text = " ".join(run_tlskit("users", "set", "--help", env={"COLUMNS": "200"}).stdout.split())
    start = text.index("--methods")
    assert "default" not in text[start:start + 100].lower()


@pytest.mark.parametrize("outform", ["PEM", "DER"])
def test_inspect_reads_pkcs7(tmp_path, outform):
    assert run_tlskit("selfsign", "--cn", "p7.example.test", cwd=tmp_path).returncode == 0
    bundle = tmp_path / "b.p7b"
    openssl("crl2pkcs7", "-nocrl", "-certfile", str(tmp_path / "p7.example.test.pem"), "-outform", outform,
            "-out", str(bundle))
    run = run_tlskit("inspect", str(bundle), "--json")
    assert run.returncode == 0, run.stderr
    (item,) = run.json["items"]
    assert item["type"] == "certificate" and item["subject"] == "/CN=p7.example.test"
