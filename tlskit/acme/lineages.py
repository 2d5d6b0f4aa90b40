"""The certificates kept under an output directory, as certbot users know them: list and delete."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlskit.acme.lifecycle import lineage_plan, select_lineages
from tlskit.acme.renewal import RenewalPlan
from tlskit.acme.store import Lineage, find_lineages
from tlskit.errors import InputError, TlskitError

_CHALLENGES = {"http-standalone": "http-01", "webroot": "http-01", "http-tokens": "http-01",
               "dns-hook": "dns-01", "tls-alpn-standalone": "tls-alpn-01"}


@dataclass
class CertificateStatus:
    """One lineage: what it holds and when it renews (``error`` set when its files are damaged)."""

    name: str
    path: Path
    names: list[str] = field(default_factory=list)
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    serial: str | None = None
    issuer: str | None = None
    key_type: str | None = None
    challenge: str | None = None
    directory: str | None = None
    profile: str | None = None
    preferred_chain: str | None = None
    verify_served: str | None = None
    plan: RenewalPlan | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        iso = lambda value: value.isoformat() if value else None  # noqa: E731
        plan = self.plan
        return {"name": self.name, "dir": str(self.path), "names": self.names, "not_before": iso(self.not_before),
                "not_after": iso(self.not_after), "serial": self.serial, "issuer": self.issuer,
                "key_type": self.key_type, "challenge": self.challenge, "directory": self.directory,
                "profile": self.profile, "preferred_chain": self.preferred_chain,
                "verify_served": self.verify_served,
                "renew_at": iso(plan.renew_at) if plan else None, "rule": plan.rule if plan else None,
                "reason": plan.reason if plan else None,
                "ari": plan.ari.as_dict() if plan and plan.ari else None,
                "ari_note": plan.ari_note if plan else None, "error": self.error}


@dataclass
class Deleted:
    name: str
    path: Path
    names: list[str]
    removed: list[Path]


def list_certificates(out_dir: str | os.PathLike[str], *, days: int | None = None, use_ari: bool = True,
                      names: list[str] | None = None) -> list[CertificateStatus]:
    """Every certificate under ``out_dir`` with its renewal plan (the CA's ARI asked when ``use_ari``)."""
    from tlskit.acme.renewal import check_days

    check_days(days)
    sessions: dict = {}
    return [_status(lineage, days, use_ari, sessions) for lineage in select_lineages(out_dir, names)]


def _status(lineage: Lineage, days: int | None, use_ari: bool, sessions: dict) -> CertificateStatus:
    from tlskit.names import name_to_slash

    status = CertificateStatus(lineage.path.name, lineage.path)
    try:
        settings = lineage.settings()
        status.names, status.directory = settings.names, settings.directory
        status.challenge = _CHALLENGES.get(str(settings.challenge.get("type")), settings.challenge.get("type"))
        status.profile, status.preferred_chain = settings.profile, settings.preferred_chain
        status.verify_served = settings.verify_served
        cert = lineage.certificate()
        status.not_before, status.not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        status.serial, status.issuer = format(cert.serial_number, "x"), name_to_slash(cert.issuer)
        status.key_type = key_type_of(cert.public_key())
        status.plan = lineage_plan(lineage, settings, cert, days=days, use_ari=use_ari, sessions=sessions)
    except TlskitError as exc:
        status.error = exc.message
    return status


def key_type_of(public_key) -> str:
    """``ec:p256``, ``rsa:2048``... as ``--key-type`` spells it."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ec:p256", "secp384r1": "ec:p384", "secp521r1": "ec:p521"}.get(
            public_key.curve.name, f"ec:{public_key.curve.name}")
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa:{public_key.key_size}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    return type(public_key).__name__


def delete_certificate(out_dir: str | os.PathLike[str], name: str) -> Deleted:
    """Remove the lineage of ``name`` (its first name or directory name); the account stays.

    The certificate stays valid at the CA: revoke it first if its key may be compromised.
    """
    out = Path(out_dir)
    matches = select_lineages(out, [name])
    if not matches:
        known = ", ".join(lin.path.name for lin in find_lineages(out)) or "none"
        raise InputError(f"no certificate named {name!r} under {out}", f"there are: {known}",
                         "give a name that tlskit acme certificates lists")
    lineage = matches[0]
    try:
        names = lineage.settings().names
    except TlskitError:
        names = []
    removed = lineage.delete()
    return Deleted(lineage.path.name, lineage.path, names, removed)


__all__ = ["CertificateStatus", "Deleted", "list_certificates", "delete_certificate", "key_type_of"]
