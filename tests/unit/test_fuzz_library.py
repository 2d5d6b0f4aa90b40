"""Fuzzing what users feed the library in-process: subjects, SANs, key types, PEM/DER blobs, piles of
certificates, password hashes, htpasswd files, serve settings, probe targets.

The contract (README, "Every command"): whatever a user types or points tlskit at, the result is a value or a TlskitError
with a one-line message, never another exception. Thousands of inputs in seconds; the openssl binary only
makes the real objects the mutations start from.
"""

from __future__ import annotations


import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fuzzing import FAST, pem_like, san_like, subject_like
from conftest import openssl
from tlskit.errors import InputError, TlskitError

pytestmark = pytest.mark.slow

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
@example("0@:")
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
