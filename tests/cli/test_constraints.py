"""A local CA limited to some names: critical nameConstraints that openssl and `tlskit chain` enforce."""

from __future__ import annotations

import datetime as dt

import pytest

from conftest import assert_one_line_error, openssl, run_tlskit


@pytest.fixture
def constrained(tmp_path):
    run = run_tlskit("ca", "init", "--dir", "ca", "--cn", "Team CA", "--permit-dns", ".example.test",
                     "--permit-ip", "10.0.0.0/8", "--exclude-dns", "secret.example.test", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.json["name_constraints"] == ["permitted DNS:example.test", "excluded DNS:secret.example.test",
                                            "permitted IP:10.0.0.0/8"]
    return tmp_path


def _csr(work, cn: str, *sans: str) -> str:
    name = cn.replace("*", "star")
    args = ["csr", "--cn", cn, "--out", f"{name}.csr", "--key-out", f"{name}.key"]
    for san in sans:
        args += ["--san", san]
    assert run_tlskit(*args, cwd=work).returncode == 0
    return f"{name}.csr"


def test_the_extension_is_critical_and_openssl_reads_it(constrained):
    text = openssl("x509", "-in", str(constrained / "ca" / "ca.pem"), "-noout", "-ext", "nameConstraints").stdout.decode()
    assert "Name Constraints: critical" in text
    assert "DNS:example.test" in text and "IP:10.0.0.0/255.0.0.0" in text and "DNS:secret.example.test" in text


def test_inspect_shows_the_subtrees(constrained):
    run = run_tlskit("inspect", "ca/ca.pem", cwd=constrained)
    assert ("nameConstraints (critical): permitted DNS:example.test, excluded DNS:secret.example.test, "
            "permitted IP:10.0.0.0/8") in run.stdout


def test_names_inside_are_signed_and_verify(constrained):
    csr = _csr(constrained, "api.example.test", "example.test", "10.1.2.3")
    run = run_tlskit("ca", "sign", csr, "--ca-dir", "ca", "--out", "ok.pem", cwd=constrained)
    assert run.returncode == 0, run.stderr
    assert b": OK" in openssl("verify", "-CAfile", "ca/ca.pem", "ok.pem", cwd=constrained).stdout
    chain = run_tlskit("chain", "ok.pem", "--ca-file", "ca/ca.pem", cwd=constrained)
    assert chain.returncode == 0, chain.stderr


@pytest.mark.parametrize("cn, sans, why", [
    ("www.other.test", (), "not within example.test"),
    ("api.example.test", ("192.168.1.1",), "not within 10.0.0.0/8"),
    ("x.secret.example.test", (), "excluded by secret.example.test"),
    ("api.example.test", ("evilexample.test",), "not within"),
])
def test_ca_sign_refuses_names_outside(constrained, cn, sans, why):
    csr = _csr(constrained, cn, *sans)
    run = run_tlskit("ca", "sign", csr, "--ca-dir", "ca", "--out", "bad.pem", cwd=constrained)
    assert_one_line_error(run, 2, "outside the name constraints")
    assert why in run.stderr
    assert not (constrained / "bad.pem").exists()


def test_a_leaf_made_by_other_means_is_rejected_by_openssl_and_chain(constrained):
    csr = _csr(constrained, "www.other.test")
    (constrained / "ext.cnf").write_text("subjectAltName=DNS:www.other.test\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", csr, "-CA", "ca/ca.pem", "-CAkey", "ca/ca.key", "-CAcreateserial",
            "-days", "5", "-extfile", "ext.cnf", "-out", "forged.pem", cwd=constrained)
    verdict = openssl("verify", "-CAfile", "ca/ca.pem", "forged.pem", check=False, cwd=constrained)
    assert verdict.returncode != 0 and b"permitted subtree violation" in verdict.stdout + verdict.stderr
    chain = run_tlskit("chain", "forged.pem", "--ca-file", "ca/ca.pem", cwd=constrained)
    assert chain.returncode == 1, (chain.stdout, chain.stderr)
    assert "name constraint" in chain.stderr.lower()


def test_a_bad_constraint_is_one_line(tmp_path):
    for flag, value in (("--permit-ip", "10.0.0.1/8"), ("--permit-dns", "*.example.test"), ("--exclude-dns", "a..b")):
        run = run_tlskit("ca", "init", "--dir", "ca", "--cn", "x", flag, value, cwd=tmp_path)
        assert_one_line_error(run, 2, flag)
    assert not (tmp_path / "ca" / "ca.key").exists()


def test_hours_make_a_short_lived_leaf(tmp_path):
    assert run_tlskit("ca", "init", "--dir", "ca", "--cn", "x", cwd=tmp_path).returncode == 0
    csr = _csr(tmp_path, "short.example.test")
    run = run_tlskit("ca", "sign", csr, "--ca-dir", "ca", "--hours", "6", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    end = dt.datetime.fromisoformat(run.json["not_after"])
    left = end - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(hours=5, minutes=55) < left <= dt.timedelta(hours=6)
    dates = openssl("x509", "-in", str(tmp_path / "short.example.test.pem"), "-noout", "-enddate").stdout.decode()
    assert end.strftime("%b %e %H:%M") in dates.replace("  ", " ") or end.strftime("%H:%M:%S") in dates
    assert_one_line_error(run_tlskit("ca", "sign", csr, "--ca-dir", "ca", "--hours", "0", "--force", cwd=tmp_path),
                          2, "--hours 0")
