"""files.py: reading PEM/DER bundles with errors that name the file, and atomic writes (temp file, fsync of
the file and its directory, rename), 0600 secrets, no overwrite without force, dead writers' leftovers."""

from __future__ import annotations

import base64
import datetime
import errno
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tlskit import files
from tlskit.errors import FileExistsRefused, InputError
from tlskit.files import (
    Bundle, Output, check_writable, load_bundle, load_certificates, load_private_key_bytes, parse_bundle,
    process_alive, read_bytes, read_passphrase, write_outputs,
)

# The errors are checked as the CLI prints them (--passphrase-file, --force).
pytestmark = pytest.mark.usefixtures("cli_spelling")

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER
# Above Linux's largest pid_max (2**22): kill() answers "no such process", as for a writer that died.
DEAD_PID = 2**22 + 1


def _message(excinfo) -> str:
    return str(excinfo.value)


# --- material ----------------------------------------------------------------------------------------

_KEY = ec.generate_private_key(ec.SECP256R1())
_RSA = rsa.generate_private_key(public_exponent=65537, key_size=1024)
_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "files.test")])
_NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
_CERT = (x509.CertificateBuilder().subject_name(_NAME).issuer_name(_NAME).public_key(_KEY.public_key())
         .serial_number(1).not_valid_before(_NOW).not_valid_after(_NOW + datetime.timedelta(days=1))
         .sign(_KEY, hashes.SHA256()))
_CSR = x509.CertificateSigningRequestBuilder().subject_name(_NAME).sign(_KEY, hashes.SHA256())


def _key_bytes(key, encoding, fmt=serialization.PrivateFormat.PKCS8, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(encoding, fmt, encryption)


def _pem(label: str, der: bytes, newline: bytes = b"\n") -> bytes:
    body = base64.encodebytes(der).replace(b"\n", newline)
    return b"-----BEGIN " + label.encode() + b"-----" + newline + body + b"-----END " + label.encode() + b"-----" + newline


def _public_numbers(keys) -> list:
    return [k.public_key().public_numbers() if hasattr(k, "public_key") else k.public_numbers() for k in keys]


# --- reading -----------------------------------------------------------------------------------------


def test_read_bytes_reads_the_whole_file(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"\x00\x01 all of it\n")
    assert read_bytes(path) == b"\x00\x01 all of it\n"
    assert read_bytes(str(path)) == b"\x00\x01 all of it\n"


def test_read_bytes_errors_name_the_file_and_what_it_is(tmp_path, monkeypatch):
    missing = tmp_path / "missing.pem"
    with pytest.raises(InputError) as excinfo:
        read_bytes(missing)
    assert _message(excinfo) == f"file {missing} does not exist; check the path"
    with pytest.raises(InputError) as excinfo:
        read_bytes(missing, "key")
    assert _message(excinfo) == f"key {missing} does not exist; check the path"
    with pytest.raises(InputError) as excinfo:
        read_bytes(tmp_path, "certificate")
    assert _message(excinfo) == f"certificate {tmp_path} is a directory; name a file"
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    with pytest.raises(InputError) as excinfo:
        read_bytes(plain / "below", "bundle")
    assert _message(excinfo) == f"cannot read bundle {plain / 'below'} (Not a directory); check the path"

    def refuse(self):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)  # root reads everything: stand in for another user's file
    with pytest.raises(InputError) as excinfo:
        read_bytes(plain, "key")
    assert _message(excinfo) == f"cannot read key {plain} (permission denied); check its permissions"


def test_passphrase_is_the_first_line_as_openssl_reads_it(tmp_path):
    assert read_passphrase(None) is None
    path = tmp_path / "pass"
    path.write_bytes(b"pass word \r\nsecond line\n")
    assert read_passphrase(path) == b"pass word "
    path.write_bytes(b"only")
    assert read_passphrase(str(path)) == b"only"


