"""Issue, renew and revoke with files on disk: what `tlskit acme` and `tlskit serve --acme` call.

These functions own the whole job (account reuse, key, CSR, order, atomic write, renewal settings) and
raise :class:`~tlskit.errors.TlskitError` subclasses only: NetworkError (exit 3) for the CA or the
network, InputError (exit 2) for the caller's mistakes. Nothing under ``out_dir`` changes unless the
new certificate is complete.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlskit.acme.challenges import DNS01, HttpStandalone, Solver, solver_from_settings
from tlskit.acme.client import (DEFAULT_TIMEOUT, LETSENCRYPT, Progress, Session, connect, ensure_account,
                                new_account_key_pem, order_certificate, resolve_directory, revoke)
from tlskit.acme.store import AccountFiles, Lineage, RenewalSettings, find_lineages, lineage_name
from tlskit.errors import FileExistsRefused, InputError, TlskitError

_NAME = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOOK_TIMEOUT = 300
REVOCATION_REASONS = {"unspecified": 0, "keyCompromise": 1, "affiliationChanged": 3, "superseded": 4,
                      "cessationOfOperation": 5}


@dataclass
class IssuedFiles:
    """Where a new certificate landed, and what it is."""

    names: list[str]
    lineage: Path
    privkey: Path | None     # None when the caller's own CSR was used: the key stays theirs
    cert: Path
    chain: Path
    fullchain: Path
    not_after: dt.datetime
    serial: str
    issuer: str
    directory: str
    challenge: str
    account: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "names": self.names, "dir": str(self.lineage),
            "privkey": str(self.privkey) if self.privkey else None, "cert": str(self.cert),
            "chain": str(self.chain), "fullchain": str(self.fullchain),
            "not_after": self.not_after.isoformat(), "serial": self.serial, "issuer": self.issuer,
            "directory": self.directory, "challenge": self.challenge, "account": self.account,
        }


@dataclass
class RenewOutcome:
    """What ``renew_due`` did with one certificate: ``renewed``, ``not-due`` or ``failed``."""

    lineage: Path
    names: list[str]
    status: str
    reason: str
    days_left: int | None = None
    not_after: dt.datetime | None = None      # of the certificate in place now (the new one once renewed)
    issued: IssuedFiles | None = None
    error: TlskitError | None = None
    deploy_hook_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"dir": str(self.lineage), "names": self.names, "status": self.status, "reason": self.reason,
                "days_left": self.days_left, "not_after": self.not_after.isoformat() if self.not_after else None,
                "error": self.error.message if self.error else None, "deploy_hook_error": self.deploy_hook_error}


@dataclass
class RenewReport:
    outcomes: list[RenewOutcome] = field(default_factory=list)

    @property
    def renewed(self) -> list[RenewOutcome]:
        return [o for o in self.outcomes if o.status == "renewed"]

    @property
    def failed(self) -> list[RenewOutcome]:
        return [o for o in self.outcomes if o.status == "failed" or o.deploy_hook_error]


@dataclass
class Revoked:
    cert: Path
    serial: str
    names: list[str]
    directory: str
    reason: str
    signed_with: str         # "certificate key" or "account key"


def normalize_names(names: Sequence[str]) -> list[str]:
    """Lower-case, no trailing dot, no duplicates, order kept; wildcards only as the leftmost label."""
    result: list[str] = []
    for raw in names:
        name = raw.strip().rstrip(".").lower()
        if not name.isascii():
            name = name.encode("idna").decode("ascii")
        if not _NAME.match(name) or len(name) > 253:
            raise InputError(f"{raw!r} is not a DNS name an ACME CA issues for",
                             "letters, digits, '-' and dots; '*.' only in front", "check the spelling")
        if re.fullmatch(r"[0-9.]+|[0-9a-f:]*:[0-9a-f:.]*", name):
            raise InputError(f"{raw!r} is an IP address", "tlskit acme issues for DNS names",
                             "use a DNS name that points at this machine")
        if name not in result:
            result.append(name)
    if not result:
        raise InputError("no names given", fix="name at least one: tlskit acme issue example.com ...")
    return result


def issue_certificate(
    names: Sequence[str],
    out_dir: str | os.PathLike[str],
    directory: str = LETSENCRYPT,
    email: str | None = None,
    challenge: Solver | None = None,
    *,
    agree_tos: bool = False,
    key_type: str = "ec:p256",
    csr_pem: bytes | None = None,
    directory_ca_file: str | os.PathLike[str] | None = None,
    eab_kid: str | None = None,
    eab_hmac_key: str | None = None,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> IssuedFiles:
    """Get a certificate for ``names`` and write ``out_dir/<first name>/{privkey,cert,chain,fullchain}.pem``.

    ``challenge`` is a solver from :mod:`tlskit.acme.challenges` (default: standalone http-01 on port
    80). With ``csr_pem`` the names come from the CSR (``names`` may be empty) and no key is written.
    Existing files are refused unless ``force``. Example::

        issued = issue_certificate(["example.com"], "/etc/tlskit", email="me@example.com",
                                   challenge=Webroot(Path("/var/www/html")), agree_tos=True)
        print(issued.fullchain, issued.not_after)
    """
    directory = resolve_directory(directory)
    solver = challenge or HttpStandalone()
    names, csr_pem = _names_and_csr(names, csr_pem)
    _check_wildcards(names, solver)
    out = Path(out_dir)
    lineage = Lineage(out / lineage_name(names[0]))
    if not force:
        existing = [p for p in lineage.output_paths(with_key=csr_pem is None) if p.exists()]
        if existing:
            raise FileExistsRefused(f"{existing[0]} already exists",
                                    fix="renew it with tlskit acme renew, or pass --force to replace it")
    settings = RenewalSettings(
        names=names, directory=directory, challenge=solver.settings(),
        key_type=None if csr_pem is not None else str(_key_spec(key_type)),
        directory_ca_file=str(Path(directory_ca_file).resolve()) if directory_ca_file else None, email=email)
    return _obtain(lineage, settings, solver, agree_tos=agree_tos, csr_pem=csr_pem, eab=(eab_kid, eab_hmac_key),
                   force=force, timeout=timeout, progress=progress)


def _obtain(lineage: Lineage, settings: RenewalSettings, solver: Solver, *, agree_tos: bool,
            csr_pem: bytes | None, eab: tuple[str | None, str | None], force: bool, timeout: float,
            progress: Progress | None, sessions: dict[tuple[str, str | None], Session] | None = None) -> IssuedFiles:
    from tlskit.certificates import to_pem
    from tlskit.keys import generate_key, private_key_pem

    out_dir = lineage.path.parent
    session = _session(out_dir, settings.directory, settings.directory_ca_file, settings.email, agree_tos, eab,
                       sessions)
    key_pem = None
    if csr_pem is None:
        key = generate_key(_key_spec(settings.key_type or "ec:p256"))
        key_pem = private_key_pem(key)
        csr_pem = to_pem(_build_csr(key, settings.names))
    fullchain = order_certificate(session, csr_pem, solver, timeout=timeout, progress=progress)
    settings.issued_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    own_csr = csr_pem if key_pem is None else None
    lineage.write(key_pem=key_pem, fullchain_pem=fullchain.encode(), settings=settings, csr_pem=own_csr, force=force)
    return _issued_files(lineage, settings, solver, session.account_uri, with_key=key_pem is not None)


def _session(out_dir: Path, directory: str, ca_file: str | None, email: str | None, agree_tos: bool,
             eab: tuple[str | None, str | None], cache: dict | None = None) -> Session:
    """A connected session with the account of ``out_dir`` at ``directory`` (made and saved if new)."""
    cache_key = (directory, ca_file)
    if cache is not None and cache_key in cache:
        return cache[cache_key]
    account = AccountFiles.for_directory(out_dir, directory)
    key_pem = account.load_key_pem()
    fresh = key_pem is None
    if fresh:
        key_pem = new_account_key_pem()
    session = connect(directory, key_pem, ca_file)
    uri = ensure_account(session, email, agree_tos, known_uri=None if fresh else account.uri,
                         eab_kid=eab[0], eab_hmac_key=eab[1])
    if fresh or uri != account.uri:
        out_dir.mkdir(parents=True, exist_ok=True)
        account.save(key_pem if fresh else None, uri, email)
    if cache is not None:
        cache[cache_key] = session
    return session


def _names_and_csr(names: Sequence[str], csr_pem: bytes | None) -> tuple[list[str], bytes | None]:
    if csr_pem is None:
        return normalize_names(names), None
    from cryptography import x509

    from tlskit.csr import check_csr, csr_sans
    from tlskit.files import parse_bundle
    from tlskit.certificates import to_pem
    from tlskit.names import common_name

    bundle = parse_bundle(csr_pem, "--csr")
    if not bundle.csrs:
        raise InputError("--csr holds no certificate request", fix="give a PEM or DER CSR")
    request = bundle.csrs[0]
    check_csr(request, "--csr")
    from_csr = [n.value for n in csr_sans(request) if isinstance(n, x509.DNSName)]
    cn = common_name(request.subject)
    if not from_csr and cn:
        from_csr = [cn]
    csr_names = normalize_names(from_csr) if from_csr else []
    if not csr_names:
        raise InputError("--csr names no DNS name", fix="make a CSR with --san DNS:example.com")
    if names and set(normalize_names(names)) != set(csr_names):
        raise InputError("the names given differ from the CSR's", f"CSR has {', '.join(csr_names)}",
                         "give no names with --csr, or the same ones")
    return csr_names, to_pem(request)


def _check_wildcards(names: list[str], solver: Solver) -> None:
    wildcards = [n for n in names if n.startswith("*.")]
    if wildcards and solver.challenge_type != DNS01:
        raise InputError(f"{wildcards[0]} is a wildcard, which only dns-01 can prove",
                         fix="pass --dns-hook CMD (a script that sets the TXT record)")


def _key_spec(text: str):
    from tlskit.keys import KeySpec

    spec = KeySpec.parse(text)
    if spec.algorithm == "ed25519":
        raise InputError("ACME CAs do not issue for Ed25519 keys", fix="use ec:p256 (default), ec:p384 or rsa:2048")
    return spec


def _build_csr(key, names: list[str]):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from tlskit.keys import signing_hash

    # The CN is optional for ACME CAs; keep the first name there (when it fits 64 chars) for old tools.
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])] if len(names[0]) <= 64 else [])
    return (x509.CertificateSigningRequestBuilder().subject_name(subject)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(key, signing_hash(key)))


def _issued_files(lineage: Lineage, settings: RenewalSettings, solver: Solver, account: str | None,
                  with_key: bool) -> IssuedFiles:
    from tlskit.names import name_to_slash

    cert = lineage.certificate()
    return IssuedFiles(
        names=settings.names, lineage=lineage.path, privkey=lineage.privkey if with_key else None,
        cert=lineage.cert, chain=lineage.chain, fullchain=lineage.fullchain, not_after=cert.not_valid_after_utc,
        serial=format(cert.serial_number, "x"), issuer=name_to_slash(cert.issuer), directory=settings.directory,
        challenge=solver.challenge_type, account=account)


# --- renew ---------------------------------------------------------------------------------------


def renew_due(
    out_dir: str | os.PathLike[str],
    days: int = 30,
    *,
    deploy_hook: str | None = None,
    challenge: Solver | None = None,
    names: Sequence[str] | None = None,
    force_renew: bool = False,
    use_ari: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> RenewReport:
    """Renew every certificate under ``out_dir`` that expires within ``days`` (or that the CA's ARI
    ``renewalInfo`` says to renew now); leave the others untouched.

    Each renewal reuses the saved directory, account, names, key type and challenge settings
    (``challenge`` overrides the saved solver, e.g. an in-process :class:`HttpTokens`). After each
    renewal ``deploy_hook`` runs through the shell with ``TLSKIT_RENEWED_DIR`` and
    ``TLSKIT_RENEWED_NAMES`` (and certbot's ``RENEWED_LINEAGE``/``RENEWED_DOMAINS``). One failure does
    not stop the others; read ``report.failed``. Example::

        report = renew_due("/etc/tlskit", days=30, deploy_hook="systemctl reload nginx")
    """
    out = Path(out_dir)
    lineages = find_lineages(out)
    if names:
        wanted = {lineage_name(n) for n in normalize_names(names)}
        lineages = [lin for lin in lineages if lin.path.name in wanted]
    now = now or dt.datetime.now(dt.timezone.utc)
    sessions: dict[tuple[str, str | None], Session] = {}
    report = RenewReport()
    for lineage in lineages:
        outcome = RenewOutcome(lineage.path, [], "failed", "")
        report.outcomes.append(outcome)
        try:
            settings = lineage.settings()
            outcome.names = settings.names
            cert = lineage.certificate()
            outcome.days_left = int((cert.not_valid_after_utc - now).total_seconds() // 86400)
            outcome.not_after = cert.not_valid_after_utc
            reason = _due_reason(lineage, cert, days, now, force_renew, settings, sessions if use_ari else None)
            if reason is None:
                outcome.status, outcome.reason = "not-due", f"{outcome.days_left} days left, window {days} days"
                continue
            outcome.reason = reason
            solver = challenge or solver_from_settings(settings.challenge)
            csr_pem = lineage.request.read_bytes() if settings.key_type is None else None
            outcome.issued = _obtain(lineage, settings, solver, agree_tos=True, csr_pem=csr_pem, eab=(None, None),
                                     force=True, timeout=timeout, progress=progress, sessions=sessions)
            outcome.status, outcome.not_after = "renewed", outcome.issued.not_after
            if deploy_hook:
                outcome.deploy_hook_error = _run_deploy_hook(deploy_hook, lineage, settings.names)
        except TlskitError as exc:
            outcome.status, outcome.error = "failed", exc
            outcome.reason = outcome.reason or "could not check"
    return report


def _due_reason(lineage: Lineage, cert, days: int, now: dt.datetime, force: bool, settings: RenewalSettings,
                sessions: dict | None) -> str | None:
    if force:
        return "forced"
    if not lineage.key_matches():
        return "privkey.pem does not match cert.pem"
    left = cert.not_valid_after_utc - now
    if left < dt.timedelta(days=days):
        return f"{max(left.days, 0)} days left, window {days} days"
    if sessions is not None:
        return _ari_reason(lineage, settings, now, sessions)
    return None


def _ari_reason(lineage: Lineage, settings: RenewalSettings, now: dt.datetime, sessions: dict) -> str | None:
    """Ask the CA's renewalInfo (ARI) when the directory offers it; its window wins over ``days``.

    ARI is advice: a CA without it, or one that cannot be reached, leaves the decision to the expiry
    window. Only the directory is fetched (renewalInfo is a plain GET); no account is touched.
    """
    cache_key = ("ari", settings.directory, settings.directory_ca_file)
    if cache_key in sessions and sessions[cache_key] is None:
        return None  # this CA already failed to answer in this run
    try:
        session = sessions.get(cache_key)
        if session is None:
            key_pem = AccountFiles.for_directory(lineage.path.parent, settings.directory).load_key_pem()
            if key_pem is None:
                return None
            session = sessions[cache_key] = connect(settings.directory, key_pem, settings.directory_ca_file)
        if "renewalInfo" not in session.client.directory.to_partial_json():
            return None
        suggested, _ = session.client.renewal_time(lineage.cert.read_bytes())
    except Exception:
        sessions[cache_key] = None
        return None
    if suggested is not None and suggested.astimezone(dt.timezone.utc) <= now:
        return "the CA's renewalInfo (ARI) window has started"
    return None


def _run_deploy_hook(command: str, lineage: Lineage, names: list[str]) -> str | None:
    env = {**os.environ, "TLSKIT_RENEWED_DIR": str(lineage.path), "TLSKIT_RENEWED_NAMES": " ".join(names),
           "RENEWED_LINEAGE": str(lineage.path), "RENEWED_DOMAINS": " ".join(names)}
    try:
        done = subprocess.run(command, shell=True, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=_HOOK_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"--deploy-hook still running after {_HOOK_TIMEOUT} s"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return f"--deploy-hook exited {done.returncode}" + (f": {detail[-1]}" if detail else "")
    return None


# --- revoke --------------------------------------------------------------------------------------


def revoke_certificate(
    cert_path: str | os.PathLike[str],
    *,
    reason: str = "unspecified",
    directory: str | None = None,
    directory_ca_file: str | os.PathLike[str] | None = None,
) -> Revoked:
    """Revoke a certificate this tool issued (or any, given its key or the issuing account).

    The request is signed with ``privkey.pem`` next to the certificate when it is there (RFC 8555 7.6:
    the certificate's own key may always revoke), else with the account key under the output directory.
    """
    from cryptography.hazmat.primitives.serialization import Encoding

    from tlskit.files import load_certificates

    path = Path(cert_path)
    cert = load_certificates(path)[0]
    if reason not in REVOCATION_REASONS:
        raise InputError(f"unknown revocation reason {reason!r}", fix=f"use one of: {', '.join(REVOCATION_REASONS)}")
    lineage = Lineage(path.parent)
    settings = lineage.settings() if lineage.renewal.is_file() else None
    directory = resolve_directory(directory or (settings.directory if settings else None))
    ca_file = directory_ca_file or (settings.directory_ca_file if settings else None)
    names = settings.names if settings else []
    if lineage.privkey.is_file() and lineage.key_matches():
        session = connect(directory, lineage.privkey.read_bytes(), ca_file)
        signed_with = "certificate key"
    else:
        account = AccountFiles.for_directory(lineage.path.parent, directory)
        key_pem = account.load_key_pem()
        if key_pem is None:
            raise InputError(f"no key to sign the revocation of {path}",
                             "neither privkey.pem next to it nor an account key under its directory",
                             "revoke it from the account that issued it")
        session = connect(directory, key_pem, ca_file)
        ensure_account(session, None, True, known_uri=account.uri)
        signed_with = "account key"
    revoke(session, cert.public_bytes(Encoding.DER), REVOCATION_REASONS[reason])
    return Revoked(path, format(cert.serial_number, "x"), names, directory, reason, signed_with)


__all__ = ["IssuedFiles", "RenewOutcome", "RenewReport", "Revoked", "issue_certificate", "renew_due",
           "revoke_certificate", "normalize_names", "REVOCATION_REASONS"]
