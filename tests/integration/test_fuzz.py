"""Fuzzing everything users and peers feed tlskit: names, keys, files, chains, targets, HTTP requests.

The contract under test (DESIGN.md): whatever a user types or points tlskit at, the result is either a
value or a TlskitError with a one-line message, never another exception and never a traceback; the
server never answers 5xx to a client's mistake and a bad credential is always a 401. Libraries are
driven in-process (thousands of inputs in seconds); a few CLI runs check the `error: ...` line and
exit code; the HTTPS API is driven over raw TLS so odd bytes reach `tlskit serve` unchanged; hostile
peers (a junk TLS server for `probe`, a broken upstream for the proxy) check the other direction.
"""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import assert_one_line_error, openssl, run_tlskit
from peers_rawhttp import request as raw_request
from peers_rawhttp import tls_context
from tlskit.errors import InputError, TlskitError

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Each CLI example starts a Python process (~0.3 s); a handful per test keeps the file bounded.
CLI = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                     HealthCheck.function_scoped_fixture])

FIELD_NAMES = ["C", "ST", "L", "O", "OU", "CN", "emailAddress", "commonName", "E", "S", "X", "cn", ""]
# Characters that matter to the subject syntax, plus a spread of everything else.
SUBJECT_CHARS = st.one_of(st.sampled_from(list("/=,\\+ \t\n\"'.@-*")), st.characters())


def subject_like() -> st.SearchStrategy[str]:
    """Strings shaped like subjects (so the parser gets past the first check) mixed with raw text."""
    value = st.text(SUBJECT_CHARS, max_size=80)
    slash = st.lists(st.tuples(st.sampled_from(FIELD_NAMES), value), max_size=8).map(
        lambda parts: "".join(f"/{k}={v}" for k, v in parts))
    rfc4514 = st.lists(st.tuples(st.sampled_from(FIELD_NAMES), value), max_size=8).map(
        lambda parts: ",".join(f"{k}={v}" for k, v in parts))
    return st.one_of(slash, rfc4514, st.text(SUBJECT_CHARS, max_size=120))


def san_like() -> st.SearchStrategy[str]:
    prefixes = st.sampled_from(["", "DNS:", "IP:", "email:", "URI:", "IP Address:", "rfc822:", "dns:", "X:"])
    bodies = st.one_of(
        st.text(st.sampled_from(list("abcXYZ019-.*_:@/[]%")) | st.characters(), max_size=80),
        st.from_regex(r"[a-z0-9*-]{0,70}(\.[a-z0-9-]{0,70}){0,5}\.?", fullmatch=True),
        st.ip_addresses().map(str),
        st.emails(),
    )
    return st.tuples(prefixes, bodies).map("".join)


# --- subjects ----------------------------------------------------------------------------------


@FAST
@given(subject_like())
@example("/CN=a\\")
@example("/CN=\\/")
@example("CN=x,CN=y")
@example("/C=ÿÿ/CN=x")
@example("/CN=" + "x" * 65)
@example("/emailAddress=é@x")
def test_parse_subject_returns_fields_or_input_error(text):
    from tlskit.names import parse_subject, subject_to_name

    try:
        subject = parse_subject(text)
    except InputError as exc:
        assert "\n" not in exc.message and exc.message
        return
    # Accepted means usable: the fields become an X.509 name without cryptography objecting later.
    name = subject_to_name(subject)
    assert len(list(name)) == len(subject)


@FAST
@given(subject_like())
@example("/CN=a\\/b/O=x\\,y")
@example("CN=a/b,O=x\\,y")
def test_accepted_subject_round_trips_through_openssl_slash_form(text):
    """What `tlskit inspect` prints (`/C=../CN=..`) parses back to the same subject.

    A literal backslash in a value is left out: the slash form escapes only '/', exactly like
    `openssl -nameopt compat`, so a value holding a backslash does not survive the trip in either tool.
    """
    from tlskit.names import name_to_slash, parse_subject, subject_to_name

    try:
        subject = parse_subject(text)
    except InputError:
        return
    if any("\\" in value for value in subject.values()):
        return
    slash = name_to_slash(subject_to_name(subject))
    again = parse_subject(slash)
    assert {k: (v.upper() if k == "C" else v) for k, v in subject.items()} == again


# --- SANs --------------------------------------------------------------------------------------


@FAST
@given(san_like())
@example("DNS:")
@example("*.")
@example("xn--")
@example("IP:[::1]")
@example("ä" * 64 + ".example")
@example("URI:a:")
def test_parse_san_returns_a_name_or_input_error(text):
    from cryptography import x509

    from tlskit.names import parse_san, san_to_text

    try:
        name = parse_san(text)
    except InputError as exc:
        assert "\n" not in exc.message and exc.message
        return
    # Accepted means it goes into a real extension, and its printed form reads back as the same name.
    x509.SubjectAlternativeName([name])
    assert parse_san(san_to_text(name)) == name


