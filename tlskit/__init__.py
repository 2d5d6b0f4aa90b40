"""tlskit: keys, CSRs, certificates, chains, probing, ACME and an authenticated HTTPS server.

The library raises :class:`TlskitError` subclasses and returns `cryptography` objects; the CLI
(``tlskit``) is a thin layer over it. Heavy modules are imported lazily so ``tlskit --help`` is fast.
"""

from tlskit.errors import InputError, NetworkError, TlskitError, VerifyError

__version__ = "0.1.0"
__all__ = ["TlskitError", "InputError", "VerifyError", "NetworkError", "__version__"]
