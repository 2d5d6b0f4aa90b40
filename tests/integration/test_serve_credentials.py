"""Every way an API client proves who it is, against a running `tlskit serve`: client certificates (mutual
TLS, with curl and openssl s_client), S3-style signatures (botocore's own signers), CData's token forms,
and ``GET /api/me``.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import openssl, require_binary
from peers_serve import start_serve


def issue_client(ca_dir: Path, out: Path, cn: str, *, eku=ExtendedKeyUsageOID.CLIENT_AUTH, days: int = 30,
                 not_before: dt.datetime | None = None, ca_key_path: Path | None = None,
                 authority_key_id: bool = True) -> tuple[Path, Path, x509.Certificate]:
    """A client certificate for ``cn`` signed by the CA in ``ca_dir`` (ca.pem, ca.key): PEM cert and key."""
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_key_path or ca_dir / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([eku]), critical=False))
    if authority_key_id:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                        critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_path, key_path = out / f"{cn}-{cert.serial_number}.pem", out / f"{cn}-{cert.serial_number}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, cert


def write_crl(ca_dir: Path, path: Path, revoked: list[x509.Certificate]) -> None:
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
               .last_update(now - dt.timedelta(minutes=1)).next_update(now + dt.timedelta(days=7)))
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(now).build())
    staged = path.with_suffix(".new")
    staged.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    staged.replace(path)


def local_ca(work: Path) -> Path:
    """The zero-config state dir's CA, made by a first start."""
    server = start_serve(work)
    server.stop()
    return work / "state" / "ca"


def curl_status(server, path: str, *args: str) -> tuple[int, str]:
    done = subprocess.run([require_binary("curl"), "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20",
                           "--resolve", f"localhost:{server.port}:127.0.0.1", "--cacert", str(server.ca), *args,
                           f"https://localhost:{server.port}{path}"], capture_output=True, text=True, timeout=60)
    body, _, code = done.stdout.rpartition("\n")
    return int(code or 0), body


# --- client certificates --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mtls(tmp_path_factory):
    work = tmp_path_factory.mktemp("mtls")
    ca = local_ca(work)
    certs = work / "certs"
    certs.mkdir()
    crl = work / "ca.crl"
    write_crl(ca, crl, [])
    server = start_serve(work, "--client-ca", str(ca / "ca.pem"), "--crl", str(crl), "--reload-interval", "0.2")
    server.extra.update(ca_dir=ca, certs=certs, crl=crl)
    assert server.add_token_user("alice", "GET,POST")
    yield server
    server.stop()


def test_a_client_certificate_authenticates_the_user_its_cn_names(mtls):
    cert, key, _ = issue_client(mtls.extra["ca_dir"], mtls.extra["certs"], "alice")
    status, body = curl_status(mtls, "/api/me", "--cert", str(cert), "--key", str(key))
    assert status == 200, body
    me = json.loads(body)
    assert me["user"] == "alice" and me["authenticated_by"] == "certificate" and me["methods"] == ["GET", "POST"]
    assert curl_status(mtls, "/api/products/1", "--cert", str(cert), "--key", str(key))[0] == 200
    # Privileges apply as to any credential.
    assert curl_status(mtls, "/api/products/1", "-X", "DELETE", "--cert", str(cert), "--key", str(key))[0] == 403


def test_a_certificate_openssl_accepts_but_tlskit_rules_refuse_is_a_wrong_password(mtls):
    # No authorityKeyIdentifier (RFC 5280 4.2.1.1): OpenSSL completes the handshake, tlskit's verdict refuses.
    cert, key, _ = issue_client(mtls.extra["ca_dir"], mtls.extra["certs"], "alice", authority_key_id=False)
    status, body = curl_status(mtls, "/api/me", "--cert", str(cert), "--key", str(key))
    wrong_status, wrong_body = curl_status(mtls, "/api/me", "-u", "alice:wrong")
    assert (status, body) == (401, wrong_body) and wrong_status == 401


def test_openssl_s_client_with_a_certificate_is_answered(mtls):
    cert, key, _ = issue_client(mtls.extra["ca_dir"], mtls.extra["certs"], "alice")
    request = b"GET /api/me HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    done = openssl("s_client", "-connect", f"127.0.0.1:{mtls.port}", "-servername", "localhost", "-quiet",
                   "-CAfile", str(mtls.ca), "-cert", str(cert), "-key", str(key), input=request, check=False)
    assert b"200 OK" in done.stdout and b'"user":"alice"' in done.stdout, done.stdout[-500:]


