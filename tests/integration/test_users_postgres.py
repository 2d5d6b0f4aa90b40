"""`tlskit users` on PostgreSQL (a real server), the versioned schema on both engines, and `users migrate`."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading

import pytest

from conftest import assert_one_line_error, free_port, run_tlskit
from peers_postgres import postgres, pg_url  # noqa: F401 (fixtures)
from peers_serve import start_serve
from tlskit.server.users import MIGRATIONS, SCHEMA_VERSION


def users(db: str, *args, env=None):
    return run_tlskit("users", *args, "--db", db, env=env)


def test_every_users_command_works_on_postgresql(pg_url, tmp_path):
    run = users(pg_url, "add", "alice", "--token", "--methods", "GET,POST", "--max-requests", "7", "--json")
    assert run.returncode == 0, run.stderr
    token = run.json["token"]
    assert run.json["db"].startswith("postgresql://tlskit@127.0.0.1:") and ":" + pg_url.split(":")[2] not in run.json["db"]
    (tmp_path / "pw").write_text("pg-password\n")
    assert users(pg_url, "add", "bob", "--password-file", str(tmp_path / "pw")).returncode == 0
    run = users(pg_url, "set", "alice", "--max-concurrent", "2", "--new-token", "--json")
    assert run.returncode == 0 and run.json["tokens"] == 2
    (tmp_path / "ht").write_text("carol:{SHA}" + base64.b64encode(__import__("hashlib").sha1(b"c").digest()).decode() + "\n")
    assert users(pg_url, "import-htpasswd", str(tmp_path / "ht")).returncode == 0
    listed = {u["name"]: u for u in users(pg_url, "list", "--json").json["users"]}
    assert listed["alice"] == {"name": "alice", "methods": ["GET", "POST"], "password": None, "tokens": 2,
                               "max_requests": 7, "max_concurrent": 2, "certificates": 0, "s3_keys": []}
    assert listed["bob"]["password"] == "argon2" and listed["carol"]["password"] == "sha1"
    assert_one_line_error(users(pg_url, "add", "alice", "--token"), 2, "already exists")
    assert users(pg_url, "remove", "bob", "--json").json == {"removed": "bob"}
    assert_one_line_error(users(pg_url, "remove", "bob"), 2, "no user")
    # Stored as hashes, in tlskit's own schema.
    import psycopg

    with psycopg.connect(pg_url) as db:
        rows = db.execute("SELECT token_sha256 FROM tlskit.tokens").fetchall()
        assert len(rows) == 2 and all(len(r[0]) == 64 for r in rows)
        assert token not in json.dumps(db.execute("SELECT * FROM tlskit.tokens").fetchall())


def test_password_from_pgpassword_and_from_pgpass(postgres, tmp_path):
    url = postgres.new_database()
    bare = url.replace(f":{postgres.password}@", "@")
    denied = users(bare, "list")
    assert_one_line_error(denied, 3, "cannot use the users database")
    assert postgres.password not in denied.stderr
    assert users(bare, "add", "pat", "--token", env={"PGPASSWORD": postgres.password}).returncode == 0
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{postgres.port}:*:tlskit:{postgres.password}\n")
    pgpass.chmod(0o600)
    listed = users(bare, "list", "--json", env={"PGPASSFILE": str(pgpass)})
    assert listed.returncode == 0, listed.stderr
    assert [u["name"] for u in listed.json["users"]] == ["pat"]
    # libpq parameters in the URL: sslmode=disable is read (the test server has no TLS); require fails.
    assert users(url + "?sslmode=disable", "list").returncode == 0
    assert_one_line_error(users(url + "?sslmode=require", "list"), 3, "cannot use the users database")


@pytest.mark.parametrize("value,code,message", [
    ("postgresql://tlskit@127.0.0.1:1/x", 3, "cannot use the users database"),
    ("postgresql://tlskit@127.0.0.1:5432/", 2, "names no database"),
    ("mysql://root@host/db", 2, "not an SQLite path nor a postgresql:// URL"),
    ("postgresql://u:s3cret@127.0.0.1:1/x?connect_timeout=notanumber", 2, "bad --db URL"),
])
def test_bad_or_unreachable_postgresql_is_one_line(value, code, message):
    run = run_tlskit("users", "list", "--db", value)
    assert_one_line_error(run, code, message)
    assert "s3cret" not in run.stderr


def test_schema_is_versioned_and_migrations_run_once_forward(pg_url, tmp_path):
    import psycopg

    assert users(pg_url, "add", "v", "--token").returncode == 0
    with psycopg.connect(pg_url) as db:
        versions = [r[0] for r in db.execute("SELECT version FROM tlskit.schema_migrations ORDER BY version")]
    assert versions == [m.version for m in MIGRATIONS] and versions[-1] == SCHEMA_VERSION
    assert users(pg_url, "list").returncode == 0          # nothing applied twice
    # An SQLite database made before the schema was versioned (the tables as they were, no record).
    legacy = tmp_path / "old.sqlite"
    db = sqlite3.connect(legacy)
    db.executescript("CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT, methods TEXT NOT NULL,"
                     " max_requests INTEGER, max_concurrent INTEGER, created REAL NOT NULL);"
                     "CREATE TABLE tokens (token_sha256 TEXT PRIMARY KEY, name TEXT NOT NULL REFERENCES users(name)"
                     " ON DELETE CASCADE, created REAL NOT NULL);"
                     "INSERT INTO users VALUES ('old', NULL, 'GET', 5, NULL, 1.0);")
    db.commit()
    db.close()
    listed = users(str(legacy), "list", "--json")
    assert [u["name"] for u in listed.json["users"]] == ["old"]
    assert users(str(legacy), "add", "new", "--token").returncode == 0
    db = sqlite3.connect(legacy)
    assert [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY version")] == versions
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'tokens_name'").fetchone()


def test_instances_starting_together_on_an_empty_database_migrate_once(pg_url):
    from tlskit.server.stores import parse_database
    from tlskit.server.users import open_user_store

    errors = []

    def open_it():
        try:
            open_user_store(parse_database(pg_url, "--db")).close()
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    import psycopg

    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT count(*) FROM tlskit.schema_migrations").fetchone()[0] == len(MIGRATIONS)


def test_migrate_copies_hashes_and_tokens_that_keep_working(pg_url, tmp_path):
    """SQLite -> PostgreSQL: a bcrypt htpasswd user, an argon2 user and a token user log in afterwards
    on a server that reads PostgreSQL, with nothing re-hashed."""
    import bcrypt

    source = tmp_path / "users.sqlite"
    hashed = bcrypt.hashpw(b"bc-pass", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "ht").write_text(f"bc:{hashed}\n")
    assert users(str(source), "import-htpasswd", str(tmp_path / "ht")).returncode == 0
    (tmp_path / "pw").write_text("argon-pass\n")
    assert users(str(source), "add", "ar", "--password-file", str(tmp_path / "pw"), "--methods", "all",
                 "--max-concurrent", "3").returncode == 0
    token = users(str(source), "add", "tk", "--token", "--max-requests", "9", "--json").json["token"]
    before = {u["name"]: u for u in users(str(source), "list", "--json").json["users"]}
    run = run_tlskit("users", "migrate", "--from", str(source), "--db", pg_url, "--json")
    assert run.returncode == 0, run.stderr
    assert sorted(run.json["copied"]) == ["ar", "bc", "tk"] and run.json["tokens"] == 1 and run.json["skipped"] == []
    after = {u["name"]: u for u in users(pg_url, "list", "--json").json["users"]}
    assert after == before
    import psycopg

    with psycopg.connect(pg_url) as db:
        assert db.execute("SELECT password_hash FROM tlskit.users WHERE name = 'bc'").fetchone()[0] == hashed
    # Again: nothing is overwritten without --force.
    again = run_tlskit("users", "migrate", "--from", str(source), "--db", pg_url, "--json")
    assert again.json["copied"] == [] and sorted(again.json["skipped"]) == ["ar", "bc", "tk"]
    forced = run_tlskit("users", "migrate", "--from", str(source), "--db", pg_url, "--force", "--json")
    assert sorted(forced.json["replaced"]) == ["ar", "bc", "tk"]
    served = start_serve(tmp_path, "--db", pg_url)
    try:
        assert served.curl("/api/products/1", "-u", "bc:bc-pass").status == 200
        assert served.curl("/api/products/1", "-u", "ar:argon-pass").status == 200
        assert served.curl("/api/products/1", "-H", f"Authorization: Bearer {token}").status == 200
        assert served.curl("/api/products/1", "-u", "bc:wrong").status == 401
    finally:
        served.stop()


def test_migrate_errors_are_one_line(pg_url, tmp_path):
    assert_one_line_error(run_tlskit("users", "migrate", "--from", str(tmp_path / "none.sqlite"), "--db", pg_url),
                          2, "does not exist")
    assert_one_line_error(run_tlskit("users", "migrate", "--from", pg_url, "--db", pg_url), 2, "same database")


def test_serve_banner_and_an_unreachable_users_database(pg_url, tmp_path):
    served = start_serve(tmp_path, "--db", pg_url)
    try:
        banner = served.stderr()
        password = pg_url.split(":")[2].split("@")[0]
        assert "users:       postgresql://tlskit@127.0.0.1" in banner and password not in banner
    finally:
        served.stop()
    run = run_tlskit("serve", "--state-dir", str(tmp_path / "s2"), "--port", str(free_port()),
                     "--db", f"postgresql://tlskit:{password}@127.0.0.1:1/nothing")
    assert_one_line_error(run, 3, "cannot use the users database")
    assert password not in run.stderr