@FAST
@given(st.lists(san_like(), max_size=6))
def test_parse_sans_list_never_crashes(values):
    from tlskit.names import parse_sans

    try:
        names = parse_sans(values)
    except InputError:
        return
    assert len(names) == len(set(names))


# --- key types ---------------------------------------------------------------------------------


@FAST
@given(st.one_of(
    st.tuples(st.sampled_from(["rsa", "RSA", "ec", "ecdsa", "ed25519", "dsa", "", " ec"]),
              st.sampled_from(["", ":", ":2048", ":4096", ":1024", ":p256", ":P-384", ":secp521r1", ":x", ":-1", ":２０４８"]),
              ).map("".join),
    st.text(max_size=30),
))
@example("rsa:２０４８")  # str.isdigit() is true for full-width digits
@example("rsa:²")
def test_keyspec_parse_is_total_and_round_trips(text):
    from tlskit.keys import KeySpec

    try:
        spec = KeySpec.parse(text)
    except InputError as exc:
        assert "\n" not in exc.message
        return
    assert KeySpec.parse(str(spec)) == spec


# --- PEM and DER blobs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_objects(tmp_path_factory):
    """One real certificate, CSR and key made by the openssl binary, as PEM and DER."""
    directory = tmp_path_factory.mktemp("objects")
    key, csr, cert = directory / "k.pem", directory / "r.csr", directory / "c.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=fuzz",
            "-keyout", str(key), "-out", str(cert), "-days", "2")
    openssl("req", "-new", "-key", str(key), "-subj", "/CN=fuzz", "-out", str(csr))
    pem = {"cert": cert.read_bytes(), "csr": csr.read_bytes(), "key": key.read_bytes()}
    der = {
        "cert": openssl("x509", "-in", str(cert), "-outform", "DER").stdout,
        "csr": openssl("req", "-in", str(csr), "-outform", "DER").stdout,
        "key": openssl("pkey", "-in", str(key), "-outform", "DER").stdout,
    }
    return {"pem": pem, "der": der}


LABELS = ["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE", "CERTIFICATE REQUEST",
          "NEW CERTIFICATE REQUEST", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY",
          "PUBLIC KEY", "RSA PUBLIC KEY", "EC PARAMETERS", "DSA PRIVATE KEY", "PKCS7", "X"]


@st.composite
def pem_like(draw) -> bytes:
    """PEM blocks with real labels around random, DER-looking or base64-broken bodies."""
    blocks = []
    for _ in range(draw(st.integers(1, 3))):
        label = draw(st.sampled_from(LABELS)).encode()
        body = draw(st.one_of(
            st.binary(max_size=300),
            st.binary(max_size=300).map(lambda b: b"\x30\x82" + len(b).to_bytes(2, "big") + b),
            st.binary(max_size=40).map(lambda b: b"\x30" + bytes([len(b)]) + b),
        ))
        encoded = base64.encodebytes(body)
        encoded = draw(st.one_of(st.just(encoded), st.binary(max_size=80), st.just(encoded[:-3])))
        end = draw(st.sampled_from([label, label, b"CERTIFICATE", b""]))
        newline = draw(st.sampled_from([b"\n", b"\r\n"]))
        blocks.append(b"-----BEGIN " + label + b"-----" + newline + encoded + b"-----END " + end + b"-----" + newline)
    junk = draw(st.binary(max_size=20))
    return junk + b"".join(blocks)


def _check_bundle_contract(data: bytes, passphrase: bytes | None = None) -> None:
    from tlskit.files import parse_bundle

    try:
        bundle = parse_bundle(data, "blob", passphrase)
    except TlskitError as exc:
        assert isinstance(exc, InputError)
        assert "\n" not in exc.message and "blob" in exc.message
        return
    assert len(bundle) >= 1


@FAST
@given(st.binary(max_size=600))
@example(b"")
@example(b"-----BEGIN")
@example(b"\x30\x80")
@example(b"\x30\x84\xff\xff\xff\xff")
@example(b"-----BEGIN TRUSTED CERTIFICATE-----\n\n-----END TRUSTED CERTIFICATE-----\n")
@example(b"-----BEGIN TRUSTED CERTIFICATE-----\nMIA=\n-----END TRUSTED CERTIFICATE-----\n")
@example(b"-----BEGIN TRUSTED CERTIFICATE-----\nMIQ=\n-----END TRUSTED CERTIFICATE-----\n")
@example(b"-----BEGIN TRUSTED CERTIFICATE-----\n!!!!\n-----END TRUSTED CERTIFICATE-----\n")
def test_parse_bundle_random_bytes(data):
    _check_bundle_contract(data)


