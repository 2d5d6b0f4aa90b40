"""`tlskit csr`: every key type, every subject form and SAN type, checked by the openssl binary."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import pytest

from conftest import assert_one_line_error, openssl, run_tlskit

KEY_TYPES = ["rsa:2048", "rsa:3072", "rsa:4096", "ec:p256", "ec:p384", "ec:p521", "ed25519"]
OPENSSL_KEY_TEXT = {
    "rsa:2048": "Public-Key: (2048 bit)", "rsa:3072": "Public-Key: (3072 bit)", "rsa:4096": "Public-Key: (4096 bit)",
    "ec:p256": "NIST CURVE: P-256", "ec:p384": "NIST CURVE: P-384", "ec:p521": "NIST CURVE: P-521",
    "ed25519": "ED25519",
}
ANYBANK = "/C=IN/ST=Tamilnadu/L=Kilpauk/O=Sastra Technologies Private Limited/OU=AnyBank Suite/CN=anybank/emailAddress=a@b.c"


def snapshot(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_every_key_type_verifies_with_openssl(tmp_path, key_type):
    run = run_tlskit("csr", "--key-type", key_type, "--cn", "www.example.com", "--san", "example.com",
                     "--out", "r.csr", "--key-out", "r.key", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    verify = openssl("req", "-in", str(tmp_path / "r.csr"), "-verify", "-noout", "-text")
    text = verify.stdout.decode()
    assert "verify OK" in (verify.stderr.decode() + text)
    assert OPENSSL_KEY_TEXT[key_type] in text
    assert "DNS:www.example.com, DNS:example.com" in text
    assert stat.S_IMODE(os.stat(tmp_path / "r.key").st_mode) == 0o600
    # The key really belongs to the CSR: openssl derives the same public key from both.
    from_key = openssl("pkey", "-in", str(tmp_path / "r.key"), "-pubout").stdout
    from_csr = openssl("req", "-in", str(tmp_path / "r.csr"), "-noout", "-pubkey").stdout
    assert from_key == from_csr


def test_openssl_style_subject_string_is_kept_field_by_field(tmp_path):
    run = run_tlskit("csr", "--subject", ANYBANK, "--out", "a.csr", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    subject = openssl("req", "-in", str(tmp_path / "a.csr"), "-noout", "-subject", "-nameopt", "compat").stdout.decode()
    assert subject.strip() == "subject=" + ANYBANK
    # Default key path sits next to the CSR.
    assert (tmp_path / "a.key").exists()


def test_rfc4514_subject_and_flags_override(tmp_path):
    run = run_tlskit("csr", "--subject", "CN=old.example.com,O=Example\\, Inc.,C=us", "--cn", "new.example.com",
                     "--org-unit", "Ops", "--out", "x.csr", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.json["subject"] == "/C=US/O=Example, Inc./OU=Ops/CN=new.example.com"
    subject = openssl("req", "-in", str(tmp_path / "x.csr"), "-noout", "-subject", "-nameopt", "RFC2253").stdout.decode()
    assert "CN=new.example.com" in subject and "O=Example\\, Inc." in subject and "C=US" in subject


def test_san_types_are_detected(tmp_path):
    run = run_tlskit("csr", "--cn", "api.example.com", "--san", "*.example.com", "--san", "192.0.2.7",
                     "--san", "2001:db8::1", "--san", "admin@example.com", "--san", "https://example.com/id",
                     "--san", "DNS:typed.example.com,IP:10.0.0.1", "--out", "s.csr", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    text = openssl("req", "-in", str(tmp_path / "s.csr"), "-noout", "-text").stdout.decode()
    for expected in ("DNS:api.example.com", "DNS:*.example.com", "IP Address:192.0.2.7", "IP Address:2001:DB8:0:0:0:0:0:1",
                     "email:admin@example.com", "URI:https://example.com/id", "DNS:typed.example.com", "IP Address:10.0.0.1"):
        assert expected in text, expected
    assert run.json["sans"][0] == "DNS:api.example.com"


def test_encrypted_key_needs_its_passphrase(tmp_path):
    (tmp_path / "pass.txt").write_text("correct horse\n")
    run = run_tlskit("csr", "--cn", "enc.example.com", "--passphrase-file", "pass.txt", "--out", "e.csr", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "e.key").read_bytes()
    openssl("pkey", "-in", str(tmp_path / "e.key"), "-passin", f"file:{tmp_path / 'pass.txt'}", "-noout")
    assert openssl("pkey", "-in", str(tmp_path / "e.key"), "-passin", "pass:wrong", "-noout", check=False).returncode != 0

    # Reusing the encrypted key: without the passphrase it is a clear error; with it, a new CSR.
    missing = run_tlskit("csr", "--key", "e.key", "--cn", "enc.example.com", "--out", "again.csr", cwd=tmp_path)
    assert_one_line_error(missing, 2, "encrypted")
    assert not (tmp_path / "again.csr").exists()
    (tmp_path / "wrong.txt").write_text("nope\n")
    wrong = run_tlskit("csr", "--key", "e.key", "--passphrase-file", "wrong.txt", "--cn", "x", "--out", "again.csr", cwd=tmp_path)
    assert_one_line_error(wrong, 2, "passphrase")
    ok = run_tlskit("csr", "--key", "e.key", "--passphrase-file", "pass.txt", "--cn", "enc.example.com",
                    "--out", "again.csr", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert openssl("req", "-in", str(tmp_path / "again.csr"), "-noout", "-pubkey").stdout == \
        openssl("req", "-in", str(tmp_path / "e.csr"), "-noout", "-pubkey").stdout


def test_existing_key_from_openssl(tmp_path):
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(tmp_path / "o.key"))
    run = run_tlskit("csr", "--key", "o.key", "--cn", "legacy.example.com", "--out", "o.csr", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.json["key_generated"] is False and run.json["key"] == "o.key"
    assert openssl("req", "-in", str(tmp_path / "o.csr"), "-noout", "-pubkey").stdout == \
        openssl("pkey", "-in", str(tmp_path / "o.key"), "-pubout").stdout


def test_interactive_prompts_like_openssl_req(tmp_path):
    # Answers in openssl's order: C, ST, L, O, OU, CN, emailAddress. A wrong country is asked again.
    answers = "IND\nIN\nTamilnadu\n\nSastra\n.\nanybank.example\n\n"
    run = run_tlskit("csr", "--interactive", "--out", "p.csr", cwd=tmp_path, input=answers)
    assert run.returncode == 0, run.stderr
    assert "two-letter" in run.stderr + run.stdout
    subject = openssl("req", "-in", str(tmp_path / "p.csr"), "-noout", "-subject", "-nameopt", "compat").stdout.decode()
    assert subject.strip() == "subject=/C=IN/ST=Tamilnadu/O=Sastra/CN=anybank.example"


@pytest.mark.parametrize("args, message", [
    (["--cn", "x.example.com", "--country", "IND"], "two-letter"),
    (["--cn", "x.example.com", "--key-type", "rsa:1024"], "unknown key type"),
    (["--cn", "x.example.com", "--key-type", "dsa"], "unknown key type"),
    (["--subject", "/C=IN/XX=1/CN=a"], "unknown subject field"),
    (["--cn", "a" * 65], "at most 64"),
    # 17 characters, 65 bytes in UTF-8: a certificate bounds the CN by bytes (cryptography does too).
    (["--cn", "0" + "\U00010000" * 16], "at most 64"),
    # What a shell passes for bytes that are not UTF-8 (Python's surrogateescape) is no text at all.
    (["--cn", "\udc80.example.com"], "not valid UTF-8"),
    (["--cn", "x.example.com", "--org", "Ex\udc80mple"], "not valid UTF-8"),
    (["--cn", "x.example.com", "--san", "IP:999.1.1.1"], "not an IP address"),
    (["--cn", "x.example.com", "--san", "bad_name!"], "not a valid DNS name"),
    (["--subject", "/CN"], "has no '='"),
    ([], "no subject"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    run = run_tlskit("csr", *args, "--out", "bad.csr", cwd=tmp_path)
    assert_one_line_error(run, 2, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"garbage, not a key\n", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                                     b"\x30\x82\x01\x00junk"])
def test_garbage_key_is_refused(tmp_path, content):
    (tmp_path / "junk.key").write_bytes(content)
    before = snapshot(tmp_path)
    run = run_tlskit("csr", "--key", "junk.key", "--cn", "x.example.com", "--out", "j.csr", cwd=tmp_path)
    assert_one_line_error(run, 2)
    assert snapshot(tmp_path) == before


def test_existing_outputs_are_not_overwritten_without_force(tmp_path):
    assert run_tlskit("csr", "--cn", "one.example.com", "--out", "r.csr", cwd=tmp_path).returncode == 0
    before = snapshot(tmp_path)
    refused = run_tlskit("csr", "--cn", "two.example.com", "--out", "r.csr", cwd=tmp_path)
    assert_one_line_error(refused, 2, "--force")
    assert snapshot(tmp_path) == before
    # Only the key exists: still refused, and no CSR appears for a key that was kept.
    (tmp_path / "r.csr").unlink()
    before = snapshot(tmp_path)
    refused = run_tlskit("csr", "--cn", "two.example.com", "--out", "r.csr", cwd=tmp_path)
    assert_one_line_error(refused, 2, "r.key already exists")
    assert snapshot(tmp_path) == before
    forced = run_tlskit("csr", "--cn", "two.example.com", "--out", "r.csr", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert snapshot(tmp_path)["r.key"] != before["r.key"]
    assert "CN = two.example.com" in openssl("req", "-in", str(tmp_path / "r.csr"), "-noout", "-subject").stdout.decode()


def test_missing_output_directory_is_a_clear_error(tmp_path):
    run = run_tlskit("csr", "--cn", "x.example.com", "--out", "nodir/x.csr", cwd=tmp_path)
    assert_one_line_error(run, 2, "does not exist")


# --- the library workflow the command calls --------------------------------------------------------


def test_write_csr_names_files_after_the_cn_and_says_what_it_made(tmp_path, monkeypatch):
    from tlskit.csr import write_csr
    from tlskit.keys import KeySource
    from tlskit.names import parse_sans

    monkeypatch.chdir(tmp_path)
    made = write_csr({"CN": "*.example.com"}, parse_sans(["example.com"]), KeySource(), passphrase=b"pw")
    assert (made.path, made.key_path) == (Path("_wildcard.example.com.csr"), Path("_wildcard.example.com.key"))
    assert made.key_generated and made.key_encrypted and made.san_from_cn
    assert stat.S_IMODE(os.stat(made.key_path).st_mode) == 0o600
    from_key = openssl("pkey", "-in", str(made.key_path), "-passin", "pass:pw", "-pubout").stdout
    from_csr = openssl("req", "-in", str(made.path), "-noout", "-pubkey").stdout
    assert from_key == from_csr
    again = write_csr({"CN": "other.example.com"}, parse_sans(["other.example.com"]), KeySource(path=made.key_path),
                      passphrase=b"pw", out=Path("other.csr"))
    assert again.key_path == made.key_path and not again.key_generated and not again.key_encrypted
    assert not again.san_from_cn
    assert openssl("req", "-in", "other.csr", "-noout", "-pubkey", cwd=tmp_path).stdout == from_key


def test_write_csr_refuses_an_existing_output_before_making_a_key(tmp_path):
    from tlskit.csr import write_csr
    from tlskit.errors import FileExistsRefused
    from tlskit.keys import KeySource

    (tmp_path / "r.csr").write_text("old")
    slow = []
    with pytest.raises(FileExistsRefused):
        write_csr({"CN": "www.example.com"}, [], KeySource(key_type="rsa:4096"), out=tmp_path / "r.csr",
                  slow_work=lambda text: slow.append(text) or contextlib.nullcontext())
    assert slow == [] and snapshot(tmp_path) == {"r.csr": b"old"}


def test_only_slow_key_generation_is_announced(tmp_path):
    from tlskit.csr import write_csr
    from tlskit.keys import KeySource

    announced = []

    @contextlib.contextmanager
    def slow_work(text):
        announced.append(text)
        yield

    for name, key_type in (("a", "rsa:3072"), ("b", "ec:p256"), ("c", "ed25519")):
        write_csr({"CN": f"{name}.example.com"}, [], KeySource(key_type=key_type), out=tmp_path / f"{name}.csr",
                  slow_work=slow_work)
    assert announced == ["Generating rsa:3072 key..."]


def test_key_source_refuses_a_key_file_and_a_key_type_together(tmp_path):
    from tlskit.errors import InputError
    from tlskit.keys import KeySource

    with pytest.raises(InputError, match="^key and key_type were both given"):
        KeySource(path=tmp_path / "k.pem", key_type="ec:p256").resolve()


def test_subject_fields_override_the_subject_string():
    from tlskit.errors import InputError
    from tlskit.names import subject_from_fields

    subject = subject_from_fields("/C=IN/O=Example/CN=old.example.com", {"CN": "new.example.com", "O": None, "OU": "Ops"})
    assert subject == {"C": "IN", "O": "Example", "OU": "Ops", "CN": "new.example.com"}
    assert subject_from_fields(None, {"CN": "only.example.com"}) == {"CN": "only.example.com"}
    with pytest.raises(InputError, match="no subject given"):
        subject_from_fields(None, {"CN": None, "O": None})
