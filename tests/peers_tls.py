"""Real TLS peers for probe tests: a test PKI, `openssl s_server` on a free port, a STARTTLS responder.

Everything binds 127.0.0.1 (or ::1) on a free port and is always stopped: the context managers kill
the server even when the test fails.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import re
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from conftest import free_port, openssl, require_binary, wait_for_port


# ------------------------------------------------------------------------------------------------ PKI


@dataclass
class Pki:
    """Files of a test PKI: root -> intermediate -> leaves, plus broken variants."""

    dir: Path
    root: Path            # root CA certificate (trust it with --ca-file)
    intermediate: Path    # intermediate CA certificate
    leaf: Path            # localhost + 127.0.0.1 + ::1, issued by the intermediate
    leaf_key: Path
    fullchain: Path       # leaf + intermediate
    fullchain_root: Path  # leaf + intermediate + root
    reversed_chain: Path  # leaf + root + intermediate (out of order)
    expired: Path         # localhost, issued by the intermediate, expired 10 days ago
    expired_key: Path
    expired_chain: Path
    future: Path          # localhost, valid from 10 days on (key: expired_key)
    under_leaf: Path      # localhost, signed by the other.example leaf (not a CA; key: expired_key)
    under_leaf_chain: Path  # other.example + intermediate, sent after under_leaf
    wildcard: Path        # *.example.test, issued by the intermediate
    wildcard_key: Path
    wrong_name: Path      # other.example only, issued by the intermediate
    wrong_name_key: Path
    wrong_name_chain: Path
    selfsigned: Path      # self-signed localhost
    selfsigned_key: Path
    ocsp_good: Path       # DER OCSP response "good" for the leaf, signed by the intermediate
    ocsp_revoked: Path    # "revoked" for the leaf, signed by the intermediate
    ocsp_forged: Path     # "good" for the leaf, signed by an unrelated key


def build_pki(directory: Path) -> Pki:
    """tlskit's own LocalCA for the good chain; cryptography directly for what tlskit refuses to make."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import ocsp
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from tlskit.certificates import to_pem
    from tlskit.issue import LocalCA, self_signed_certificate
    from tlskit.keys import KeySpec, generate_key, private_key_pem

    directory.mkdir(parents=True, exist_ok=True)
    root = LocalCA.create(directory / "root", {"CN": "tlskit Test Root"}, days=3650)
    inter = LocalCA.create(directory / "inter", {"CN": "tlskit Test Intermediate"}, days=1825, parent=root)
    localhost = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.IPAddress(ipaddress.ip_address("::1"))]

    def write(name: str, data: bytes) -> Path:
        path = directory / name
        path.write_bytes(data)
        return path

    key = generate_key(KeySpec.parse("ec:p256"))
    leaf = inter.issue({"CN": "localhost"}, localhost, key, days=30).certificate
    other_key = generate_key(KeySpec.parse("ec:p256"))
    other = inter.issue({"CN": "other.example"}, [x509.DNSName("other.example")], other_key, days=30).certificate
    self_key = generate_key(KeySpec.parse("ec:p256"))
    selfcert = self_signed_certificate(self_key, {"CN": "localhost"}, localhost, days=30).certificate

    # Expired and not-yet-valid: tlskit will not issue outside "now", so build them like any CA would.
    now = dt.datetime.now(dt.timezone.utc)

    def by_hand(subject_cn, public_key, issuer_cert, signing_key, start, end, names):
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
            .issuer_name(issuer_cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + start)
            .not_valid_after(now + end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
                           critical=False)
            .sign(signing_key, hashes.SHA256())
        )

    old_key = generate_key(KeySpec.parse("ec:p256"))
    expired = by_hand("localhost", old_key.public_key(), inter.certificate, inter.key,
                      -dt.timedelta(days=40), -dt.timedelta(days=10), localhost)
    future = by_hand("localhost", old_key.public_key(), inter.certificate, inter.key,
                     dt.timedelta(days=10), dt.timedelta(days=40), localhost)
    # A "CA" that is not one: other.example (CA:FALSE) signing a localhost certificate.
    under_leaf = by_hand("localhost", old_key.public_key(), other, other_key,
                         -dt.timedelta(hours=1), dt.timedelta(days=10), localhost)
    wildcard_key = generate_key(KeySpec.parse("ec:p256"))
    wildcard = inter.issue({"CN": "*.example.test"}, [x509.DNSName("*.example.test")], wildcard_key, days=30).certificate

    def ocsp_response(status, signer_cert, signer_key, certs=None) -> bytes:
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=leaf, issuer=inter.certificate, algorithm=hashes.SHA1(), cert_status=status,
            this_update=now - dt.timedelta(hours=1), next_update=now + dt.timedelta(days=3),
            revocation_time=now - dt.timedelta(hours=2) if status == ocsp.OCSPCertStatus.REVOKED else None,
            revocation_reason=x509.ReasonFlags.key_compromise if status == ocsp.OCSPCertStatus.REVOKED else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert)
        if certs:
            builder = builder.certificates(certs)
        return builder.sign(signer_key, hashes.SHA256()).public_bytes(Encoding.DER)

    root_pem, inter_pem = to_pem(root.certificate), to_pem(inter.certificate)
    return Pki(
        dir=directory,
        root=write("root.pem", root_pem),
        intermediate=write("intermediate.pem", inter_pem),
        leaf=write("leaf.pem", to_pem(leaf)),
        leaf_key=write("leaf.key", private_key_pem(key)),
        fullchain=write("fullchain.pem", to_pem(leaf) + inter_pem),
        fullchain_root=write("fullchain-root.pem", to_pem(leaf) + inter_pem + root_pem),
        reversed_chain=write("reversed.pem", root_pem + inter_pem),
        expired=write("expired.pem", to_pem(expired)),
        expired_key=write("expired.key", private_key_pem(old_key)),
        expired_chain=write("expired-chain.pem", to_pem(expired) + inter_pem),
        future=write("future.pem", to_pem(future)),
        under_leaf_chain=write("under-leaf-chain.pem", to_pem(other) + inter_pem),
        under_leaf=write("under-leaf.pem", to_pem(under_leaf)),
        wildcard=write("wildcard.pem", to_pem(wildcard)),
        wildcard_key=write("wildcard.key", private_key_pem(wildcard_key)),
        wrong_name=write("wrong.pem", to_pem(other)),
        wrong_name_key=write("wrong.key", private_key_pem(other_key)),
        wrong_name_chain=write("wrong-chain.pem", to_pem(other) + inter_pem),
        selfsigned=write("self.pem", to_pem(selfcert)),
        selfsigned_key=write("self.key", private_key_pem(self_key)),
        ocsp_good=write("ocsp-good.der", ocsp_response(ocsp.OCSPCertStatus.GOOD, inter.certificate, inter.key)),
        ocsp_revoked=write("ocsp-revoked.der", ocsp_response(ocsp.OCSPCertStatus.REVOKED, inter.certificate, inter.key)),
        # "good", but signed by a key that has nothing to do with the issuer: a forged staple.
        ocsp_forged=write("ocsp-forged.der", ocsp_response(ocsp.OCSPCertStatus.GOOD, selfcert, self_key)),
    )


