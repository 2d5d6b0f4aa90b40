"""The error family every library function raises.

The CLI turns each into one line on stderr, ``error: <what> (<why>); <what to do>``, and exits with the
type's code, so scripts can tell bad input (2) from a failed verdict (1) and from a network failure (3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_OK = 0
EXIT_VERDICT = 1
EXIT_INPUT = 2
EXIT_NETWORK = 3


class TlskitError(Exception):
    """Base of all tlskit errors: what went wrong, why, and what to do about it."""

    exit_code = EXIT_INPUT

    def __init__(self, what: str, why: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.why = why
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = self.what
        if self.why:
            text += f" ({self.why})"
        if self.fix:
            text += f"; {self.fix}"
        # One line on stderr is the contract, whatever a library put into `why`.
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.message


def option(name: str) -> str:
    """The setting ``name`` (a keyword such as ``max_header_line``) as the user spells it, for a message.

    The library does not know its front end, so its messages name settings through this and never as
    flags. The front end that runs decides the spelling with :func:`spelling_options`: ``--max-header-line``
    on a command line, ``TLSKIT_MAX_HEADER_LINE`` for a value from the environment, ``max_header_line
    in tlskit.toml`` for one from a config file. Without a front end, the keyword itself.
    """
    return _spelling(name)


def _keyword(name: str) -> str:
    return name


_spelling: Callable[[str], str] = _keyword


@contextmanager
def spelling_options(spelling: Callable[[str], str]) -> Iterator[None]:
    """Messages made inside the block spell each setting with ``spelling`` (see :func:`option`).

    Process-wide, not per context, so a message made on one of the server's threads is spelled as the
    command that started them would spell it."""
    global _spelling
    previous, _spelling = _spelling, spelling
    try:
        yield
    finally:
        _spelling = previous


class InputError(TlskitError):
    """The user's input is wrong: a flag, a file, a field. Exit 2."""

    exit_code = EXIT_INPUT


class FileExistsRefused(InputError):
    """An output file exists and --force was not given."""


class VerifyError(TlskitError):
    """A verdict failed: verification, expiry, hostname, key mismatch. Exit 1."""

    exit_code = EXIT_VERDICT


class NetworkError(TlskitError):
    """The network or the peer failed: refused, timed out, a CA's error. Exit 3."""

    exit_code = EXIT_NETWORK


class BindError(NetworkError):
    """A port cannot be listened on: something else holds it, or it needs privileges. Exit 3."""


# errno values that mean the machine failed (disk, device), not the path the user gave.
_SYSTEM_ERRNOS = frozenset({"ENOSPC", "EIO", "EDQUOT", "ENOMEM", "EMFILE", "ENFILE", "ESTALE"})


def from_os_error(exc: OSError, what: str | None = None) -> TlskitError:
    """A one-line error for an OSError that reached the edge: the file, the system's reason, what to do.

    A path the user chose that cannot be used (permission, read-only file system, not a directory) is
    bad input, exit 2; a full disk or an I/O error is the system failing, exit 3.
    """
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    target = what or (f"{exc.filename}" if exc.filename is not None else "a file")
    reason = exc.strerror or str(exc) or type(exc).__name__
    if name in _SYSTEM_ERRNOS:
        return SystemFailure(f"cannot write {target}", reason, "free space or fix the device, then retry")
    if name in ("EROFS", "EACCES", "EPERM"):
        return InputError(f"cannot write {target}", reason, "choose a path on a writable file system that you may write to")
    return InputError(f"cannot use {target}", reason, "check the path")


class SystemFailure(TlskitError):
    """The machine failed under us (disk full, I/O error): not the user's input. Exit 3."""

    exit_code = EXIT_NETWORK