@FAST
@given(pem_like(), st.sampled_from([None, b"secret"]))
def test_parse_bundle_pem_like_blobs(data, passphrase):
    _check_bundle_contract(data, passphrase)


@FAST
@given(st.data())
def test_parse_bundle_mutated_real_objects(real_objects, data):
    """Real openssl output with bytes flipped, cut or inserted: the shapes a bad copy-paste produces."""
    form = data.draw(st.sampled_from(["pem", "der"]))
    kind = data.draw(st.sampled_from(["cert", "csr", "key"]))
    blob = bytearray(real_objects[form][kind])
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        position = data.draw(st.integers(0, max(len(blob) - 1, 0)))
        if action == "flip" and blob:
            blob[position] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "cut":
            del blob[position:position + data.draw(st.integers(1, 16))]
        elif action == "insert":
            blob[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del blob[position:]
    _check_bundle_contract(bytes(blob), data.draw(st.sampled_from([None, b"pw"])))


def test_parse_bundle_accepts_the_unmutated_objects(real_objects):
    """The fuzz above is only meaningful if the originals parse: the same objects, every form."""
    from tlskit.files import parse_bundle

    for form in ("pem", "der"):
        assert len(parse_bundle(real_objects[form]["cert"]).certificates) == 1
        assert len(parse_bundle(real_objects[form]["csr"]).csrs) == 1
        assert len(parse_bundle(real_objects[form]["key"]).private_keys) == 1
    everything = b"".join(real_objects["pem"].values())
    bundle = parse_bundle(everything)
    assert (len(bundle.certificates), len(bundle.csrs), len(bundle.private_keys)) == (1, 1, 1)


# --- chains: any pile of certificates, in any order ------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """root -> inter1 -> inter2 -> leaf, plus an unrelated self-signed certificate; all made by openssl."""
    d = tmp_path_factory.mktemp("pki")
    ext = d / "ext.cnf"
    ext.write_text("[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
                   "[leaf]\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
                   "subjectAltName=DNS:fuzz.example\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", str(d / "root.key"), "-out", str(d / "root.pem"), "-subj", "/CN=fuzz root",
            "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    issuer = "root"
    for name, section, subject in (("inter1", "ca", "/CN=fuzz inter 1"), ("inter2", "ca", "/CN=fuzz inter 2"),
                                   ("leaf", "leaf", "/CN=fuzz.example")):
        openssl("req", "-new", *ec, "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"), "-subj", subject)
        openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / f"{issuer}.pem"), "-CAkey",
                str(d / f"{issuer}.key"), "-CAcreateserial", "-out", str(d / f"{name}.pem"), "-days", "20",
                "-extfile", str(ext), "-extensions", section)
        issuer = name
    openssl("req", "-x509", *ec, "-keyout", str(d / "other.key"), "-out", str(d / "other.pem"), "-subj",
            "/CN=unrelated", "-days", "30")
    from cryptography import x509

    certs = {n: x509.load_pem_x509_certificate((d / f"{n}.pem").read_bytes())
             for n in ("root", "inter1", "inter2", "leaf", "other")}
    return {"dir": d, "certs": certs}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_build_chain_orders_any_pile_or_says_why_not(pki, data):
    """Any subset of the PKI, shuffled and duplicated, with or without the root as trust anchor: a
    report whose links each are issued by the next, or a TlskitError (a gap, no leaf) - nothing else."""
    from tlskit.chain import Input, build_chain
    from tlskit.trust import TrustStore

    certs = pki["certs"]
    names = data.draw(st.lists(st.sampled_from(sorted(certs)), min_size=1, max_size=7))
    inputs = [Input(certs[n], f"{n}.pem") for n in names]
    trust = data.draw(st.sampled_from([None, "root"]))
    store = TrustStore.from_file(pki["dir"] / "root.pem") if trust else None
    try:
        report = build_chain(inputs, store, host=data.draw(st.sampled_from([None, "fuzz.example", "other.example"])),
                             include_root=data.draw(st.booleans()))
    except TlskitError as exc:
        assert "\n" not in exc.message and exc.message
        return
    links = [link.certificate for link in report.links]
    assert links[0] in [i.certificate for i in inputs]  # the chain starts at a certificate it was given
    for child, parent in zip(links, links[1:]):
        assert child.issuer == parent.subject
        child.verify_directly_issued_by(parent)
    if store is not None and report.verified and certs["leaf"] in [i.certificate for i in inputs]:
        # Verified with the leaf given means the whole path to the root was found in the pile.
        assert links[0] == certs["leaf"] and certs["inter1"] in links and certs["inter2"] in links


# --- password hashes and htpasswd files ---------------------------------------------------------------


