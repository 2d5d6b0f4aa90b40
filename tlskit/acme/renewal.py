"""When to renew a certificate: a third of its lifetime before expiry, unless the CA says otherwise.

Three rules, in this order of strength:

* The CA's renewalInfo (ARI, RFC 9773), when its directory offers it: a suggested window. tlskit picks
  one moment inside it, the same for the same certificate on every run (derived from its serial, so
  clients still spread over the window as the RFC asks, yet ``certificates`` and ``renew`` agree).
  A window that is already over means renew now.
* ``days``: a fixed window chosen by the user (renew when fewer than N days are left). ARI may still
  make it earlier (a CA that revokes early says so through ARI), never later.
* Otherwise the lifetime: renew when a third of it is left, so a 90-day certificate renews at 30
  days, a 6-day one at 2 days, whatever the CA's default lifetime becomes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tlskit.errors import InputError, NetworkError

if TYPE_CHECKING:
    from cryptography import x509

    from tlskit.acme.client import Session

_ARI_DEFAULT_RETRY = dt.timedelta(hours=6)   # RFC 9773 4.3: no Retry-After means ask again in 6 hours


@dataclass
class AriWindow:
    """The CA's suggested renewal window for one certificate."""

    start: dt.datetime
    end: dt.datetime
    retry_after: dt.datetime        # when to ask again
    explanation_url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "retry_after": self.retry_after.isoformat(), "explanation_url": self.explanation_url}


@dataclass
class RenewalPlan:
    """When one certificate renews, and why; ``rule`` is ``ari``, ``days``, ``lifetime``, ``forced`` or
    ``key-mismatch``."""

    renew_at: dt.datetime
    rule: str
    reason: str
    not_before: dt.datetime
    not_after: dt.datetime
    ari: AriWindow | None = None
    ari_note: str | None = None     # why there is no ARI window: not asked, not offered, unreachable

    def due(self, now: dt.datetime) -> bool:
        return now >= self.renew_at

    @property
    def lifetime(self) -> dt.timedelta:
        return self.not_after - self.not_before

    def as_dict(self) -> dict[str, Any]:
        return {"renew_at": self.renew_at.isoformat(), "rule": self.rule, "reason": self.reason,
                "lifetime_seconds": int(self.lifetime.total_seconds()),
                "ari": self.ari.as_dict() if self.ari else None, "ari_note": self.ari_note}


def check_days(days: int | None) -> None:
    if days is not None and days < 0:
        raise InputError(f"a renewal window of {days} days is negative", fix="give a number of days, e.g. 30")


def plan_renewal(cert: x509.Certificate, *, days: int | None = None, ari: AriWindow | None = None,
                 ari_note: str | None = None, key_matches: bool = True, force: bool = False) -> RenewalPlan:
    """The renewal moment of ``cert`` under the rules above (pure: no I/O)."""
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    lifetime = not_after - not_before

    def plan(at: dt.datetime, rule: str, reason: str) -> RenewalPlan:
        # Whole seconds: the moment is shown and compared across runs; sub-second precision is noise.
        return RenewalPlan(at.replace(microsecond=0), rule, reason, not_before, not_after, ari, ari_note)

    if force:
        return plan(not_before, "forced", "forced")
    if not key_matches:
        return plan(not_before, "key-mismatch", "privkey.pem does not match cert.pem")
    if days is not None:
        fixed = not_after - dt.timedelta(days=days)
        if ari is not None and ari_moment(cert, ari) < fixed:
            return plan(ari_moment(cert, ari), "ari", _ari_reason(ari))
        return plan(fixed, "days", f"{days} days before expiry")
    if ari is not None:
        return plan(ari_moment(cert, ari), "ari", _ari_reason(ari))
    return plan(not_after - lifetime / 3, "lifetime", f"a third of its {span(lifetime)} lifetime left")


def _ari_reason(ari: AriWindow) -> str:
    return f"the CA's renewalInfo (ARI) window {ari.start:%Y-%m-%d %H:%M} to {ari.end:%Y-%m-%d %H:%M} UTC"


def ari_moment(cert: x509.Certificate, ari: AriWindow) -> dt.datetime:
    """One moment in the window, fixed per certificate: start + (hash of the serial) x length."""
    digest = hashlib.sha256(str(cert.serial_number).encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return ari.start + (ari.end - ari.start) * fraction


def span(delta: dt.timedelta) -> str:
    """A duration as people say it: ``90-day``, ``6-day``, ``36-hour``, ``30-second``."""
    seconds = int(round(delta.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= 2 * size:
            return f"{round(seconds / size)}-{unit}"
    return f"{seconds}-second"


# --- ARI -----------------------------------------------------------------------------------------


def ari_certificate_id(cert: x509.Certificate) -> str:
    """RFC 9773 4.1: base64url(AKI keyIdentifier) "." base64url(DER serial), unpadded."""
    from cryptography import x509

    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        aki = None
    if not aki:
        raise NetworkError("the certificate has no authority key identifier", "ARI needs one",
                           "renew by its lifetime instead")
    serial = cert.serial_number
    serial_der = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)  # room for the sign bit

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"{b64(aki)}.{b64(serial_der)}"


def fetch_renewal_info(session: Session, cert: x509.Certificate) -> AriWindow | None:
    """The CA's suggested window for ``cert``, or None when its directory offers no renewalInfo.

    A plain GET (no account needed). Raises NetworkError when the CA offers ARI but cannot answer.
    """
    from acme import messages

    from tlskit.acme.client import ca_errors

    if not session.offers("renewalInfo"):
        return None
    url = session.client.directory["renewalInfo"].rstrip("/") + "/" + ari_certificate_id(cert)
    with ca_errors(session.directory, "its renewalInfo"):
        response = session.client.net.get(url, content_type="application/json")
        info = messages.RenewalInfo.from_json(response.json())
    window = info.suggested_window
    if window.start is None or window.end is None or window.end < window.start:
        raise NetworkError(f"the CA's renewalInfo for {url} has no valid window", fix="renew by its lifetime")
    explanation = response.json().get("explanationURL")
    return AriWindow(_utc(window.start), _utc(window.end), _ask_again_at(response.headers.get("Retry-After")),
                     explanation)


def _ask_again_at(header: str | None) -> dt.datetime:
    """RFC 9773 4.3.2: Retry-After says when to ask again; clamped to a minute .. a day."""
    import email.utils

    now = dt.datetime.now(dt.timezone.utc)
    wait = _ARI_DEFAULT_RETRY
    if header:
        try:
            wait = dt.timedelta(seconds=float(header))
        except ValueError:
            try:
                wait = email.utils.parsedate_to_datetime(header) - now
            except (TypeError, ValueError):
                pass
    return now + min(max(wait, dt.timedelta(minutes=1)), dt.timedelta(days=1))


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


__all__ = ["AriWindow", "RenewalPlan", "plan_renewal", "check_days", "fetch_renewal_info", "ari_certificate_id", "span"]
