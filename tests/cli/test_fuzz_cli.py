"""Fuzzing the command line and the local CA: fuzzed subjects, SANs, key types and files give a value or one
`error:` line with exit 2, never a traceback; `ca sign` signs only CSRs whose signature holds.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import CLI, pem_like, san_like, subject_like
from conftest import assert_one_line_error, openssl, run_tlskit
from test_issue import csr_signature_holds

# --- the local CA signs only CSRs whose signature holds -----------------------------------------------


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory):
    d = tmp_path_factory.mktemp("localca")
    made = run_tlskit("ca", "init", "--dir", str(d / "ca"), "--cn", "Fuzz Local CA")
    assert made.returncode == 0, made.stderr
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            str(d / "k.pem"), "-subj", "/CN=signme.example", "-addext", "subjectAltName=DNS:signme.example",
            "-outform", "DER", "-out", str(d / "r.der"))
    return {"dir": d, "der": (d / "r.der").read_bytes()}


@CLI
@given(data=st.data())
def test_ca_sign_refuses_tampered_csrs(local_ca, tmp_path_factory, data):
    """Bytes of a real CSR flipped: `tlskit ca sign` either refuses (one line, exit 1 or 2, nothing
    written) or the CSR still verifies with openssl, so a CA never signs a request whose proof of
    possession is broken (e.g. a changed subject or SAN)."""
    blob = bytearray(local_ca["der"])
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(4, len(blob) - 1))
        blob[position] ^= 1 << data.draw(st.integers(0, 7))
    work = tmp_path_factory.mktemp("sign")
    (work / "t.csr").write_bytes(bytes(blob))
    run = run_tlskit("ca", "sign", "t.csr", "--ca-dir", str(local_ca["dir"] / "ca"), "--out", "t.pem", cwd=work)
    _no_traceback(run)
    if run.returncode == 0:
        assert csr_signature_holds(work / "t.csr", der=True), "tlskit signed a CSR whose signature fails"
    else:
        assert run.returncode in (1, 2), run.stderr
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
        assert not (work / "t.pem").exists()


# --- the same inputs at the command line -------------------------------------------------------


def _argv_safe(text: str) -> bool:
    """What a shell can pass as one argument: no NUL, UTF-8 encodable, not taken for an option."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text and not text.startswith("-")


def _no_traceback(run) -> None:
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    assert run.returncode != 70, run.stderr  # 70 is main()'s "unexpected exception": a bug


@CLI
@given(subject=subject_like().filter(_argv_safe), san=san_like().filter(_argv_safe))
def test_cli_csr_with_fuzzed_subject_and_san(tmp_path_factory, subject, san):
    directory = tmp_path_factory.mktemp("cli")
    run = run_tlskit("csr", "--subject", subject, "--san", san, "--out", "f.csr", "--key-out", "f.key",
                     cwd=directory)
    _no_traceback(run)
    if run.returncode == 0:
        # Whatever tlskit accepted, openssl reads as a valid, self-consistent CSR.
        assert csr_signature_holds(directory / "f.csr")
    else:
        assert_one_line_error(run, 2)
        assert os.listdir(directory) == []


@CLI
@given(blob=st.one_of(st.binary(max_size=400), pem_like()))
def test_cli_inspect_of_fuzzed_files(tmp_path_factory, blob):
    directory = tmp_path_factory.mktemp("inspect")
    (directory / "blob.pem").write_bytes(blob)
    run = run_tlskit("inspect", "blob.pem", "--json", cwd=directory)
    _no_traceback(run)
    if run.returncode != 0:
        assert_one_line_error(run, 2, contains="blob.pem")


@CLI
@given(key_type=st.text(max_size=20).filter(_argv_safe))
def test_cli_csr_with_fuzzed_key_type(tmp_path_factory, key_type):
    directory = tmp_path_factory.mktemp("keytype")
    run = run_tlskit("csr", "--key-type", key_type, "--cn", "fuzz.example", "--out", "k.csr", cwd=directory)
    _no_traceback(run)
    if run.returncode != 0:
        assert_one_line_error(run, 2)
        assert os.listdir(directory) == []