@FAST
@given(stored=st.one_of(
    st.text(max_size=80),
    st.tuples(st.sampled_from(["$2y$", "$2b$", "$2a$", "$apr1$", "{SHA}", "$argon2id$", "$argon2i$v=19$"]),
              st.text(max_size=70)).map("".join),
    # bcrypt-shaped with a cheap cost, so every example runs the real check
    st.tuples(st.sampled_from(["$2y$04$", "$2b$05$"]), st.text("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                                                             min_size=0, max_size=60)).map("".join),
), password=st.text(max_size=100))
@example(stored="$apr1$", password="x")
@example(stored="$2y$04$" + "a" * 53, password="x" * 100)
def test_verify_password_is_a_yes_or_no_for_any_stored_hash(stored, password):
    """A hash imported from someone's htpasswd may be anything: checking it answers False, never raises
    (a raise here is a 500 on the login path)."""
    from tlskit.server.users import verify_password

    assert verify_password(stored, password) is False  # no garbage hash matches; a raise fails too


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(
    st.text(max_size=60),
    st.tuples(st.text(max_size=12), st.sampled_from(["$apr1$salt$abc", "{SHA}x", "$2y$05$abc", "plain", "", "$argon2id$x"]),
              st.sampled_from(["", ":comment", ":"])).map(lambda t: f"{t[0]}:{t[1]}{t[2]}"),
), max_size=8))
def test_htpasswd_import_takes_or_skips_each_line(tmp_path_factory, lines):
    from tlskit.server.users import UserStore

    store = UserStore(tmp_path_factory.mktemp("users") / "users.sqlite")
    text = "\n".join(lines)
    try:
        report = store.import_htpasswd(text)
    except TlskitError as exc:
        assert "\n" not in exc.message
        return
    names = {user.name for user in store.all()}
    assert set(report.added) | set(report.updated) <= names


# --- serve's flags and user settings ------------------------------------------------------------------


@FAST
@given(kind=st.sampled_from(["allow", "key_headers", "upstream", "methods", "name"]), values=st.lists(st.one_of(
    st.text(max_size=40),
    st.ip_addresses().map(str),
    st.tuples(st.ip_addresses().map(str), st.integers(-1, 200)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.sampled_from(["http://127.0.0.1:8000/app/", "https://[::1]:9000", "http://[", "http://:0", "ftp://x",
                     "http://host:99999", "GET,POST", "all", "*", "get, delete", "X-API-Key", "Authorization",
                     "Host", "bad header", "0.0.0.0/0", "::/0", "10.0.0.1/8", "localhost"]),
), min_size=1, max_size=4))
@example(kind="upstream", values=["http://["])
def test_serve_settings_parse_or_refuse(kind, values):
    """--allow, --key-header, --upstream, --methods and user names: a value or a one-line InputError."""
    from tlskit.server.config import parse_allow, parse_key_headers
    from tlskit.server.proxy import parse_upstream
    from tlskit.server.users import check_name, parse_methods

    parse = {"allow": parse_allow, "key_headers": parse_key_headers, "methods": parse_methods,
             "upstream": lambda v: parse_upstream(v[0]), "name": lambda v: check_name(v[0])}[kind]
    try:
        parse(values)
    except InputError as exc:
        assert "\n" not in exc.message and exc.message


# --- probe: what a user types as a target, and what a hostile server sends back ----------------------


@FAST
@given(st.one_of(st.text(max_size=60), st.tuples(
    st.sampled_from(["", "https://", "http://", "ftp://", "[", "["]),
    st.one_of(st.from_regex(r"[a-z0-9.-]{0,30}", fullmatch=True), st.ip_addresses().map(str)),
    st.sampled_from(["", ":", ":443", ":0", ":65536", ":-1", ":x", "]:443", "]", "/path", ":443/x?y"]),
).map("".join)))
def test_parse_target_returns_a_target_or_input_error(text):
    from tlskit.probe.target import parse_target

    try:
        target = parse_target(text)
    except InputError as exc:
        assert "\n" not in exc.message
        return
    assert target.host and 0 < target.port < 65536


class HostileServer:
    """A loopback TCP server that answers every connection with ``payload`` and closes: a TLS server
    gone wrong, a non-TLS service, or a STARTTLS banner full of junk."""

    def __init__(self) -> None:
        import socket
        import threading

        self.payload = b""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        import socket

        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(0.5)
                try:
                    conn.sendall(self.payload)
                    conn.shutdown(socket.SHUT_WR)  # then EOF: the client never waits for its timeout
                    conn.recv(65536)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def hostile():
    server = HostileServer()
    yield server
    server.close()


def tls_record_like() -> st.SearchStrategy[bytes]:
    """Bytes that start like a TLS record (handshake, alert) so the client's parser goes deeper."""
    return st.tuples(st.sampled_from([b"\x16\x03\x03", b"\x16\x03\x01", b"\x15\x03\x03", b"\x17\x03\x03", b"\x16\x03\x04"]),
                     st.binary(max_size=200)).map(lambda t: t[0] + len(t[1]).to_bytes(2, "big") + t[1])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(st.binary(max_size=300), tls_record_like(),
                         st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass"))),
       starttls=st.sampled_from([None, None, "smtp", "imap", "pop3", "ftp", "postgres"]))
@example(payload=b"220 ok\r\n250 STARTTLS\r\n220 go\r\n", starttls="smtp")
@example(payload=b"S", starttls="postgres")
@example(payload=b"HTTP/1.1 400 Bad Request\r\n\r\n", starttls=None)
def test_probe_of_a_hostile_server_is_a_network_or_verify_error(hostile, payload, starttls):
    from tlskit.errors import NetworkError, VerifyError
    from tlskit.probe.session import ProbeOptions, probe

    hostile.payload = payload
    try:
        probe(ProbeOptions("127.0.0.1", hostile.port, servername="localhost", timeout=3, starttls=starttls))
    except (NetworkError, VerifyError) as exc:
        assert "\n" not in exc.message and exc.message
        return
    raise AssertionError(f"probe of a server sending {payload[:40]!r} succeeded")


# --- the reverse proxy in front of a broken upstream ---------------------------------------------------


@pytest.fixture(scope="module")
def proxy_to_hostile(tmp_path_factory, hostile):
    from peers_serve import start_serve

    work = tmp_path_factory.mktemp("proxy")
    served = start_serve(work, "--upstream", f"http://127.0.0.1:{hostile.port}", "--upstream-timeout", "3")
    try:
        served.extra["token"] = served.add_token_user("proxied", methods="all")
        served.extra["context"] = tls_context(served.ca)
        yield served
    finally:
        served.stop()
        assert "Traceback" not in served.stderr(), served.stderr()[-3000:]


def http_response_like() -> st.SearchStrategy[bytes]:
    status = st.one_of(st.integers(100, 599).map(str), st.text(max_size=5)).map(str.encode)
    header = st.tuples(st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"Connection", b"X-A", b"", b"Content-Length "]),
                       st.one_of(st.sampled_from([b"chunked", b"-1", b"99999999999999999999", b"5", b"0", b"close"]),
                                 st.binary(max_size=20))).map(lambda h: h[0] + b": " + h[1])
    return st.tuples(st.sampled_from([b"HTTP/1.1 ", b"HTTP/1.0 ", b"HTTP/2 ", b"ICY ", b""]), status,
                     st.lists(header, max_size=4), st.binary(max_size=100)).map(
        lambda r: r[0] + r[1] + b" X\r\n" + b"".join(h + b"\r\n" for h in r[2]) + b"\r\n" + r[3])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(http_response_like(), st.binary(max_size=200)), method=st.sampled_from(["GET", "POST"]))
