"""The users database the server checks is the one on disk: replaced, recreated, corrupted, restored.

Backups are restored and config management deploys files by writing a new file and renaming it over
the old one; an open SQLite connection keeps reading the old inode forever unless the server notices.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from conftest import run_tlskit
from peers_serve import poll_until, start_serve


def wait_for_status(served, token: str, wanted: int, seconds: float = 4.0):
    return poll_until(lambda: served.curl("/api/products/1", "-H", f"Authorization: Bearer {token}"),
                      lambda reply: reply.status == wanted, seconds, interval=0.1)


@pytest.fixture
def served(tmp_path):
    server = start_serve(tmp_path, "--db", str(tmp_path / "users.sqlite"))
    yield server
    server.stop()


def test_a_database_renamed_into_place_is_read_within_two_seconds(served, tmp_path):
    alice = served.add_token_user("alice")
    bob = served.add_token_user("bob")
    assert served.curl("/api/products/1", "-H", f"Authorization: Bearer {alice}").status == 200
    # A restored backup without alice, put in place the way backup tools and config management do it.
    staged = tmp_path / "users.sqlite.new"
    shutil.copy(served.db, staged)
    assert run_tlskit("users", "remove", "alice", "--db", str(staged)).returncode == 0
    os.replace(staged, served.db)
    started = time.monotonic()
    assert wait_for_status(served, alice, 401).status == 401
    assert time.monotonic() - started <= 2.5
    assert served.curl("/api/products/1", "-H", f"Authorization: Bearer {bob}").status == 200


def test_a_database_deleted_and_recreated_is_read(served):
    alice = served.add_token_user("alice")
    assert served.curl("/api/products/1", "-H", f"Authorization: Bearer {alice}").status == 200
    served.db.unlink()
    carol = served.add_token_user("carol")          # the CLI creates a new, empty database
    assert wait_for_status(served, alice, 401).status == 401
    assert wait_for_status(served, carol, 200).status == 200


def test_a_corrupted_database_is_503_json_and_the_server_recovers(served, tmp_path):
    alice = served.add_token_user("alice")
    assert served.curl("/api/products/1", "-H", f"Authorization: Bearer {alice}").status == 200
    good = tmp_path / "good.sqlite"
    shutil.copy(served.db, good)
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"this is not an SQLite database" * 100)
    os.replace(broken, served.db)
    # A fresh token is never in the verified-credential cache: it needs the database.
    reply = wait_for_status(served, "tlk_" + "x" * 43, 503)
    assert reply.status == 503, (reply.status, reply.body)
    assert reply.header("content-type") == "application/json"
    assert int(reply.header("retry-after")) >= 1
    assert reply.header("strict-transport-security")
    assert json.loads(reply.body)["error"]
    for _ in range(5):          # every answer meanwhile is the documented 503, never a 500
        assert served.curl("/api/products/1", "-H", f"Authorization: Bearer {alice}").status in (200, 503)
    log = served.stderr()
    assert log.count("users database") >= 1 and log.count("Traceback") == 0
    os.replace(good, served.db)
    assert wait_for_status(served, alice, 200).status == 200


def test_an_unreadable_database_is_503_not_500(served):
    alice = served.add_token_user("alice")
    os.chmod(served.db, 0)
    try:
        if os.geteuid() == 0:
            # root reads any file: make it unreadable the way a broken mount would, by replacing it
            # with a directory.
            os.chmod(served.db, 0o600)
            served.db.unlink()
            served.db.mkdir()
        reply = wait_for_status(served, "tlk_" + "y" * 43, 503)
        assert reply.status == 503, (reply.status, reply.body)
    finally:
        if served.db.is_dir():
            served.db.rmdir()
        else:
            os.chmod(served.db, 0o600)