@pytest.mark.parametrize("content", [b"", b"\n\n", b"  \t\n", b"\nsecret on the second line\n"])
def test_empty_first_line_is_refused(tmp_path, content):
    path = tmp_path / "pass"
    path.write_bytes(content)
    with pytest.raises(InputError) as excinfo:
        read_passphrase(path)
    assert _message(excinfo) == f"passphrase file {path} is empty; put the passphrase on its first line"


def test_missing_passphrase_file_is_named_as_one(tmp_path):
    with pytest.raises(InputError) as excinfo:
        read_passphrase(tmp_path / "nope")
    assert _message(excinfo) == f"passphrase file {tmp_path / 'nope'} does not exist; check the path"


def test_bundle_counts_every_kind():
    bundle = Bundle(certificates=[_CERT], csrs=[_CSR, _CSR], private_keys=[_KEY] * 3,
                    public_keys=[_KEY.public_key()] * 4)
    assert len(bundle) == 10
    assert len(Bundle()) == 0


def test_pem_bundle_in_any_order_keeps_each_kind_in_file_order(tmp_path):
    other = ec.generate_private_key(ec.SECP256R1())
    data = b"".join([
        _key_bytes(_KEY, PEM),
        _CSR.public_bytes(PEM),
        _CERT.public_bytes(PEM),
        other.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        _key_bytes(other, PEM),
        b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n",
    ])
    bundle = parse_bundle(b"leading text\n" + data + b"trailing text")
    assert bundle.certificates == [_CERT]
    assert bundle.csrs == [_CSR]
    assert _public_numbers(bundle.private_keys) == _public_numbers([_KEY, other])
    assert _public_numbers(bundle.public_keys) == _public_numbers([other.public_key()])
    path = tmp_path / "bundle.pem"
    path.write_bytes(data)
    assert load_bundle(path).certificates == [_CERT]
    assert load_certificates(str(path)) == [_CERT]


def test_every_label_openssl_writes_is_read():
    crlf = _pem("CERTIFICATE", _CERT.public_bytes(DER), b"\r\n")
    assert parse_bundle(crlf).certificates == [_CERT]
    old_style = _pem("X509 CERTIFICATE", _CERT.public_bytes(DER))
    assert parse_bundle(old_style).certificates == [_CERT]
    new_csr = _pem("NEW CERTIFICATE REQUEST", _CSR.public_bytes(DER))
    assert parse_bundle(new_csr).csrs == [_CSR]
    traditional = [_key_bytes(_RSA, PEM, serialization.PrivateFormat.TraditionalOpenSSL),
                   _key_bytes(_KEY, PEM, serialization.PrivateFormat.TraditionalOpenSSL)]
    assert traditional[0].startswith(b"-----BEGIN RSA PRIVATE KEY")
    assert traditional[1].startswith(b"-----BEGIN EC PRIVATE KEY")
    assert _public_numbers(parse_bundle(b"".join(traditional)).private_keys) == _public_numbers([_RSA, _KEY])
    encrypted = _key_bytes(_KEY, PEM, password=b"pw")
    assert encrypted.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY")
    assert _public_numbers(parse_bundle(encrypted, passphrase=b"pw").private_keys) == _public_numbers([_KEY])
    pkcs1 = _RSA.public_key().public_bytes(PEM, serialization.PublicFormat.PKCS1)
    assert pkcs1.startswith(b"-----BEGIN RSA PUBLIC KEY")
    assert _public_numbers(parse_bundle(pkcs1).public_keys) == _public_numbers([_RSA.public_key()])


def test_trusted_certificate_drops_openssls_trust_settings():
    # `openssl x509 -trustout` appends a SEQUENCE of trust settings after the certificate.
    trust = bytes.fromhex("300c300a06082b06010505070301")
    block = _pem("TRUSTED CERTIFICATE", _CERT.public_bytes(DER) + trust)
    assert parse_bundle(block).certificates == [_CERT]
    assert parse_bundle(_pem("TRUSTED CERTIFICATE", _CERT.public_bytes(DER))).certificates == [_CERT]