@example(payload=b"", method="GET")
@example(payload=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", method="GET")
@example(payload=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", method="GET")
def test_proxy_answers_a_broken_upstream_with_502_not_500(proxy_to_hostile, hostile, payload, method):
    hostile.payload = payload
    auth = [(b"Authorization", b"Bearer " + proxy_to_hostile.extra["token"].encode())]
    reply = _call(proxy_to_hostile, method, "/anything?x=1", auth, b"{}" if method == "POST" else None)
    upstream_status = None
    first_line = payload.split(b"\r\n", 1)[0].split(b" ")
    if len(first_line) > 1 and first_line[0].startswith(b"HTTP/1.") and first_line[1].isdigit():
        upstream_status = int(first_line[1])
    # A broken answer is 502 (or 504 when it never completes); a well-formed one is passed on as it was.
    assert reply.status in {502, 504} or reply.status == upstream_status, (reply.status, payload[:80], reply.body[:200])
    if reply.status >= 500 and reply.status != upstream_status:
        assert reply.header("strict-transport-security"), reply.headers


@pytest.mark.parametrize("payload", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhello",
], ids=["content-length", "chunked-no-end", "chunk-cut"])
def test_proxy_never_presents_a_cut_upstream_body_as_complete(proxy_to_hostile, hostile, payload):
    """An upstream that dies mid-body must not become a complete-looking 200: the client has to be able
    to tell (a short Content-Length body, or chunked without its final 0-chunk), or get a 502."""
    import socket
    import ssl

    hostile.payload = payload
    context = proxy_to_hostile.extra["context"]
    request_bytes = (b"GET /cut HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: Bearer "
                     + proxy_to_hostile.extra["token"].encode() + b"\r\n\r\n")
    data = b""
    with socket.create_connection(("127.0.0.1", proxy_to_hostile.port), timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(request_bytes)
            while True:
                try:
                    chunk = tls.recv(65536)
                except (ssl.SSLError, ConnectionResetError):
                    break
                if not chunk:
                    break
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    if status == 502:
        return
    headers = {line.split(b":")[0].strip().lower(): line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")[1:]}
    if b"content-length" in headers:
        assert len(body) < int(headers[b"content-length"]), data
    else:
        assert headers.get(b"transfer-encoding") == b"chunked", data
        assert not body.endswith(b"0\r\n\r\n"), data


# --- the local CA signs only CSRs whose signature holds -----------------------------------------------


def csr_signature_holds(path, der: bool = False) -> bool:
    """openssl's verdict on a CSR's self-signature. `openssl req -verify` exits 0 even when the
    signature is wrong (OpenSSL 3.0), so the verdict is read from its message."""
    run = openssl("req", *(["-inform", "DER"] if der else []), "-in", str(path), "-verify", "-noout", check=False)
    text = (run.stdout + run.stderr).decode(errors="replace")
    return run.returncode == 0 and "verify OK" in text and "failure" not in text





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


def test_ca_sign_refuses_a_csr_with_a_swapped_subject(local_ca, tmp_path):
    """The classic forgery: same key and signature, another name. The signature no longer covers it."""
    der = local_ca["der"]
    forged = der.replace(b"signme.example", b"signme.exampl3")
    assert forged != der
    (tmp_path / "f.csr").write_bytes(forged)
    assert not csr_signature_holds(tmp_path / "f.csr", der=True)
    run = run_tlskit("ca", "sign", "f.csr", "--ca-dir", str(local_ca["dir"] / "ca"), "--out", "f.pem", cwd=tmp_path)
    assert run.returncode in (1, 2), (run.returncode, run.stderr)
    assert_one_line_error(run, run.returncode)
    assert not (tmp_path / "f.pem").exists()


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


# --- the HTTPS API: credentials, query strings and JSON bodies --------------------------------------
#
# One real `tlskit serve` (subprocess, loopback, zero-config certificate) answers every example over a
# raw TLS socket, so odd bytes reach the server unchanged. The contract: never a 5xx, only the
# documented codes; a credential that is not a valid one is a 401 with the Basic challenge, never a
# 400 or 500 (DESIGN.md); the server survives and logs no exception.

SERVER = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from peers_serve import start_serve

    work = tmp_path_factory.mktemp("api")
    served = start_serve(work, "--max-auth-failures", "0")     # every fuzzed credential is a failure
    try:
        (work / "pw").write_text(PASSWORD + "\n")
        added = served.users("add", "alice", "--password-file", str(work / "pw"), "--methods", "all")
        assert added.returncode == 0, added.stderr
        served.extra["token"] = served.add_token_user("writer", methods="all")
        served.extra["context"] = tls_context(served.ca)
        # The server is up and the token works, so every fuzz answer below is the server's judgement.
        ok = _call(served, "GET", "/api", [(b"Authorization", b"Bearer " + served.extra["token"].encode())])
        assert ok.status == 200, ok
        yield served
    finally:
        served.stop()
        stderr = served.stderr()
        assert "Traceback" not in stderr and "Exception in ASGI application" not in stderr, stderr[-3000:]


def _call(served, method, target, headers=(), body=None):
    return raw_request(served.port, served.ca, method, target, list(headers), body,
                       context=served.extra.get("context"))


def _auth(served) -> tuple[bytes, bytes]:
    return (b"Authorization", b"Bearer " + served.extra["token"].encode())


def _assert_app_answer(reply, allowed: set[int]) -> None:
    assert reply.status in allowed | {400}, (reply.status, reply.body[:300])
    assert reply.status < 500 and reply.status != 0
    if reply.status == 400 and reply.from_parser:
        return  # uvicorn's HTTP parser refused the bytes before the app saw them: fine, and not a 500
    assert reply.status in allowed, (reply.status, reply.body[:300])
    assert reply.header("strict-transport-security"), reply.headers  # every answer of the app carries HSTS
    if reply.status == 401:
        assert reply.header("www-authenticate", ) and "basic" in reply.header("www-authenticate").lower(), reply.headers
    if reply.body and reply.header("content-type") == "application/json":
        _strict_json(reply.body)


def _strict_json(body: bytes):
    """RFC 8259 JSON only: Python's json reads NaN and Infinity, which other clients reject."""
    import json as _json

    def reject(constant):
        raise AssertionError(f"the server sent {constant}, which is not JSON: {body[:200]!r}")

    return _json.loads(body, parse_constant=reject)


# Header values as they come off the wire: any byte but CR, LF and NUL (those end or break the line).
HEADER_BYTES = st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b""))


def authorization_values() -> st.SearchStrategy[bytes]:
    text = st.text(max_size=60)
    return st.one_of(
        HEADER_BYTES,
        st.tuples(st.sampled_from([b"Basic", b"basic", b"BASIC", b"Bearer", b"Token", b"Digest", b"", b"Basic  "]),
                  HEADER_BYTES).map(lambda t: t[0] + b" " + t[1]),
        # well-formed Basic with wrong or odd user:password pairs (alice exists: her password is checked)
        st.tuples(st.sampled_from(["alice", "ALICE", "bob", "", "alice\x00"]), text).map(
            lambda t: b"Basic " + base64.b64encode(f"{t[0]}:{t[1]}".encode("utf-8", "surrogatepass"))),
        st.binary(max_size=60).map(lambda b: b"Basic " + base64.b64encode(b)),
        st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80).map(
            lambda s: b"Bearer " + s.encode()),
        st.integers(1000, 9000).map(lambda n: b"Bearer " + b"A" * n),
    )


