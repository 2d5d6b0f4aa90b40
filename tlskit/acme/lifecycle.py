"""Issue, renew and revoke with files on disk: what `tlskit acme` and `tlskit serve --acme` call.

These functions own the whole job (account reuse, key, CSR, order, atomic write, renewal settings) and
raise :class:`~tlskit.errors.TlskitError` subclasses only: NetworkError (exit 3) for the CA or the
network, InputError (exit 2) for the caller's mistakes. Nothing under ``out_dir`` changes unless the
new certificate is complete.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlskit.acme.accounts import open_account, staging_of
from tlskit.acme.challenges import HttpStandalone, Solver, solver_from_settings
from tlskit.acme.client import DEFAULT_TIMEOUT, LETSENCRYPT, Progress, Session, connect, resolve_directory
from tlskit.acme.identifiers import check_challenge, names_in_request, normalize_names, request_for
from tlskit.acme.orders import order_certificate, revoke
from tlskit.acme.renewal import RenewalPlan, ari_certificate_id, check_days, fetch_renewal_info, plan_renewal
from tlskit.acme.store import AccountFiles, Lineage, RenewalSettings, find_lineages, lineage_name
from tlskit.errors import FileExistsRefused, InputError, TlskitError, VerifyError, option

_HOOK_TIMEOUT = 300
REVOCATION_REASONS = {"unspecified": 0, "keyCompromise": 1, "affiliationChanged": 3, "superseded": 4,
                      "cessationOfOperation": 5}


@dataclass
class IssuedFiles:
    """Where a new certificate landed (``written`` False: a dry run, nothing was saved), and what it is."""

    names: list[str]
    lineage: Path
    privkey: Path | None     # None when the caller's own CSR was used: the key stays theirs
    cert: Path
    chain: Path
    fullchain: Path
    not_before: dt.datetime
    not_after: dt.datetime
    serial: str
    issuer: str
    directory: str
    challenge: str
    account: str | None
    profile: str | None = None
    chain_issuer: str | None = None          # issuer CN of the chain's top certificate
    preferred_chain_found: bool | None = None
    written: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "names": self.names, "dir": str(self.lineage),
            "privkey": str(self.privkey) if self.privkey else None, "cert": str(self.cert),
            "chain": str(self.chain), "fullchain": str(self.fullchain),
            "not_before": self.not_before.isoformat(), "not_after": self.not_after.isoformat(),
            "serial": self.serial, "issuer": self.issuer, "directory": self.directory, "challenge": self.challenge,
            "account": self.account, "profile": self.profile, "chain_issuer": self.chain_issuer,
            "preferred_chain_found": self.preferred_chain_found, "written": self.written,
        }


@dataclass
class RenewOutcome:
    """What ``renew_due`` did with one certificate: ``renewed``, ``not-due``, ``dry-run`` (a full
    order whose certificate was not saved) or ``failed``."""

    lineage: Path
    names: list[str]
    status: str
    reason: str
    days_left: int | None = None
    not_after: dt.datetime | None = None      # of the certificate in place now (the new one once renewed)
    plan: RenewalPlan | None = None
    issued: IssuedFiles | None = None
    error: TlskitError | None = None
    deploy_hook_error: str | None = None
    served_error: str | None = None

    @property
    def problem(self) -> str | None:
        if self.error is not None:
            return self.error.message
        return self.deploy_hook_error or self.served_error

    def as_dict(self) -> dict[str, Any]:
        return {"dir": str(self.lineage), "names": self.names, "status": self.status, "reason": self.reason,
                "days_left": self.days_left, "not_after": self.not_after.isoformat() if self.not_after else None,
                "renew_at": self.plan.renew_at.isoformat() if self.plan else None,
                "rule": self.plan.rule if self.plan else None,
                "serial": self.issued.serial if self.issued else None,
                "error": self.error.message if self.error else None, "deploy_hook_error": self.deploy_hook_error,
                "served_error": self.served_error}


@dataclass
class RenewReport:
    outcomes: list[RenewOutcome] = field(default_factory=list)
    dry_run: bool = False

    @property
    def renewed(self) -> list[RenewOutcome]:
        return [o for o in self.outcomes if o.status == "renewed"]

    @property
    def failed(self) -> list[RenewOutcome]:
        return [o for o in self.outcomes if o.status == "failed" or o.deploy_hook_error or o.served_error]

    def failure(self) -> TlskitError | None:
        """One error for the whole run, of the first failure's kind: the CA's (exit 3), the input's
        (exit 2), or a renewal that did not reach the server (deploy hook, served check: exit 1)."""
        if not self.failed:
            return None
        first = self.failed[0]
        what = f"{len(self.failed)} of {len(self.outcomes)} certificate(s) failed to renew"
        why = f"{', '.join(first.names) or first.lineage.name}: {first.problem}"
        kind = type(first.error) if first.error is not None else VerifyError
        return kind(what, why)


@dataclass
class Revoked:
    cert: Path
    serial: str
    names: list[str]
    directory: str
    reason: str
    signed_with: str         # "certificate key" or "account key"


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
    profile: str | None = None,
    preferred_chain: str | None = None,
    verify_served: str | None = None,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> IssuedFiles:
    """Get a certificate for ``names`` and write ``out_dir/<first name>/{privkey,cert,chain,fullchain}.pem``.

    ``names`` are DNS names or IP addresses (RFC 8738). ``challenge`` is a solver from
    :mod:`tlskit.acme.challenges` (default: standalone http-01 on port 80). With ``csr_pem`` the names
    come from the CSR (``names`` may be empty) and no key is written. ``profile``, ``preferred_chain``
    and ``verify_served`` are remembered for renewal. Existing files are refused unless ``force``::

        issued = issue_certificate(["example.com"], "/etc/tlskit", email="me@example.com",
                                   challenge=Webroot(Path("/var/www/html")), agree_tos=True)
        print(issued.fullchain, issued.not_after)
    """
    from tlskit.acme.served import check_target

    directory = resolve_directory(directory)
    solver = challenge or HttpStandalone()
    names, csr_pem = _names_and_csr(names, csr_pem)
    check_challenge(names, solver.challenge_type)
    lineage = Lineage(Path(out_dir) / lineage_name(names[0]))
    if not force:
        existing = [p for p in lineage.output_paths(with_key=csr_pem is None) if p.exists()]
        if existing:
            raise FileExistsRefused(f"{existing[0]} already exists",
                                    fix=f"renew it with tlskit acme renew, or pass {option('force')} to replace it")
    settings = RenewalSettings(
        names=names, directory=directory, challenge=solver.settings(),
        key_type=None if csr_pem is not None else str(_key_spec(key_type)),
        directory_ca_file=str(Path(directory_ca_file).resolve()) if directory_ca_file else None, email=email,
        profile=profile or None, preferred_chain=preferred_chain or None,
        verify_served=check_target(verify_served) if verify_served else None)
    return _obtain(lineage, settings, solver, agree_tos=agree_tos, csr_pem=csr_pem, eab=(eab_kid, eab_hmac_key),
                   force=force, timeout=timeout, progress=progress)


def _obtain(lineage: Lineage, settings: RenewalSettings, solver: Solver, *, agree_tos: bool,
            csr_pem: bytes | None, eab: tuple[str | None, str | None], force: bool, timeout: float,
            progress: Progress | None, sessions: dict | None = None, replaces: str | None = None,
            dry_run: bool = False) -> IssuedFiles:
    from tlskit.certificates import to_pem
    from tlskit.keys import generate_key, private_key_pem

    directory = staging_of(settings.directory) if dry_run else settings.directory
    session = open_account(lineage.path.parent, directory, settings.directory_ca_file, settings.email,
                           agree_tos, eab, sessions)
    key_pem = None
    if csr_pem is None:
        key = generate_key(_key_spec(settings.key_type or "ec:p256"))
        key_pem = private_key_pem(key)
        csr_pem = to_pem(request_for(key, settings.names))
    downloaded = order_certificate(session, csr_pem, solver, profile=settings.profile, replaces=replaces,
                                   preferred_chain=settings.preferred_chain, timeout=timeout, progress=progress)
    fullchain = downloaded.fullchain_pem.encode()
    if not dry_run:
        settings.issued_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        own_csr = csr_pem if key_pem is None else None
        lineage.write(key_pem=key_pem, fullchain_pem=fullchain, settings=settings, csr_pem=own_csr, force=force)
    return _issued_files(lineage, settings, session, solver, fullchain, with_key=key_pem is not None,
                         downloaded=downloaded, written=not dry_run)


def _names_and_csr(names: Sequence[str], csr_pem: bytes | None) -> tuple[list[str], bytes | None]:
    if csr_pem is None:
        return normalize_names(names), None
    from tlskit.csr import check_csr
    from tlskit.files import parse_bundle
    from tlskit.certificates import to_pem

    bundle = parse_bundle(csr_pem, option("csr"))
    if not bundle.csrs:
        raise InputError(f"{option('csr')} holds no certificate request", fix="give a PEM or DER CSR")
    request = bundle.csrs[0]
    check_csr(request, option("csr"))
    csr_names = names_in_request(request)
    if not csr_names:
        raise InputError(f"{option('csr')} names no DNS name or IP address",
                         fix="make one with tlskit csr --cn example.com --san DNS:example.com")
    if names and set(normalize_names(names)) != set(csr_names):
        raise InputError("the names given differ from the CSR's", f"CSR has {', '.join(csr_names)}",
                         f"give no names with {option('csr')}, or the same ones")
    return csr_names, to_pem(request)


def _key_spec(text: str):
    from tlskit.keys import KeySpec

    spec = KeySpec.parse(text)
    if spec.algorithm == "ed25519":
        raise InputError("ACME CAs do not issue for Ed25519 keys", fix="use ec:p256 (default), ec:p384 or rsa:2048")
    return spec


def _issued_files(lineage: Lineage, settings: RenewalSettings, session: Session, solver: Solver, fullchain: bytes,
                  *, with_key: bool, downloaded, written: bool) -> IssuedFiles:
    from cryptography import x509

    from tlskit.names import name_to_slash

    cert = x509.load_pem_x509_certificates(fullchain)[0]
    return IssuedFiles(
        names=settings.names, lineage=lineage.path, privkey=lineage.privkey if with_key else None,
        cert=lineage.cert, chain=lineage.chain, fullchain=lineage.fullchain, not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc, serial=format(cert.serial_number, "x"), issuer=name_to_slash(cert.issuer),
        directory=session.directory, challenge=solver.challenge_type, account=session.account_uri,
        profile=settings.profile, chain_issuer=downloaded.top_issuer,
        preferred_chain_found=downloaded.preferred_found, written=written)


# --- renew ---------------------------------------------------------------------------------------


def renew_due(
    out_dir: str | os.PathLike[str],
    days: int | None = None,
    *,
    deploy_hook: str | None = None,
    challenge: Solver | None = None,
    names: Sequence[str] | None = None,
    force_renew: bool = False,
    use_ari: bool = True,
    dry_run: bool = False,
    verify_served: str | None = None,
    served_wait: float | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> RenewReport:
    """Renew every certificate under ``out_dir`` that is due (see :mod:`tlskit.acme.renewal`: a third
    of its lifetime left, the CA's ARI window, or fewer than ``days`` days left); leave the others.

    Each renewal reuses the saved directory, account, names, key type, challenge, profile and
    preferred chain (``challenge`` overrides the saved solver, e.g. an in-process :class:`HttpTokens`).
    After each renewal ``deploy_hook`` runs through the shell with ``TLSKIT_RENEWED_DIR`` and
    ``TLSKIT_RENEWED_NAMES`` (and certbot's ``RENEWED_LINEAGE``/``RENEWED_DOMAINS``); then
    ``verify_served`` (or the lineage's saved HOST:PORT) must serve the new serial. ``dry_run`` orders
    every selected certificate for real (Let's Encrypt's staging CA instead of its production one)
    and writes no certificate file. One failure does not stop the others; read ``report.failed``::

        report = renew_due("/etc/tlskit", deploy_hook="systemctl reload nginx")
    """
    from tlskit.acme.served import SERVED_WAIT, check_target

    check_days(days)
    target = check_target(verify_served) if verify_served else None
    lineages = select_lineages(out_dir, names)
    now = now or dt.datetime.now(dt.timezone.utc)
    sessions: dict = {}
    report = RenewReport(dry_run=dry_run)
    for lineage in lineages:
        outcome = RenewOutcome(lineage.path, [], "failed", "")
        report.outcomes.append(outcome)
        try:
            settings = lineage.settings()
            outcome.names = settings.names
            cert = lineage.certificate()
            outcome.days_left = int((cert.not_valid_after_utc - now).total_seconds() // 86400)
            outcome.not_after = cert.not_valid_after_utc
            plan = lineage_plan(lineage, settings, cert, days=days, use_ari=use_ari and not dry_run,
                                force=force_renew or dry_run, sessions=sessions)
            outcome.plan = plan
            if not plan.due(now):
                outcome.status, outcome.reason = "not-due", f"renews {plan.renew_at:%Y-%m-%d %H:%M} UTC ({plan.reason})"
                continue
            outcome.reason = "dry run" if dry_run else plan.reason if plan.rule in ("forced", "key-mismatch") \
                else f"due since {plan.renew_at:%Y-%m-%d %H:%M} UTC: {plan.reason}"
            solver = challenge or solver_from_settings(settings.challenge)
            csr_pem = lineage.request.read_bytes() if settings.key_type is None else None
            replaces = _replaces(cert)
            outcome.issued = _obtain(lineage, settings, solver, agree_tos=True, csr_pem=csr_pem, eab=(None, None),
                                     force=True, timeout=timeout, progress=progress, sessions=sessions,
                                     replaces=replaces, dry_run=dry_run)
            if dry_run:
                outcome.status = "dry-run"
                continue
            outcome.status, outcome.not_after = "renewed", outcome.issued.not_after
            if deploy_hook:
                outcome.deploy_hook_error = _run_deploy_hook(deploy_hook, lineage, settings.names)
            where = target or settings.verify_served
            if where and not outcome.deploy_hook_error:
                from tlskit.acme.served import check_served

                outcome.served_error = check_served(where, int(outcome.issued.serial, 16), settings.names[0],
                                                    SERVED_WAIT if served_wait is None else served_wait)
        except TlskitError as exc:
            outcome.status, outcome.error = "failed", exc
            outcome.reason = outcome.reason or "could not check"
    return report


def select_lineages(out_dir: str | os.PathLike[str], names: Sequence[str] | None = None) -> list[Lineage]:
    """The certificates under ``out_dir``, or those whose first name is one of ``names``."""
    lineages = find_lineages(Path(out_dir))
    if names:
        wanted = set()
        for name in names:
            wanted.add(lineage_name(name))           # a directory name such as _wildcard.example.com
            try:
                wanted.add(lineage_name(normalize_names([name])[0]))
            except InputError:
                pass
        lineages = [lin for lin in lineages if lin.path.name in wanted]
    return lineages


def lineage_plan(lineage: Lineage, settings: RenewalSettings, cert, *, days: int | None, use_ari: bool,
                 force: bool = False, sessions: dict | None = None) -> RenewalPlan:
    """The renewal plan of one certificate, asking its CA's ARI when ``use_ari``."""
    window, note = None, "not asked"
    key_matches = lineage.key_matches()
    if use_ari and not force and key_matches:
        window, note = _ari_window(lineage, settings, cert, {} if sessions is None else sessions)
    return plan_renewal(cert, days=days, ari=window, ari_note=note, key_matches=key_matches, force=force)


def _ari_window(lineage: Lineage, settings: RenewalSettings, cert, sessions: dict):
    """(window, None), or (None, why there is none). ARI is advice: a CA without it, or one that
    cannot answer, leaves the decision to the other rules. One directory fetch per CA and run."""
    from tlskit.acme.client import new_account_key_pem

    if cert.not_valid_after_utc <= dt.datetime.now(dt.timezone.utc):
        return None, "expired: renewalInfo is not asked for expired certificates"
    cache_key = ("ari", settings.directory, settings.directory_ca_file)
    cached = sessions.get(cache_key)
    if isinstance(cached, str):
        return None, cached
    try:
        if cached is None:
            # renewalInfo is a plain GET: any key will do for the client, the account is not touched.
            key_pem = AccountFiles.for_directory(lineage.path.parent, settings.directory).load_key_pem()
            cached = connect(settings.directory, key_pem or new_account_key_pem(), settings.directory_ca_file)
            sessions[cache_key] = cached
        if not cached.offers("renewalInfo"):
            return None, "the CA offers no renewalInfo"
        return fetch_renewal_info(cached, cert), None
    except TlskitError as exc:
        note = f"renewalInfo unavailable: {exc.message}"
        sessions[cache_key] = note
        return None, note


def _replaces(cert) -> str | None:
    try:
        return ari_certificate_id(cert)
    except TlskitError:
        return None


def _run_deploy_hook(command: str, lineage: Lineage, names: list[str]) -> str | None:
    env = {**os.environ, "TLSKIT_RENEWED_DIR": str(lineage.path), "TLSKIT_RENEWED_NAMES": " ".join(names),
           "RENEWED_LINEAGE": str(lineage.path), "RENEWED_DOMAINS": " ".join(names)}
    try:
        done = subprocess.run(command, shell=True, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=_HOOK_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"the deploy hook was still running after {_HOOK_TIMEOUT} s"
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        return f"deploy-hook exited {done.returncode}" + (f": {detail[-1]}" if detail else "")
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
    from tlskit.acme.accounts import ensure_account
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
    revoke(session, cert, REVOCATION_REASONS[reason])
    return Revoked(path, format(cert.serial_number, "x"), names, directory, reason, signed_with)


__all__ = ["IssuedFiles", "RenewOutcome", "RenewReport", "Revoked", "issue_certificate", "renew_due",
           "revoke_certificate", "select_lineages", "lineage_plan", "normalize_names", "REVOCATION_REASONS"]