def _other_certificate() -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other.test")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(_KEY.public_key())
            .serial_number(2).not_valid_before(_NOW).not_valid_after(_NOW + datetime.timedelta(days=1))
            .sign(_KEY, hashes.SHA256()))


def by_serial(certificates: list[x509.Certificate]) -> list[x509.Certificate]:
    return sorted(certificates, key=lambda c: c.serial_number)  # PKCS#7 holds a SET OF: DER sorts it


def test_pkcs7_bundles_are_read_as_their_certificates():
    # Windows CAs and AIA URLs hand chains out as .p7b / .p7c.
    other = _other_certificate()
    pem = pkcs7.serialize_certificates([_CERT, other], PEM)
    assert pem.startswith(b"-----BEGIN PKCS7-----")
    assert by_serial(parse_bundle(pem).certificates) == [_CERT, other]
    assert parse_bundle(pem + _CSR.public_bytes(PEM)).csrs == [_CSR]
    der = parse_bundle(pkcs7.serialize_certificates([other, _CERT], DER))
    assert by_serial(der.certificates) == [_CERT, other] and len(der) == 2
    with pytest.raises(InputError) as excinfo:
        parse_bundle(b"-----BEGIN PKCS7-----\nMAA=\n-----END PKCS7-----\n", "chain.p7b")
    assert _message(excinfo) == ("chain.p7b has a PKCS7 block without certificates; "
                                 "give a PKCS#7 certificate bundle (.p7b) or PEM certificates")


def test_first_der_object_cuts_after_the_outer_length():
    assert files._first_der_object(b"") == b""
    assert files._first_der_object(b"\x30") == b"\x30"
    assert files._first_der_object(b"\x31\x01ab") == b"\x31\x01ab"  # not a SEQUENCE: left alone
    assert files._first_der_object(b"\x30\x03abcTAIL") == b"\x30\x03abc"
    assert files._first_der_object(b"\x30\x7f" + b"a" * 127 + b"TAIL") == b"\x30\x7f" + b"a" * 127
    assert files._first_der_object(b"\x30\x81\x80" + b"b" * 128 + b"TAIL") == b"\x30\x81\x80" + b"b" * 128
    long = b"\x30\x82\x01\x02" + b"c" * 258
    assert files._first_der_object(long + b"TAIL") == long
    assert files._first_der_object(b"\x30\x80TAIL") == b"\x30\x80"  # BER's indefinite length: no content


def test_short_reason_is_the_first_line_at_most_120_characters():
    assert files._short(ValueError("first\nsecond")) == "first"
    assert files._short(ValueError("x" * 200)) == "x" * 120
    assert files._short(ValueError()) == "ValueError"


def test_nothing_usable_is_refused_naming_the_source():
    params = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    with pytest.raises(InputError) as excinfo:
        parse_bundle(params, "params.pem")
    assert _message(excinfo) == "params.pem holds no certificate, CSR or key; give a PEM or DER file"
    with pytest.raises(InputError) as excinfo:
        parse_bundle(params)
    assert _message(excinfo) == "input holds no certificate, CSR or key; give a PEM or DER file"
    with pytest.raises(InputError) as excinfo:
        parse_bundle(b"-----BEGIN CERTIFICATE-----\nMIIB\n", "cut.pem")
    assert _message(excinfo) == ("cut.pem has a broken PEM block (BEGIN without a matching END); "
                                 "check that the file was copied whole")
    with pytest.raises(InputError) as excinfo:
        parse_bundle(b"-----BEGIN DH PARAMETERS-----\nMAA=\n-----END DH PARAMETERS-----\n", "dh.pem")
    assert _message(excinfo) == ("dh.pem has a DH PARAMETERS block, which tlskit does not read; "
                                 "give certificates, CSRs or keys")
    broken = b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"
    with pytest.raises(ValueError) as cause:
        x509.load_pem_x509_certificate(broken)
    with pytest.raises(InputError) as excinfo:
        parse_bundle(broken, "bad.pem")
    reason = str(cause.value).split("\n")[0][:120]
    assert reason
    assert _message(excinfo) == f"bad.pem has a CERTIFICATE block that does not parse ({reason}); " \
                                "check that the file was copied whole"