@SERVER
@given(value=authorization_values(), path=st.sampled_from(["/api", "/api/products", "/api/products/1", "/", "/nope"]),
       method=st.sampled_from(["GET", "POST", "DELETE", "HEAD"]))
@example(value=b"Basic " + base64.b64encode(b"alice:" + PASSWORD.encode() + b"x"), path="/api", method="GET")
@example(value=b"Basic \xff\xfe", path="/api", method="GET")
@example(value=b"Basic " + base64.b64encode(b"\xff:\xfe"), path="/api", method="GET")
def test_fuzzed_authorization_is_always_401(api, value, path, method):
    reply = _call(api, method, path, [(b"Authorization", value)], b"{}" if method == "POST" else None)
    _assert_app_answer(reply, {401, 431})


@SERVER
@given(value=HEADER_BYTES, name=st.sampled_from([b"X-API-Key", b"x-api-key", b"X-Api-Key"]))
def test_fuzzed_api_key_header_is_always_401(api, value, name):
    reply = _call(api, "GET", "/api/products", [(name, value)])
    if value.strip(b" \t") == api.extra["token"].encode():
        return
    _assert_app_answer(reply, {401})


QUERY_CHARS = st.sampled_from(list("=&;%+?#/abcdefghijklmnopqrstuvwxyzID0123456789_-.~ ")) | st.characters(
    min_codepoint=0x21, max_codepoint=0x7e)


