"""Client certificates for mutual TLS in one step: a key, a certificate from the local CA, and a PKCS#12
file that curl, browsers and Windows import.

The certificate names its user by CN, as `tlskit serve --client-ca` reads it, so the name must be one
`tlskit users add` accepts. It is clientAuth only (see :meth:`tlskit.issue.LocalCA.sign_client_csr`).

Example::

    made = write_client_certificate(Path("ca"), "alice", email="alice@example.test")
    # alice.pem, alice.key (0600): curl --cert alice.pem --key alice.key https://api.example.test/
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tlskit.errors import InputError, option

if TYPE_CHECKING:
    from cryptography import x509

    from tlskit.issue import Issued
    from tlskit.keys import SlowWork

DEFAULT_CLIENT_DAYS = 365


@dataclass
class ClientFiles:
    """What :func:`write_client_certificate` wrote: the certificate (followed by the CA's intermediates,
    which a client sends with it), its new key, and the PKCS#12 file when one was asked for."""

    issued: Issued
    cert_path: Path
    key_path: Path
    pkcs12_path: Path | None = None
    chain: list[x509.Certificate] = field(default_factory=list)


def client_names(email: str | None = None, uri: str | None = None) -> list[x509.GeneralName]:
    """The SANs of a client certificate: an e-mail address and a URI (a SPIFFE ID, say), when given."""
    from tlskit.names import parse_san

    return [parse_san(f"{kind}:{value}") for kind, value in (("email", email), ("URI", uri)) if value]


def write_client_certificate(
    ca_dir: Path,
    name: str,
    *,
    out: Path | None = None,
    key_out: Path | None = None,
    email: str | None = None,
    uri: str | None = None,
    key_type: str | None = None,
    days: int = DEFAULT_CLIENT_DAYS,
    pkcs12: Path | None = None,
    pkcs12_passphrase: bytes | None = None,
    ca_passphrase: bytes | None = None,
    force: bool = False,
    slow_work: SlowWork = nullcontext,
) -> ClientFiles:
    """Make a key and a client certificate for user ``name`` signed by the CA in ``ca_dir``, and write
    them to ``out`` (default ``NAME.pem``) and ``key_out`` (default beside it, ``.key``, mode 0600), and
    to ``pkcs12`` encrypted with ``pkcs12_passphrase`` when given: what `tlskit ca client` does.

    Every target is checked, and the CA loaded, before the key is made: a refused call writes nothing.
    """
    from cryptography import x509

    from tlskit.certificates import to_pem
    from tlskit.files import Output, check_writable, write_outputs
    from tlskit.issue import LocalCA
    from tlskit.keys import DEFAULT_KEY_TYPE, KeySpec, generate_key, key_path_beside, private_key_pem, signing_hash
    from tlskit.names import subject_to_name
    from tlskit.server.users import check_name

    check_name(name)
    sans = client_names(email, uri)
    spec = KeySpec.parse(key_type or DEFAULT_KEY_TYPE)
    if pkcs12 is not None and not pkcs12_passphrase:
        raise InputError(f"{option('pkcs12')} needs {option('passphrase_file')}",
                         "browsers and curl import PKCS#12 only with a passphrase",
                         f"put one on the first line of a file and pass {option('passphrase_file')} FILE")
    cert_path = out or Path(f"{name}.pem")
    key_path = key_out or key_path_beside(cert_path)
    targets = [cert_path, key_path] + ([pkcs12] if pkcs12 is not None else [])
    check_writable(targets, force)
    ca = LocalCA.load(ca_dir, ca_passphrase)
    with slow_work(f"Generating {spec} key...") if spec.slow else nullcontext():
        key = generate_key(spec)
    # Built here rather than with tlskit.csr.build_csr, which would add the CN as a DNS name.
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject_to_name({"CN": name}))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    issued = ca.sign_client_csr(builder.sign(key, signing_hash(key)), days)
    chain = ca.chain_to_send
    outputs = [Output.of(key_path, private_key_pem(key), secret=True),
               Output.of(cert_path, to_pem(issued.certificate, *chain))]
    if pkcs12 is not None:
        from tlskit.pkcs12 import pkcs12_of

        outputs.append(Output.of(pkcs12, pkcs12_of(issued.certificate, key, chain, pkcs12_passphrase), secret=True))
    write_outputs(outputs, force)
    return ClientFiles(issued, cert_path, key_path, pkcs12, chain)
