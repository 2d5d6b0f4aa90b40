"""`--state-dir` leaves an existing directory's permissions alone and refuses an unsafe one."""

from __future__ import annotations

import os
import stat

from conftest import assert_one_line_error, run_tlskit
from peers_serve import start_serve


def test_a_missing_state_dir_is_created_private(tmp_path):
    state = tmp_path / "new" / "state"
    server = start_serve(tmp_path, state_dir=state)
    server.stop()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_an_existing_shared_sticky_directory_is_not_chmodded(tmp_path):
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    server = start_serve(tmp_path, state_dir=shared)
    try:
        assert server.proc.poll() is None
    finally:
        server.stop()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


def test_an_existing_group_readable_directory_keeps_its_mode(tmp_path):
    state = tmp_path / "team"
    state.mkdir()
    os.chmod(state, 0o750)
    server = start_serve(tmp_path, state_dir=state)
    server.stop()
    assert stat.S_IMODE(state.stat().st_mode) == 0o750


def test_a_world_writable_directory_without_the_sticky_bit_is_refused(tmp_path):
    unsafe = tmp_path / "open"
    unsafe.mkdir()
    os.chmod(unsafe, 0o777)
    run = run_tlskit("serve", "--state-dir", str(unsafe), "--port", "1")
    assert_one_line_error(run, 2, "world-writable")
    assert list(unsafe.iterdir()) == []
    assert stat.S_IMODE(unsafe.stat().st_mode) == 0o777
