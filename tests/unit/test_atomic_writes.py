"""Atomic writes are durable: the data is fsynced before the rename, the directory after it.

A SIGKILL cannot show a missing fsync (the page cache survives the process), so these tests record
the calls instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from tlskit.files import Output, write_outputs


def record_io(monkeypatch) -> list[tuple[str, str]]:
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        real_fsync(fd)
        events.append(("fsync", target))

    def replace(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        events.append(("replace", os.fspath(src), os.fspath(dst)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_each_file_is_fsynced_before_its_rename_and_the_directory_after(tmp_path, monkeypatch):
    tmp_path = tmp_path.resolve()
    events = record_io(monkeypatch)
    write_outputs([Output.of(tmp_path / "key.pem", b"secret", secret=True), Output.of(tmp_path / "cert.pem", b"public")])
    assert (tmp_path / "key.pem").read_bytes() == b"secret" and (tmp_path / "cert.pem").read_bytes() == b"public"
    renames = [e for e in events if e[0] == "replace"]
    assert sorted(Path(e[2]).name for e in renames) == ["cert.pem", "key.pem"]
    for _, temp, target in renames:
        assert Path(temp).parent == tmp_path
        # The temp file's own data was on disk before it took the target's name.
        assert events.index(("fsync", temp)) < events.index(("replace", temp, target))
    last_rename = max(events.index(e) for e in renames)
    assert ("fsync", str(tmp_path)) in events[last_rename + 1:], "the directory entry of the rename was not fsynced"


def test_the_directory_of_every_output_is_fsynced(tmp_path, monkeypatch):
    tmp_path = tmp_path.resolve()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    events = record_io(monkeypatch)
    write_outputs([Output.of(tmp_path / "a" / "one", b"1"), Output.of(tmp_path / "b" / "two", b"2")])
    synced = {target for kind, target, *_ in events if kind == "fsync"}
    assert {str(tmp_path / "a"), str(tmp_path / "b")} <= synced
