"""S3 secrets sealed at rest: AES-GCM under a key file in the state directory."""

from __future__ import annotations

import multiprocessing
import stat

import pytest

from tlskit.errors import InputError
from tlskit.server.s3secrets import KEY_FILE, SecretBox, SecretUnavailable


def test_a_sealed_secret_opens_with_the_same_key_file_and_reveals_nothing(tmp_path):
    box = SecretBox.in_state_dir(tmp_path)
    sealed = box.seal("TLKAEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert "wJalr" not in sealed and sealed.startswith("v1:")
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    # Another process (a server) reading the same file opens it.
    assert SecretBox.in_state_dir(tmp_path).open("TLKAEXAMPLE", sealed) == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    # Each seal has its own nonce.
    assert box.seal("TLKAEXAMPLE", "same") != box.seal("TLKAEXAMPLE", "same")


def test_what_does_not_open_says_why(tmp_path):
    box = SecretBox.in_state_dir(tmp_path / "a")
    sealed = box.seal("TLKAONE", "secret")
    other = SecretBox.in_state_dir(tmp_path / "b")
    other.seal("x", "y")
    with pytest.raises(SecretUnavailable, match="another key file"):
        other.open("TLKAONE", sealed)
    with pytest.raises(SecretUnavailable, match="altered"):
        box.open("TLKAOTHER", sealed)      # copied onto another key id
    head, _, payload = sealed.rpartition(":")
    flipped = payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB")
    with pytest.raises(SecretUnavailable, match="altered"):
        box.open("TLKAONE", f"{head}:{flipped}")
    with pytest.raises(SecretUnavailable, match="not in a form"):
        box.open("TLKAONE", "plain text")
    with pytest.raises(SecretUnavailable, match="does not exist"):
        SecretBox.in_state_dir(tmp_path / "missing").open("TLKAONE", sealed)


def test_a_key_file_others_can_read_is_refused(tmp_path):
    SecretBox.in_state_dir(tmp_path).seal("k", "s")
    (tmp_path / KEY_FILE).chmod(0o644)
    with pytest.raises(InputError, match="chmod 600"):
        SecretBox.in_state_dir(tmp_path).seal("k", "s")
    (tmp_path / KEY_FILE).chmod(0o600)
    (tmp_path / KEY_FILE).write_text("short\n")
    with pytest.raises(InputError, match="damaged"):
        SecretBox.in_state_dir(tmp_path).seal("k", "s")


def _seal(directory: str) -> str:
    return SecretBox.in_state_dir(directory).seal("TLKARACE", "secret")


def test_first_uses_at_once_agree_on_one_key(tmp_path):
    with multiprocessing.get_context("fork").Pool(4) as pool:
        sealed = pool.map(_seal, [str(tmp_path)] * 8)
    box = SecretBox.in_state_dir(tmp_path)
    assert all(box.open("TLKARACE", one) == "secret" for one in sealed)
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]