def test_encrypted_pem_key_without_passphrase_says_so():
    with pytest.raises(InputError) as excinfo:
        parse_bundle(_key_bytes(_KEY, PEM, password=b"pw"), "key.pem")
    assert _message(excinfo) == "key key.pem is encrypted; pass its passphrase with --passphrase-file"


def test_der_objects_of_every_kind():
    assert parse_bundle(_CERT.public_bytes(DER)).certificates == [_CERT]
    assert parse_bundle(_CSR.public_bytes(DER)).csrs == [_CSR]
    spki = _KEY.public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    only_public = parse_bundle(spki)
    assert _public_numbers(only_public.public_keys) == _public_numbers([_KEY.public_key()])
    assert len(only_public) == 1
    key = parse_bundle(_key_bytes(_KEY, DER))
    assert _public_numbers(key.private_keys) == _public_numbers([_KEY]) and len(key) == 1
    encrypted = _key_bytes(_KEY, DER, password=b"pw")
    assert _public_numbers(parse_bundle(encrypted, passphrase=b"pw").private_keys) == _public_numbers([_KEY])
    with pytest.raises(InputError) as excinfo:
        parse_bundle(encrypted, "key.der")
    assert _message(excinfo) == "key key.der is encrypted; pass its passphrase with --passphrase-file"
    with pytest.raises(InputError) as excinfo:
        parse_bundle(b"\x00junk", "junk.bin")
    assert _message(excinfo) == "junk.bin is neither PEM nor DER (no certificate, CSR or key found); give a PEM or DER file"


def test_load_certificates_refuses_a_file_without_one(tmp_path):
    path = tmp_path / "key.pem"
    path.write_bytes(_key_bytes(_KEY, PEM, password=b"pw"))
    assert len(load_bundle(path, b"pw").private_keys) == 1
    with pytest.raises(InputError) as excinfo:
        load_bundle(path)
    assert _message(excinfo) == f"key {path} is encrypted; pass its passphrase with --passphrase-file"
    path.write_bytes(_key_bytes(_KEY, PEM))
    with pytest.raises(InputError) as excinfo:
        load_certificates(path)
    assert _message(excinfo) == f"{path} holds no certificate; give a PEM or DER certificate file"


def test_private_key_errors_say_what_to_do():
    encrypted = _key_bytes(_KEY, PEM, password=b"right")
    assert _public_numbers([load_private_key_bytes(encrypted, "k", b"right")]) == _public_numbers([_KEY])
    assert _public_numbers([load_private_key_bytes(_key_bytes(_KEY, DER), "k", None)]) == _public_numbers([_KEY])
    cases = [
        (encrypted, None, "key k is encrypted; pass its passphrase with --passphrase-file"),
        (_key_bytes(_KEY, PEM), b"pw", "key k is not encrypted; drop --passphrase-file"),
        (encrypted, b"wrong", "cannot decrypt key k (wrong passphrase); check the passphrase file"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", None,
         "k is not a private key; give a PEM or DER private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", b"pw",
         "k is not a private key; give a PEM or DER private key"),
        (b"\x30\x03abc", None, "k is not a private key; give a PEM or DER private key"),
    ]
    for data, passphrase, message in cases:
        with pytest.raises(InputError) as excinfo:
            load_private_key_bytes(data, "k", passphrase)
        assert _message(excinfo) == message