# ------------------------------------------------------------------------------------------ s_server


@dataclass
class Server:
    host: str
    port: int
    process: subprocess.Popen

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@contextlib.contextmanager
def s_server(cert: Path, key: Path, chain: Path | None = None, host: str = "127.0.0.1",
             extra: tuple[str, ...] = ()) -> Iterator[Server]:
    """`openssl s_server -www` serving ``cert`` (+ ``chain``, as sent) until the block ends.

    ``chain`` holds the extra certificates sent after the leaf, in the order given (``-cert_chain``
    does not reorder them; ``-build_chain`` would, so it is not used).
    """
    binary = require_binary("openssl")
    port = free_port() if ":" not in host else _free_port6()
    accept = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    command = [binary, "s_server", "-accept", accept, "-cert", str(cert), "-key", str(key), "-www", "-naccept", "1000"]
    if ":" in host:
        command.append("-6")
    if chain is not None:
        command += ["-cert_chain", str(chain)]
    command += list(extra)
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, 10, host=host)
        yield Server(host, port, process)
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


def _free_port6() -> int:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        return sock.getsockname()[1]


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def s_client_verify_code(target: str, servername: str, ca_file: Path) -> int:
    """What `openssl s_client` says of the same server, to compare tlskit's numbers with."""
    host, port = target.rsplit(":", 1)
    result = openssl("s_client", "-connect", target, "-servername", servername, "-CAfile", str(ca_file),
                     "-verify_hostname", servername, input=b"", check=False)
    match = re.search(rb"Verify return code: (\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return int(match.group(1))


def openssl_verify_first_code(leaf: Path, untrusted: Path, ca_file: Path) -> int:
    """The first error `openssl verify` reports (s_client reports the last one when there are several)."""
    result = openssl("verify", "-CAfile", str(ca_file), "-untrusted", str(untrusted), str(leaf), check=False)
    match = re.search(rb"error (\d+) at", result.stdout + result.stderr)
    return int(match.group(1)) if match else 0


# ----------------------------------------------------------------------------------- STARTTLS responder


@dataclass
class Responder:
    port: int
    transcripts: list[list[str]]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.contextmanager
def starttls_responder(protocol: str, cert_chain: Path, key: Path, offer_tls: bool = True) -> Iterator[Responder]:
    """A tiny plain-text server for ``protocol`` that upgrades to TLS with Python's ssl module.

    It speaks just enough SMTP (RFC 3207), IMAP (RFC 3501), POP3 (RFC 2595), FTP (RFC 4217) or
    PostgreSQL (SSLRequest) for a client to reach the handshake, and records what the client said.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_chain), str(key))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    transcripts: list[list[str]] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            transcript: list[str] = []
            transcripts.append(transcript)
            threading.Thread(target=_talk, args=(conn, protocol, context, transcript, offer_tls), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield Responder(listener.getsockname()[1], transcripts)
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _talk(conn: socket.socket, protocol: str, context: ssl.SSLContext, transcript: list[str], offer_tls: bool) -> None:
    conn.settimeout(10)
    reader = conn.makefile("rb")

    def say(text: str) -> None:
        conn.sendall(text.encode() + b"\r\n")

    def hear() -> str:
        line = reader.readline().decode(errors="replace").rstrip("\r\n")
        transcript.append(line)
        return line

    try:
        if protocol == "smtp":
            say("220 mail.test ESMTP ready")
            while True:
                line = hear()
                verb = line.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    say("250-mail.test greets you")
                    say("250-PIPELINING")
                    say("250-STARTTLS" if offer_tls else "250-8BITMIME")
                    say("250 SIZE 10240000")
                elif verb == "STARTTLS" and offer_tls:
                    say("220 2.0.0 Ready to start TLS")
                    break
                elif verb in ("QUIT", ""):
                    say("221 bye")
                    return
                else:
                    say("502 5.5.2 command not recognized")
        elif protocol == "imap":
            say("* OK [CAPABILITY IMAP4rev1 STARTTLS] test IMAP ready")
            while True:
                line = hear()
                tag, _, command = line.partition(" ")
                if command.upper().startswith("CAPABILITY"):
                    say("* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED")
                    say(f"{tag} OK CAPABILITY completed")
                elif command.upper().startswith("STARTTLS"):
                    say(f"{tag} OK Begin TLS negotiation now")
                    break
                elif not line:
                    return
                else:
                    say(f"{tag} BAD unknown command")
        elif protocol == "pop3":
            say("+OK test POP3 ready")
            while True:
                line = hear()
                if line.upper().startswith("STLS"):
                    say("+OK Begin TLS negotiation")
                    break
                if line.upper().startswith("CAPA"):
                    say("+OK\r\nSTLS\r\n.")
                elif not line:
                    return
                else:
                    say("-ERR unknown")
        elif protocol == "ftp":
            say("220 test FTP ready")
            while True:
                line = hear()
                if line.upper().startswith("AUTH TLS"):
                    say("234 AUTH TLS successful")
                    break
                if not line:
                    return
                say("500 unknown")
        elif protocol == "postgres":
            request = reader.read(8)
            transcript.append(request.hex())
            conn.sendall(b"S")
        tls = context.wrap_socket(conn, server_side=True)
        transcript.append(f"TLS {tls.version()}")
        with contextlib.suppress(OSError):
            while tls.recv(4096):
                pass
        with contextlib.suppress(OSError):
            tls.close()
    except (OSError, ssl.SSLError) as exc:
        transcript.append(f"error {exc}")
    finally:
        reader.close()
        with contextlib.suppress(OSError):
            conn.close()


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP (the kernel completes it from the backlog) and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
