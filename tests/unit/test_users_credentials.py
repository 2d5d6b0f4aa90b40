"""Pinned certificates and S3 key pairs in the users store (SQLite, in-process): what is stored, what the
server reads back, migration 4 over an older database, copies."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from tlskit.errors import InputError
from tlskit.server.users import MIGRATIONS, NewUser, migrate_sqlite, open_user_source, open_user_store
from tlskit.server.users_credentials import Pin, pin_of

PIN_A = Pin("aa" * 32, "CN=carol")
PIN_B = Pin("bb" * 32, "CN=carol")


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


def _store(state):
    return open_user_store(state / "users.sqlite", state_dir=state)


def test_a_user_may_have_only_a_pinned_certificate(state):
    store = _store(state)
    store.create(NewUser("carol", certificates=(PIN_A,)))
    carol = store.require("carol")
    assert carol.cert_fingerprints == [PIN_A.fingerprint] and carol.password_hash is None and not carol.token_hashes
    assert carol.public()["certificates"] == 1
    with pytest.raises(InputError, match="no credential"):
        NewUser("nobody")


def test_an_s3_secret_is_sealed_in_the_database_and_only_the_server_opens_it(state):
    store = _store(state)
    pair = store.create(NewUser("bob", s3_key=True)).s3_key
    assert pair.access_key_id.startswith("TLKA") and len(pair.access_key_id) == 20 and len(pair.secret_access_key) == 40
    assert pair.secret_access_key.encode() not in (state / "users.sqlite").read_bytes()
    assert (state / "s3-secrets.key").stat().st_mode & 0o777 == 0o600
    # The CLI's store lists the key id and never needs the secret back.
    bob = store.require("bob")
    assert bob.s3_key_ids == [pair.access_key_id] and bob.s3_keys == {}
    source = open_user_source(state / "users.sqlite", state_dir=state)
    (served,) = source.all()
    assert served.s3_keys == {pair.access_key_id: pair.secret_access_key}


def test_the_key_file_goes_with_the_database_and_another_one_leaves_the_key_out(state, tmp_path, caplog):
    import shutil

    store = _store(state)
    pair = store.create(NewUser("bob", s3_key=True, token=True)).s3_key
    # Whatever --state-dir says, an SQLite database's key is the one beside it.
    (served,) = open_user_source(state / "users.sqlite", state_dir=tmp_path / "elsewhere").all()
    assert served.s3_keys == {pair.access_key_id: pair.secret_access_key}
    # A copy of the database without its key file, next to another key: the secret stays shut.
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    shutil.copy(state / "users.sqlite", other / "users.sqlite")
    (other / "s3-secrets.key").write_text("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=\n")
    (other / "s3-secrets.key").chmod(0o600)
    with caplog.at_level(logging.ERROR, logger="tlskit.serve"):
        (served,) = open_user_source(other / "users.sqlite").all()
    assert served.s3_keys == {} and served.token_hashes      # the rest of bob still works
    assert "another key file" in caplog.text and pair.secret_access_key not in caplog.text


def test_pins_and_keys_change_all_or_nothing(state):
    store = _store(state)
    store.create(NewUser("carol", certificates=(PIN_A,)))
    store.create(NewUser("dave", token=True))
    with pytest.raises(InputError, match="pinned to carol already"):
        store.change_credentials("dave", pin=[PIN_A])
    with pytest.raises(InputError, match="nothing was changed"):
        store.change_credentials("carol", pin=[PIN_B], remove_s3_keys=["TLKANOSUCHKEY"])
    assert store.require("carol").cert_fingerprints == [PIN_A.fingerprint]
    pair = store.change_credentials("carol", pin=[PIN_B], unpin=[PIN_A], new_s3_key=True)
    carol = store.require("carol")
    assert carol.cert_fingerprints == [PIN_B.fingerprint] and carol.s3_key_ids == [pair.access_key_id]
    store.change_credentials("carol", remove_s3_keys=[pair.access_key_id])
    assert store.require("carol").s3_key_ids == []
    store.remove("carol")
    db = sqlite3.connect(state / "users.sqlite")
    assert db.execute("SELECT COUNT(*) FROM cert_pins").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM s3_keys").fetchone()[0] == 0


def test_migration_4_adds_the_tables_to_an_older_database_and_keeps_its_users(state, monkeypatch):
    import tlskit.server.users as users_module

    state.mkdir()
    old = sqlite3.connect(state / "users.sqlite", isolation_level=None)
    monkeypatch.setattr(users_module, "MIGRATIONS", MIGRATIONS[:3])
    monkeypatch.setattr(users_module, "SCHEMA_VERSION", 3)
    migrate_sqlite(old)
    old.execute("INSERT INTO users (name, password_hash, methods, created) VALUES ('old', NULL, 'GET', 0)")
    old.execute("INSERT INTO tokens VALUES ('" + "cc" * 32 + "', 'old', 0)")
    old.close()
    monkeypatch.undo()
    store = _store(state)
    assert store._execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == 4
    assert store.require("old").token_hashes == ["cc" * 32]
    store.change_credentials("old", pin=[PIN_A])
    assert store.require("old").cert_fingerprints == [PIN_A.fingerprint]


def test_a_copy_takes_pins_and_sealed_keys_along(state):
    store = _store(state)
    pair = store.create(NewUser("bob", s3_key=True, certificates=(PIN_A,))).s3_key
    copy = open_user_store(state / "copy.sqlite")
    report = copy.copy_from(store)
    assert report.copied == ["bob"]
    (served,) = open_user_source(state / "copy.sqlite").all()
    assert served.cert_fingerprints == [PIN_A.fingerprint]
    assert served.s3_keys == {pair.access_key_id: pair.secret_access_key}


def test_pin_of_reads_a_certificate_file_or_a_fingerprint(tmp_path):
    import hashlib

    from cryptography.hazmat.primitives.serialization import Encoding

    from tlskit.issue import self_signed_certificate
    from tlskit.keys import KeySpec, generate_key

    key = generate_key(KeySpec.parse("ec:p256"))
    cert = self_signed_certificate(key, {"CN": "carol"}, []).certificate
    (tmp_path / "carol.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    pin = pin_of(str(tmp_path / "carol.pem"))
    assert pin.fingerprint == hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest() and pin.subject == "CN=carol"
    assert pin_of(":".join(["AB"] * 32)).fingerprint == "ab" * 32
    with pytest.raises(InputError, match="neither a certificate file nor"):
        pin_of("no-such-file.pem")
