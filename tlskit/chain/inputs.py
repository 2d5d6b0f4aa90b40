"""The certificates a chain is built from, read from files or stdin, and where each came from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tlskit.certificates import pkcs7_certificates
from tlskit.errors import InputError

if TYPE_CHECKING:
    from cryptography import x509


@dataclass(frozen=True)
class Input:
    """One certificate and where it came from (a file name, a URL, or the trust store)."""

    certificate: x509.Certificate
    source: str


def load_inputs(paths: list[str], read_stdin: Callable[[], bytes] | None = None) -> tuple[list[Input], int]:
    """Every certificate in ``paths`` (PEM or DER, ``-`` for stdin), and how many private keys were skipped.

    Junk raises InputError naming the file, so `tlskit chain notes.txt` says which input is wrong.
    """
    import warnings

    from tlskit.files import parse_bundle, read_bytes

    inputs: list[Input] = []
    keys = 0
    for path in paths:
        if path == "-":
            import sys

            data = read_stdin() if read_stdin else sys.stdin.buffer.read()
            source = "stdin"
        else:
            data, source = read_bytes(path, "input"), str(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. certifi's negative serials when a CA bundle is mixed in
            try:
                bundle = parse_bundle(data, source)
            except InputError:
                # Windows CAs hand out chains as PKCS#7 (.p7b, .p7c); read those too.
                certs = pkcs7_certificates(data)
                if certs is None:
                    raise
                inputs += [Input(cert, source) for cert in certs]
                continue
        keys += len(bundle.private_keys)
        inputs += [Input(cert, source) for cert in bundle.certificates]
    if not inputs:
        raise InputError("no certificate in the inputs", fix="give the domain's certificate and its intermediates")
    return inputs, keys