@pytest.mark.parametrize("case", ["expired", "not yet valid", "another CA", "serverAuth only"])
def test_a_bad_client_certificate_never_gets_an_http_answer(mtls, tmp_path, case):
    ca_dir = mtls.extra["ca_dir"]
    if case == "another CA":
        other = tmp_path / "other"
        other.mkdir()
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some other CA")])
        now = dt.datetime.now(dt.timezone.utc)
        root = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=9))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        (other / "ca.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
        (other / "ca.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
        cert, key_path, _ = issue_client(other, tmp_path, "alice")
    elif case == "expired":
        cert, key_path, _ = issue_client(ca_dir, tmp_path, "alice", days=1,
                                         not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3))
    elif case == "not yet valid":
        cert, key_path, _ = issue_client(ca_dir, tmp_path, "alice",
                                         not_before=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3))
    else:
        cert, key_path, _ = issue_client(ca_dir, tmp_path, "alice", eku=ExtendedKeyUsageOID.SERVER_AUTH)
    status, body = curl_status(mtls, "/api/me", "--cert", str(cert), "--key", str(key_path))
    assert status == 0 and body == "", (case, status, body)


def test_a_revoked_certificate_is_refused_within_seconds_of_the_new_crl(mtls, tmp_path):
    import time

    cert, key, issued = issue_client(mtls.extra["ca_dir"], tmp_path, "alice")
    assert curl_status(mtls, "/api/me", "--cert", str(cert), "--key", str(key))[0] == 200
    write_crl(mtls.extra["ca_dir"], mtls.extra["crl"], [issued])
    deadline = time.monotonic() + 8
    while curl_status(mtls, "/api/me", "--cert", str(cert), "--key", str(key))[0] != 0:
        assert time.monotonic() < deadline, "the revoked certificate is still accepted"
        time.sleep(0.2)
    write_crl(mtls.extra["ca_dir"], mtls.extra["crl"], [])


def test_without_a_certificate_other_credentials_still_work_when_optional(mtls):
    token = mtls.add_token_user("tokenuser")
    assert curl_status(mtls, "/api/me", "-H", f"Authorization: Bearer {token}")[0] == 200
    assert curl_status(mtls, "/api/me")[0] == 401


def test_a_certificate_for_an_unknown_user_is_401(mtls, tmp_path):
    cert, key, _ = issue_client(mtls.extra["ca_dir"], tmp_path, "nobody-by-that-name")
    status, body = curl_status(mtls, "/api/me", "--cert", str(cert), "--key", str(key))
    assert status == 401 and json.loads(body)["error"] == "unauthorized"


def test_the_upstream_gets_the_certificate_subject_and_fingerprint_never_the_clients_own_header(tmp_path):
    from peers_upstream import UpstreamApp

    ca = local_ca(tmp_path)
    with UpstreamApp.start() as app:
        server = start_serve(tmp_path, "--client-ca", str(ca / "ca.pem"), "--upstream", app.url)
        try:
            server.add_token_user("alice")
            cert, key, issued = issue_client(ca, tmp_path, "alice")
            status, _ = curl_status(server, "/echo", "--cert", str(cert), "--key", str(key),
                                    "-H", 'X-Forwarded-Client-Cert: Hash=forged;Subject="CN=admin"')
            assert status == 200
            sent = app.last().header("X-Forwarded-Client-Cert")
            fingerprint = issued.fingerprint(hashes.SHA256()).hex()
            assert sent == f'Hash={fingerprint};Subject="CN=alice"', sent
            assert app.last().header("X-Forwarded-User") == "alice"
        finally:
            server.stop()


def test_a_required_client_certificate_refuses_a_handshake_without_one(tmp_path):
    ca = local_ca(tmp_path)
    server = start_serve(tmp_path, "--client-ca", str(ca / "ca.pem"), "--client-cert", "required")
    try:
        token = server.add_token_user("alice")
        assert curl_status(server, "/api/me", "-H", f"Authorization: Bearer {token}")[0] == 0
        cert, key, _ = issue_client(ca, tmp_path, "alice")
        assert curl_status(server, "/api/me", "--cert", str(cert), "--key", str(key))[0] == 200
    finally:
        server.stop()


# --- S3-style keys ------------------------------------------------------------------------------------

def botocore_request(server, signer_name: str, access_key: str, secret: str, method: str = "GET",
                     path: str = "/api/products/1", body: bytes = b"", headers: dict | None = None):
    """Sign a request with botocore's own signer and send it (curl), returning (status, body)."""
    from botocore.auth import HmacV1Auth, S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"https://localhost:{server.port}{path}"
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    credentials = Credentials(access_key, secret)
    signer = {"v4": SigV4Auth(credentials, "execute-api", "eu-west-1"), "s3v4": S3SigV4Auth(credentials, "s3", "us-east-1"),
              "v2": HmacV1Auth(credentials)}[signer_name]
    signer.add_auth(request)
    args = ["-X", method]
    for name, value in request.headers.items():
        args += ["-H", f"{name}: {value.decode() if isinstance(value, bytes) else value}"]
    if body:
        args += ["--data-binary", body.decode()]
    return curl_status(server, path, *args)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = start_serve(tmp_path_factory.mktemp("s3"))
    server.extra["token"] = server.add_token_user("keyed", "GET,POST")
    yield server
    server.stop()