@SERVER
@given(query=st.one_of(
    st.text(QUERY_CHARS, max_size=120),
    st.lists(st.tuples(st.sampled_from(["limit", "offset", "id", "name", "price", "stock", "rowid", "authtoken",
                                        "x", "", "limit[]", "name%00"]),
                       st.one_of(st.integers(-10**20, 10**20).map(str), st.text(QUERY_CHARS, max_size=20))),
             max_size=6).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)),
), table=st.sampled_from(["products", "customers", "orders", "nope", "sqlite_schema", "products%20"]))
@example(query="limit=99999999999999999999999", table="products")
@example(query="offset=-1", table="products")
@example(query="name=%00", table="products")
@example(query="%ff%fe=1", table="products")
def test_fuzzed_query_strings_never_500(api, query, table):
    reply = _call(api, "GET", f"/api/{table}?{query}", [_auth(api)])
    _assert_app_answer(reply, {200, 400, 404})


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=8)
COLUMNS = ["id", "name", "price", "stock", "email", "country", "customer_id", "product_id", "quantity", "created",
           "rowid", "", "nope", "name; DROP TABLE products"]


@SERVER
@given(document=st.one_of(
    st.dictionaries(st.sampled_from(COLUMNS), json_values, max_size=5),
    json_values,
), method=st.sampled_from(["POST", "PUT", "PATCH"]), table=st.sampled_from(["products", "customers", "orders"]),
    key=st.sampled_from(["1", "2", "999999", "abc", "%00", "-1"]))
def test_fuzzed_json_bodies_never_500(api, document, method, table, key):
    import json as _json

    target = f"/api/{table}" if method == "POST" else f"/api/{table}/{key}"
    body = _json.dumps(document).encode()
    reply = _call(api, method, target, [_auth(api), (b"Content-Type", b"application/json")], body)
    _assert_app_answer(reply, {200, 201, 400, 404, 409, 413})


HOSTILE_BODIES = {
    "lone surrogate": b'{"name": "\\ud800", "price": 1}',
    "NaN": b'{"name": "nan", "price": NaN}',
    "Infinity": b'{"name": "inf", "price": Infinity}',
    "1e999": b'{"name": "overflow", "price": 1e999}',
    "nested arrays": b"[" * 5000,
    "nested objects": b'{"a":' * 3000,
    "byte order mark": b'\xef\xbb\xbf{"name": "bom", "price": 1}',
    "duplicate keys": b'{"name": "dup", "name": "dup2", "price": 2}',
    "huge integer": b'{"id": 99999999999999999999, "name": "big", "price": 1}',
    "not UTF-8": b'{"name": "\xff\xfe", "price": 1}',
}


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_hostile_json_bodies_are_client_errors(api, name, method):
    """Bodies that break naive JSON handling: each must be refused (4xx) or stored and served as real JSON."""
    target = "/api/products" if method == "POST" else "/api/products/2"
    reply = _call(api, method, target, [_auth(api), (b"Content-Type", b"application/json")], HOSTILE_BODIES[name])
    _assert_app_answer(reply, {200, 201, 400, 404, 409, 413})
    if reply.status in (200, 201):
        row = _strict_json(reply.body)
        again = _call(api, "GET", f"/api/products/{row['id']}", [_auth(api)])
        assert again.status == 200
        _strict_json(again.body)


