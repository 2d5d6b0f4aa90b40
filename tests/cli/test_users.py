"""`tlskit users`: the CLI as a user runs it, and the htpasswd formats checked against openssl and bcrypt."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import stat

import pytest

from conftest import assert_one_line_error, openssl, run_tlskit


@pytest.fixture
def db(tmp_path):
    return tmp_path / "users.sqlite"


def users(db, *args, input=None):
    return run_tlskit("users", *args, "--db", str(db), input=input)


def test_add_token_user_shows_the_token_once_and_stores_its_hash(db):
    run = users(db, "add", "alice", "--token", "--methods", "GET,POST", "--max-requests", "100",
                "--max-concurrent", "4", "--json")
    assert run.returncode == 0, run.stderr
    doc = run.json
    assert doc["token"].startswith("tlk_") and len(doc["token"]) > 40
    assert doc["methods"] == ["GET", "POST"]
    assert doc["max_requests"] == 100 and doc["max_concurrent"] == 4
    assert doc["token"].encode() not in db.read_bytes()
    stored = sqlite3.connect(db).execute("SELECT token_sha256 FROM tokens").fetchone()[0]
    assert stored == hashlib.sha256(doc["token"].encode()).hexdigest()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    listed = users(db, "list", "--json").json["users"]
    assert listed == [{"name": "alice", "methods": ["GET", "POST"], "password": None, "tokens": 1,
                       "max_requests": 100, "max_concurrent": 4, "certificates": 0, "s3_keys": []}]
    assert doc["token"] not in users(db, "list").stdout


def test_add_text_output_mentions_token(db):
    run = users(db, "add", "tom", "--token")
    assert run.returncode == 0
    assert "shown once" in run.stdout and "tlk_" in run.stdout


def test_add_password_user_hashes_with_argon2(db, tmp_path):
    (tmp_path / "pw").write_text("s3cret-pass\nignored second line\n")
    run = users(db, "add", "bob", "--password-file", str(tmp_path / "pw"), "--json")
    assert run.returncode == 0, run.stderr
    assert run.json["token"] is None and run.json["password"] == "argon2"
    assert b"s3cret-pass" not in db.read_bytes()
    from tlskit.server.users import UserStore, verify_password

    user = UserStore(db).require("bob")
    assert user.password_hash.startswith("$argon2id$")
    assert verify_password(user.password_hash, "s3cret-pass")
    assert not verify_password(user.password_hash, "s3cret-pas")


def test_password_from_stdin(db):
    run = users(db, "add", "carol", "--password-file", "-", "--json", input="from-stdin\n")
    assert run.returncode == 0, run.stderr
    from tlskit.server.users import UserStore, verify_password

    assert verify_password(UserStore(db).require("carol").password_hash, "from-stdin")


def test_set_and_remove(db, tmp_path):
    first = users(db, "add", "dave", "--token", "--json").json["token"]
    run = users(db, "set", "dave", "--methods", "all", "--max-requests", "0", "--new-token", "--json")
    assert run.returncode == 0, run.stderr
    assert run.json["methods"] == ["GET", "POST", "PUT", "PATCH", "DELETE"]
    assert run.json["tokens"] == 2 and run.json["token"] != first and run.json["max_requests"] == 0
    run = users(db, "set", "dave", "--revoke-tokens", "--json")
    assert run.json["tokens"] == 0
    assert "cannot log in" in run.stderr
    assert users(db, "remove", "dave", "--json").json == {"removed": "dave"}
    assert users(db, "list", "--json").json["users"] == []


@pytest.mark.parametrize("args,contains", [
    (("add", "eve"), "no credential"),
    (("add", "bad:name", "--token"), "invalid user name"),
    (("add", "eve", "--token", "--methods", "GET,FETCH"), "unknown method"),
    (("add", "eve", "--token", "--max-requests", "-1"), "negative"),
    (("add", "eve", "--password-file", "/nonexistent/pw"), "pw"),
])
def test_add_errors_are_one_line_and_write_nothing(db, args, contains):
    run = users(db, *args)
    assert_one_line_error(run, 2, contains)
    assert not db.exists()



def test_a_new_user_is_checked_when_made_before_any_database_is_opened():
    from tlskit.errors import InputError
    from tlskit.server.users import NewUser

    for fields, message in (({"name": "bad:name", "token": True}, "invalid user name"),
                            ({"name": "eve"}, "no credential"),
                            ({"name": "eve", "token": True, "max_concurrent": -2}, "max_concurrent -2 is negative")):
        with pytest.raises(InputError, match=message):
            NewUser(**fields)
    assert NewUser("eve", password="pw").methods == frozenset({"GET"})


def test_set_refuses_a_negative_limit_and_changes_nothing(db, tmp_path):
    assert users(db, "add", "hal", "--token", "--max-requests", "5").returncode == 0
    (tmp_path / "pw").write_text("new-pass\n")
    run = users(db, "set", "hal", "--password-file", str(tmp_path / "pw"), "--max-concurrent", "-1")
    assert_one_line_error(run, 2, "--max-concurrent -1 is negative")
    assert_one_line_error(users(db, "set", "nobody", "--max-requests", "-1"), 2, "negative")
    [hal] = users(db, "list", "--json").json["users"]
    assert hal["password"] is None and hal["max_requests"] == 5 and hal["max_concurrent"] is None

def test_duplicate_user_refused(db):
    assert users(db, "add", "frank", "--token").returncode == 0
    assert_one_line_error(users(db, "add", "frank", "--token"), 2, "already exists")


def test_set_or_remove_unknown_user(db):
    assert users(db, "add", "gus", "--token").returncode == 0
    assert_one_line_error(users(db, "set", "nobody", "--methods", "GET"), 2, "no user")
    assert_one_line_error(users(db, "remove", "nobody"), 2, "no user")
    assert_one_line_error(users(db, "set", "gus"), 2, "nothing to change")


def test_list_without_database_is_an_error(tmp_path):
    assert_one_line_error(users(tmp_path / "none.sqlite", "list"), 2, "does not exist")
    assert not (tmp_path / "none.sqlite").exists()


def test_not_a_database(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_text("this is not sqlite " * 100)
    assert_one_line_error(users(bad, "list"), 2, "cannot open users database")


# ---- htpasswd ------------------------------------------------------------------------------------

def test_import_htpasswd_all_formats_nginx_accepts(db, tmp_path):
    import bcrypt

    apr1 = openssl("passwd", "-apr1", "apr-pass").stdout.decode().strip()
    y2 = bcrypt.hashpw(b"bc-pass", bcrypt.gensalt(rounds=5)).decode().replace("$2b$", "$2y$", 1)
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"sha-pass").digest()).decode()
    crypt_des = "abJnggxhB/yWI"      # old crypt(3): refused, nginx on glibc would accept it, we cannot
    (tmp_path / "ht").write_text(f"# comment\nu_apr:{apr1}\nu_bc:{y2}\nu_sha:{sha}\nu_des:{crypt_des}\n\nbroken line\n")
    run = users(db, "import-htpasswd", str(tmp_path / "ht"), "--methods", "GET,POST", "--json")
    assert run.returncode == 0, run.stderr
    assert sorted(run.json["added"]) == ["u_apr", "u_bc", "u_sha"]
    assert [s["line"] for s in run.json["skipped"]] == [5, 7]
    from tlskit.server.users import UserStore, verify_password

    store = UserStore(db)
    for name, secret in (("u_apr", "apr-pass"), ("u_bc", "bc-pass"), ("u_sha", "sha-pass")):
        user = store.require(name)
        assert user.methods == {"GET", "POST"}
        assert verify_password(user.password_hash, secret), name
        assert not verify_password(user.password_hash, secret + "!"), name
    # Re-importing updates the hashes in place.
    again = users(db, "import-htpasswd", str(tmp_path / "ht"), "--json")
    assert sorted(again.json["updated"]) == ["u_apr", "u_bc", "u_sha"] and again.json["added"] == []


def test_import_htpasswd_with_nothing_usable(db, tmp_path):
    (tmp_path / "ht").write_text("x:plaintext\n")
    assert_one_line_error(users(db, "import-htpasswd", str(tmp_path / "ht")), 2, "no user imported")


@pytest.mark.parametrize("password", ["a", "password", "exactly16bytes!!", "a much longer password than sixteen bytes", "pässwörd"])
def test_apr1_matches_openssl(password):
    from tlskit.server.users import apr1_md5

    expected = openssl("passwd", "-apr1", "-salt", "xyZ12./a", password).stdout.decode().strip()
    assert apr1_md5(password.encode(), b"xyZ12./a") == expected


def test_malformed_stored_hashes_never_verify():
    from tlskit.server.users import verify_password

    for stored in ("$apr1$", "$2y$05$short", "{SHA}", "$argon2id$v=19$garbage", "plain", "$apr1$\x80",
                   "{SHA}\x80", "$apr1$s$\udc80", "{SHA}\udc80"):
        assert verify_password(stored, "x") is False


# ---- the verified-credential cache -------------------------------------------------------------

def test_password_is_hashed_once_then_served_from_the_cache(tmp_path):
    import asyncio

    from tlskit.server.auth import Authenticator
    from tlskit.server.credentials import Credential
    from tlskit.server.users import NewUser, UserStore

    store = UserStore(tmp_path / "u.sqlite")
    store.add(NewUser("ann", password="ann-password"))
    auth = Authenticator(UserStore(tmp_path / "u.sqlite"), refresh_interval=0)

    async def check(secret: str, times: int = 1):
        results = await asyncio.gather(*(auth.authenticate(Credential(secret, "ann", "basic")) for _ in range(times)))
        return [getattr(r, "name", None) for r in results]

    # 20 concurrent first requests share one argon2 check.
    assert asyncio.run(check("ann-password", 20)) == ["ann"] * 20
    assert auth.stats["hashes"] == 1
    assert asyncio.run(check("ann-password", 50)) == ["ann"] * 50
    assert auth.stats["hashes"] == 1 and auth.stats["cache_hits"] == 50
    # A wrong password is hashed once, then refused from the cache.
    assert asyncio.run(check("wrong", 3)) == [None] * 3
    assert auth.stats["hashes"] == 2
    # The cache holds no clear password, only HMAC digests.
    assert all(b"ann-password" not in key for key in auth._good)
    # Changing the password drops the cached success.
    store.update("ann", password="new-password")
    assert asyncio.run(check("ann-password")) == [None]
    assert asyncio.run(check("new-password")) == ["ann"]


def test_a_wrong_password_for_a_fast_imported_hash_takes_the_failure_floor(tmp_path):
    """apr1 and {SHA} fail in microseconds; a failure must take as long as an unknown name's does (the
    failure floor, set from the slowest hash setting stored), so that the delay tells no names apart."""
    import asyncio
    import subprocess
    import time

    from tlskit.server.auth import WRONG, Authenticator
    from tlskit.server.credentials import Credential
    from tlskit.server.users import NewUser, UserStore

    apr1 = subprocess.run(["openssl", "passwd", "-apr1", "right-password"], capture_output=True, text=True,
                          check=True).stdout.strip()
    store = UserStore(tmp_path / "users.sqlite")
    store.import_htpasswd(f"imported:{apr1}\n")
    store.add(NewUser("argon", password="argon-password"))
    auth = Authenticator(store)

    async def timed(name: str, secret: str):
        started = time.perf_counter()
        result = await auth.authenticate(Credential(secret=secret, name=name, source="basic"))
        return result, time.perf_counter() - started

    async def run():
        good, good_time = await timed("imported", "right-password")
        assert good.name == "imported"
        wrong, wrong_time = await timed("imported", "wrong-password")
        unknown, unknown_time = await timed("nobody", "wrong-password")
        return good_time, wrong, wrong_time, unknown, unknown_time

    good_time, wrong, wrong_time, unknown, unknown_time = asyncio.run(run())
    assert wrong is WRONG and unknown is WRONG
    # The floor covers the slowest stored setting (argon2 here) with a margin; a good apr1 login pays none.
    assert auth.failure_floor >= max(auth._costs.values())
    assert wrong_time >= auth.failure_floor * 0.95 and unknown_time >= auth.failure_floor * 0.95
    assert good_time < auth.failure_floor