@pytest.mark.parametrize("signer", ["v4", "s3v4", "v2"])
def test_key_mode_a_token_as_the_access_key_authenticates_its_owner(s3, signer):
    status, body = botocore_request(s3, signer, s3.extra["token"], "any secret: key mode checks no signature",
                                    path="/api/me")
    assert status == 200, body
    assert json.loads(body)["user"] == "keyed" and json.loads(body)["authenticated_by"] == "s3"


@pytest.mark.parametrize("value", ["AWS4-HMAC-SHA256 Credential=x", "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, "
                                   "SignedHeaders=host, Signature=zz", "AWS nocolon", "AWS :", "AWS4-HMAC-SHA256"])
def test_a_malformed_s3_header_is_the_same_401_as_a_wrong_password(s3, value):
    status, body = curl_status(s3, "/api/products/1", "-H", f"Authorization: {value}")
    wrong_status, wrong_body = curl_status(s3, "/api/products/1", "-u", "nobody:wrong")
    assert (status, body) == (wrong_status, wrong_body) == (401, wrong_body)


def test_an_unknown_access_key_is_401(s3):
    status, _ = botocore_request(s3, "v4", "AKIDNOTATOKEN", "secret", path="/api/me")
    assert status == 401


# --- CData's token forms and /api/me -------------------------------------------------------------------

@pytest.fixture(scope="module")
def cdata(tmp_path_factory):
    server = start_serve(tmp_path_factory.mktemp("cdata"), "--allow-query-token")
    server.extra["token"] = server.add_token_user("cdata", "all")
    yield server
    server.stop()


def test_the_x_cdata_authtoken_header_is_accepted_by_default(s3):
    assert curl_status(s3, "/api/me", "-H", f"X-CData-Authtoken: {s3.extra['token']}")[0] == 200


def test_at_authtoken_in_the_query(cdata):
    status, body = curl_status(cdata, "/api/products/1?@authtoken=" + quote(cdata.extra["token"]))
    assert status == 200 and json.loads(body)["id"] == 1
    log = cdata.access_log("GET /api/products/1?authtoken=REDACTED ")
    assert cdata.extra["token"] not in log


def test_a_form_post_carries_its_token_and_the_other_fields_are_the_row(cdata):
    form = f"authtoken={quote(cdata.extra['token'])}&name=Form+lamp&price=12.5&stock=4"
    status, body = curl_status(cdata, "/api/products", "-X", "POST", "-H",
                               "Content-Type: application/x-www-form-urlencoded", "--data-binary", form)
    assert status == 201, body
    row = json.loads(body)
    assert row["name"] == "Form lamp" and row["price"] == 12.5 and row["stock"] == 4
    assert "authtoken" not in body


def test_a_form_post_without_its_token_is_401_and_a_json_type_is_still_required_otherwise(cdata):
    assert curl_status(cdata, "/api/products", "-X", "POST", "-H", "Content-Type: application/x-www-form-urlencoded",
                       "--data-binary", "name=x&price=1&stock=1")[0] == 401
    assert curl_status(cdata, "/api/products", "-X", "POST", "-H", f"Authorization: Bearer {cdata.extra['token']}",
                       "-H", "Content-Type: application/x-www-form-urlencoded",
                       "--data-binary", "name=y&price=1&stock=1")[0] == 415


def test_form_tokens_need_allow_query_token(s3):
    form = f"authtoken={quote(s3.extra['token'])}&name=z&price=1&stock=1"
    assert curl_status(s3, "/api/products", "-X", "POST", "-H", "Content-Type: application/x-www-form-urlencoded",
                       "--data-binary", form)[0] == 401


def test_api_me_reports_the_user_the_limits_and_what_is_left(tmp_path):
    server = start_serve(tmp_path, "--max-requests", "5")
    try:
        token = server.add_token_user("metered", "GET,POST")
        answers = [json.loads(curl_status(server, "/api/me", "-H", f"Authorization: Bearer {token}")[1])
                   for _ in range(2)]
        assert answers[0] == {"user": "metered", "authenticated_by": "bearer", "methods": ["GET", "POST"],
                              "limits": {"max_requests": 5, "max_concurrent": 0}, "remaining_requests": 4,
                              "in_flight": 1}
        assert answers[1]["remaining_requests"] == 3
    finally:
        server.stop()