@SERVER
@given(body=st.binary(max_size=400), method=st.sampled_from(["POST", "PUT", "PATCH"]))
def test_fuzzed_raw_bodies_never_500(api, body, method):
    target = "/api/products" if method == "POST" else "/api/products/2"
    reply = _call(api, method, target, [_auth(api), (b"Content-Type", b"application/json")], body)
    _assert_app_answer(reply, {200, 201, 400, 404, 409, 413})


@SERVER
@given(path=st.text(st.sampled_from(list("/api.%2e%2fproducts0123456789?#;\\")) | st.characters(
    min_codepoint=0x21, max_codepoint=0x7e), max_size=60),
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "FOO"]))
@example(path="/api/products/../customers", method="GET")
@example(path="/api/%2e%2e/x", method="GET")
@example(path="*", method="OPTIONS")
def test_fuzzed_paths_and_methods_never_500(api, path, method):
    target = path if path.startswith(("/", "*")) else "/" + path
    reply = _call(api, method, target, [_auth(api)], b"{}" if method in ("POST", "PUT", "PATCH") else None)
    _assert_app_answer(reply, {200, 201, 204, 400, 403, 404, 405, 409})


@pytest.mark.parametrize("line", [b"bob:{SHA}\xc3\xa9abc", b"carl:$apr1$s\xc3\xa9lt$abc", b"dora:$2y$05$\xc3\xa9",
                                  b"erin:$apr1$", b"fred:$argon2id$v=19$m=8,t=1,p=1$\xc3\xa9"])
def test_odd_imported_htpasswd_hash_is_a_401_at_login(api, tmp_path, line):
    """An htpasswd line imported as is (non-ASCII, truncated hashes) must fail the login, not the server."""
    name = line.split(b":")[0].decode()
    (tmp_path / "htpasswd").write_bytes(line + b"\n")
    imported = api.users("import-htpasswd", str(tmp_path / "htpasswd"), "--json")
    assert imported.returncode in (0, 2), imported.stderr
    basic = b"Basic " + base64.b64encode(f"{name}:whatever".encode())
    reply = _call(api, "GET", "/api", [(b"Authorization", basic)])
    _assert_app_answer(reply, {401})


@pytest.fixture(scope="module")
def api_query_token(tmp_path_factory):
    """A second server with --allow-query-token: ?authtoken= becomes a credential to fuzz."""
    from peers_serve import start_serve

    work = tmp_path_factory.mktemp("apiq")
    served = start_serve(work, "--allow-query-token", "--max-auth-failures", "0")
    try:
        served.extra["token"] = served.add_token_user("reader")
        served.extra["context"] = tls_context(served.ca)
        ok = _call(served, "GET", f"/api?authtoken={served.extra['token']}")
        assert ok.status == 200, ok
        yield served
    finally:
        served.stop()
        assert "Traceback" not in served.stderr(), served.stderr()[-3000:]


@SERVER
@given(query=st.one_of(
    st.text(QUERY_CHARS, max_size=100).map(lambda s: "authtoken=" + s),
    st.lists(st.sampled_from(["authtoken=", "authtoken", "authtoken=%00", "authtoken=tlk_", "AUTHTOKEN=x",
                              "authtoken=%ff%fe", "limit=1", "authtoken=a&authtoken=b"]), max_size=4).map("&".join),
))
def test_fuzzed_query_tokens_are_401(api_query_token, query):
    """A wrong token is 401; a query that names the token twice or undecodably is refused with 400
    (the rule of tlskit.server.query, which the access log and the proxy follow too)."""
    from tlskit.server import query as query_rule

    reply = _call(api_query_token, "GET", f"/api/products?{query}")
    try:
        query_rule.check(query.encode("latin-1"))
    except query_rule.AmbiguousQuery:
        assert reply.status == 400 and b"authtoken" in reply.body, (reply.status, reply.body)
        return
    _assert_app_answer(reply, {401})


def test_server_survived_the_fuzzing(api):
    reply = _call(api, "GET", "/api/products?limit=1", [_auth(api)])
    assert reply.status == 200, reply
    assert api.proc.poll() is None