@pytest.mark.parametrize("encoding", [PEM, DER])
def test_a_wrong_passphrase_that_decrypts_to_garbage_is_still_a_wrong_passphrase(encoding):
    # A wrong passphrase gives AES-CBC garbage with valid padding about once in 256 tries, and
    # cryptography then reports a parse error that names no password: find such a passphrase.
    encrypted = _key_bytes(_KEY, encoding, password=b"right")
    loader = serialization.load_pem_private_key if encoding == PEM else serialization.load_der_private_key
    for attempt in range(20000):
        wrong = f"wrong {attempt}".encode()
        try:
            loader(encrypted, password=wrong)
        except ValueError as exc:
            if "password" not in str(exc).lower() and "decrypt" not in str(exc).lower():
                break
    else:
        pytest.fail("no wrong passphrase decrypted to garbage in 20000 tries")
    with pytest.raises(InputError) as excinfo:
        load_private_key_bytes(encrypted, "k", wrong)
    assert _message(excinfo) == "cannot decrypt key k (wrong passphrase); check the passphrase file"


@pytest.mark.parametrize("reason", ["Bad decrypt. Incorrect password?", "bad decrypt"])
def test_either_wording_of_a_wrong_passphrase_is_recognized(monkeypatch, reason):
    # OpenSSL-era and Rust-era cryptography word it differently; each word alone must be enough.
    def refuse(data, password):
        raise ValueError(reason)

    monkeypatch.setattr(serialization, "load_pem_private_key", refuse)
    with pytest.raises(InputError) as excinfo:
        load_private_key_bytes(b"-----BEGIN ENCRYPTED PRIVATE KEY-----", "k", b"pw")
    assert _message(excinfo) == "cannot decrypt key k (wrong passphrase); check the passphrase file"
    with pytest.raises(InputError) as excinfo:
        load_private_key_bytes(b"-----BEGIN ENCRYPTED PRIVATE KEY-----", "k", None)
    assert _message(excinfo) == "k is not a private key; give a PEM or DER private key"


def test_wrong_passphrase_wording_with_password_alone(monkeypatch):
    def refuse(data, password):
        raise ValueError("Incorrect password")

    monkeypatch.setattr(serialization, "load_der_private_key", refuse)
    with pytest.raises(InputError) as excinfo:
        load_private_key_bytes(b"\x30\x00", "k", b"pw")
    assert _message(excinfo) == "cannot decrypt key k (wrong passphrase); check the passphrase file"


def test_unsupported_keys_name_the_problem(monkeypatch):
    from cryptography.exceptions import UnsupportedAlgorithm

    errors = iter([UnsupportedAlgorithm("curve brainpoolP160r1 is not supported"), UnsupportedAlgorithm("")])

    def refuse(data, password):
        raise next(errors)

    monkeypatch.setattr(serialization, "load_pem_private_key", refuse)
    with pytest.raises(InputError) as excinfo:
        load_private_key_bytes(b"-----BEGIN EC PRIVATE KEY-----", "k", None)
    assert _message(excinfo) == ("cannot load key k (curve brainpoolP160r1 is not supported); "
                                 "give an RSA, EC or Ed25519 key")
    with pytest.raises(InputError) as excinfo:
        load_private_key_bytes(b"-----BEGIN EC PRIVATE KEY-----", "k", None)
    assert _message(excinfo) == "cannot load key k (UnsupportedAlgorithm); give an RSA, EC or Ed25519 key"


# --- writing -----------------------------------------------------------------------------------------


@pytest.fixture
def umask():
    """Set the process umask for one test; restored afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda value: os.umask(value)
    os.umask(saved)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _current_umask() -> int:
    value = os.umask(0)
    os.umask(value)
    return value


def test_output_of_takes_any_path():
    output = Output.of("dir/name.pem", b"data")
    assert output == Output(Path("dir/name.pem"), b"data", False)
    assert Output.of(Path("k.pem"), b"k", secret=True).secret is True


def test_secrets_are_0600_and_public_files_follow_the_umask(tmp_path, umask):
    umask(0o027)
    write_outputs([Output.of(tmp_path / "key.pem", b"KEY", secret=True), Output.of(tmp_path / "cert.pem", b"CERT")])
    assert (tmp_path / "key.pem").read_bytes() == b"KEY"
    assert (tmp_path / "cert.pem").read_bytes() == b"CERT"
    assert _mode(tmp_path / "key.pem") == 0o600
    assert _mode(tmp_path / "cert.pem") == 0o640
    assert _current_umask() == 0o027  # reading the umask puts it back
    umask(0o002)
    write_outputs([Output.of(tmp_path / "wide.pem", b"W")])
    assert _mode(tmp_path / "wide.pem") == 0o644  # never wider than 0644, even under umask 002
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem", "key.pem", "wide.pem"]


class FsyncRecorder:
    """Wraps os.fsync, os.replace and os.close: what was fsynced (inode, size, mode) and in which order."""

    def __init__(self, monkeypatch) -> None:
        self.events: list[tuple] = []
        self.open_fds: set[int] = set()
        real_fsync, real_replace, real_open, real_close = os.fsync, os.replace, os.open, os.close

        def fsync(fd):
            info = os.fstat(fd)
            self.events.append(("fsync", info.st_ino, info.st_size, stat.S_IMODE(info.st_mode)))
            return real_fsync(fd)

        def replace(src, dst):
            self.events.append(("replace", os.stat(src).st_ino, Path(dst).name))
            return real_replace(src, dst)

        def open_(path, flags, *args, **kwargs):
            fd = real_open(path, flags, *args, **kwargs)
            self.open_fds.add(fd)
            return fd

        def close(fd):
            self.open_fds.discard(fd)
            return real_close(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "open", open_)
        monkeypatch.setattr(os, "close", close)


def test_file_is_fsynced_complete_before_its_rename_and_the_directory_after(tmp_path, monkeypatch, umask):
    umask(0o022)
    recorder = FsyncRecorder(monkeypatch)
    target = tmp_path / "cert.pem"
    write_outputs([Output.of(target, b"x" * 100)])
    inode = target.stat().st_ino
    directory = tmp_path.stat().st_ino
    # Complete (all 100 bytes flushed from Python's buffer) and still 0600 when it reaches the disk.
    assert recorder.events[:2] == [("fsync", inode, 100, 0o600), ("replace", inode, "cert.pem")]
    assert [event[:2] for event in recorder.events[2:]] == [("fsync", directory)]
    assert recorder.open_fds == set()  # the directory's descriptor is closed again


def test_every_directory_is_fsynced_once_after_all_renames(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    recorder = FsyncRecorder(monkeypatch)
    write_outputs([Output.of(tmp_path / "a" / "1", b"1"), Output.of(tmp_path / "a" / "2", b"22", secret=True),
                   Output.of(tmp_path / "b" / "3", b"333")])
    kinds = [event[0] for event in recorder.events]
    assert kinds == ["fsync"] * 3 + ["replace"] * 3 + ["fsync"] * 2
    files_synced = [(event[1], event[2]) for event in recorder.events[:3]]
    assert files_synced == [((tmp_path / "a" / "1").stat().st_ino, 1), ((tmp_path / "a" / "2").stat().st_ino, 2),
                            ((tmp_path / "b" / "3").stat().st_ino, 3)]
    assert sorted(event[1] for event in recorder.events[6:]) == sorted(
        [(tmp_path / "a").stat().st_ino, (tmp_path / "b").stat().st_ino])


def test_relative_paths_write_into_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recorder = FsyncRecorder(monkeypatch)
    write_outputs([Output.of("here.pem", b"here")])
    assert (tmp_path / "here.pem").read_bytes() == b"here"
    assert recorder.events[-1][:2] == ("fsync", tmp_path.stat().st_ino)


def test_no_overwrite_without_force_and_nothing_written_when_refused(tmp_path):
    existing = tmp_path / "cert.pem"
    existing.write_bytes(b"old")
    fresh = tmp_path / "key.pem"
    with pytest.raises(FileExistsRefused) as excinfo:
        write_outputs([Output.of(fresh, b"new key", secret=True), Output.of(existing, b"new")])
    assert _message(excinfo) == f"{existing} already exists; pass --force to replace it, or choose another path"
    assert existing.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem"]
    write_outputs([Output.of(fresh, b"new key", secret=True), Output.of(existing, b"new")], force=True)
    assert existing.read_bytes() == b"new" and fresh.read_bytes() == b"new key"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert.pem", "key.pem"]


def test_targets_are_checked_before_any_work(tmp_path, monkeypatch):
    with pytest.raises(InputError) as excinfo:
        check_writable([tmp_path / "a", tmp_path / "b" / ".." / "a"], force=True)
    assert _message(excinfo) == f"{tmp_path / 'b' / '..' / 'a'} is named twice as an output; give each output its own path"
    with pytest.raises(InputError) as excinfo:
        check_writable([tmp_path], force=True)
    assert _message(excinfo) == f"{tmp_path} is a directory; name a file"
    missing = tmp_path / "no" / "such"
    with pytest.raises(InputError) as excinfo:
        check_writable([missing / "cert.pem"], force=False)
    assert _message(excinfo) == f"directory {missing} does not exist; create it first (mkdir -p {missing})"
    check_writable([tmp_path / "a", tmp_path / "b"], force=False)
    (tmp_path / "a").write_bytes(b"")
    check_writable([tmp_path / "a"], force=True)
    with pytest.raises(FileExistsRefused):
        check_writable([tmp_path / "a"], force=False)

    asked = []

    def access(path, mode):
        asked.append((Path(path), mode))
        return False

    monkeypatch.setattr(os, "access", access)  # root may write anywhere: stand in for a read-only directory
    with pytest.raises(InputError) as excinfo:
        check_writable([tmp_path / "new"], force=False)
    assert _message(excinfo) == f"cannot write to directory {tmp_path} (permission denied); choose another path"
    assert asked == [(tmp_path, os.W_OK)]


def test_a_failed_write_leaves_no_temp_and_no_new_file(tmp_path, monkeypatch):
    real_mkstemp = files.tempfile.mkstemp
    calls = []

    def mkstemp(**kwargs):
        calls.append(kwargs)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkstemp(**kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    first, second = tmp_path / "key.pem", tmp_path / "cert.pem"
    with pytest.raises(InputError) as excinfo:
        write_outputs([Output.of(first, b"k", secret=True), Output.of(second, b"c")])
    assert _message(excinfo) == f"cannot write {second} (No space left on device); check free space and permissions"
    assert list(tmp_path.iterdir()) == []
    # The temp file sits next to its target and names the writer's pid, so leftovers can be told apart.
    assert calls[0] == {"prefix": f".key.pem.{os.getpid()}.", "suffix": ".tmp", "dir": tmp_path}


def test_a_failed_rename_removes_what_this_call_created(tmp_path, monkeypatch):
    replaced, created, failing = tmp_path / "a.pem", tmp_path / "b.pem", tmp_path / "c.pem"
    replaced.write_bytes(b"old a")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == failing:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(InputError) as excinfo:
        write_outputs([Output.of(replaced, b"new a"), Output.of(created, b"b"), Output.of(failing, b"c")], force=True)
    assert _message(excinfo) == f"cannot write {failing} (Invalid cross-device link); check free space and permissions"
    # a.pem was complete when it was replaced and cannot be restored; b.pem was new and is gone again.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pem"]
    assert replaced.read_bytes() == b"new a"


def test_an_interrupted_write_removes_its_temp_file(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_outputs([Output.of(tmp_path / "key.pem", b"k", secret=True)])
    assert list(tmp_path.iterdir()) == []


def test_a_failed_chmod_removes_the_temp_file(tmp_path, monkeypatch):
    def refuse(path, mode):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse)
    with pytest.raises(InputError) as excinfo:
        write_outputs([Output.of(tmp_path / "cert.pem", b"c")])
    assert _message(excinfo) == (f"cannot write {tmp_path / 'cert.pem'} (Operation not permitted); "
                                 "check free space and permissions")
    assert list(tmp_path.iterdir()) == []
    write_outputs([Output.of(tmp_path / "key.pem", b"k", secret=True)])  # a secret is never chmod-ed
    assert (tmp_path / "key.pem").read_bytes() == b"k"


def test_a_directory_that_cannot_be_fsynced_does_not_fail_the_write(tmp_path, monkeypatch):
    recorder = FsyncRecorder(monkeypatch)
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")  # some filesystems refuse a directory fsync
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_outputs([Output.of(tmp_path / "a", b"a")])
    assert (tmp_path / "a").read_bytes() == b"a"
    assert recorder.open_fds == set()

    real_open = os.open

    def open_(path, flags, *args, **kwargs):
        if Path(path) == tmp_path:
            raise OSError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    write_outputs([Output.of(tmp_path / "b", b"b")])
    assert (tmp_path / "b").read_bytes() == b"b"


def test_leftovers_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "cert.pem"
    dead = tmp_path / f".cert.pem.{DEAD_PID}.k2j3.tmp"
    mine = tmp_path / f".cert.pem.{os.getpid()}.abcd.tmp"
    init = tmp_path / ".cert.pem.1.abcd.tmp"              # pid 1 is always running
    other_target = tmp_path / f".key.pem.{DEAD_PID}.abcd.tmp"
    not_a_temp = tmp_path / f".cert.pem.{DEAD_PID}.abcd.tmp.bak"
    no_pid = tmp_path / ".cert.pem.x1.abcd.tmp"
    lookalike = tmp_path / f".certXpem.{DEAD_PID}.abcd.tmp"  # the dot in the name is not a wildcard
    two_parts = tmp_path / f".cert.pem.{DEAD_PID}.ab.cd.tmp"
    kept = [mine, init, other_target, not_a_temp, no_pid, lookalike, two_parts]
    for path in [dead, *kept]:
        path.write_bytes(b"partial")
    write_outputs([Output.of(target, b"whole")])
    assert target.read_bytes() == b"whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [target, *kept])


def test_an_unreadable_directory_listing_does_not_stop_the_write(tmp_path, monkeypatch):
    def refuse(path):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "scandir", refuse)
    write_outputs([Output.of(tmp_path / "a", b"a")])
    assert (tmp_path / "a").read_bytes() == b"a"


def test_only_a_certain_no_such_process_counts_as_dead(monkeypatch):
    assert process_alive(os.getpid()) is True
    assert process_alive(1) is True
    assert process_alive(DEAD_PID) is False
    assert process_alive(2**70) is True  # not a pid the kernel can be asked about
    signals = []
    for error in (PermissionError, ValueError, ProcessLookupError):
        def kill(pid, signal, error=error):
            signals.append((pid, signal))
            raise error

        monkeypatch.setattr(os, "kill", kill)
        assert process_alive(4242) is (error is not ProcessLookupError)
    assert signals == [(4242, 0)] * 3
    monkeypatch.setattr(os, "kill", lambda pid, signal: signals.append((pid, signal)))
    assert process_alive(4343) is True
    assert process_alive(os.getpid()) is True and signals[-1] == (4343, 0)  # our own pid is not asked


def test_unlink_quietly_ignores_a_file_already_gone(tmp_path):
    files._unlink_quietly(tmp_path / "gone")
    (tmp_path / "here").write_bytes(b"")
    files._unlink_quietly(str(tmp_path / "here"))
    assert list(tmp_path.iterdir()) == []
