"""What the server would decide for a user's request, and why: `tlskit users why NAME METHOD PATH`.

The answer comes from the server's own code: the address from :meth:`tlskit.server.policy.Gate.ip_allowed`
over the same ``--allow`` networks, the method and the limits from the gate's step after authentication
(method overrides included), and the limits rule from :func:`tlskit.server.limits._refusal` over the counts a
shared limits store holds. Nothing is counted: the limiter here only reads.

What cannot be seen from outside the server is said, not guessed: a single-worker server counts in its
own memory (``GET /api/me`` shows that user's remaining budget), and Redis is not read.

Example::

    verdict = explain(user, "DELETE", "/api/products/1", "10.0.0.7", networks, Limits(1000, 10), state_dir)
    verdict.allowed, verdict.rule        # (False, "method")
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from tlskit.errors import option
from tlskit.server.limits import Decision, Limits, _decision, _refusal


@dataclass
class Step:
    rule: str               # "address", "user", "credentials", "method", "limit"
    ok: bool
    detail: str

    def as_dict(self) -> dict:
        return {"rule": self.rule, "ok": self.ok, "detail": self.detail}


@dataclass
class Verdict:
    allowed: bool
    status: int             # what the server would answer: 200 (or the handler's), 401, 403, 429
    rule: str | None        # the rule that refuses, None when allowed
    steps: list[Step] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"allowed": self.allowed, "status": self.status, "rule": self.rule,
                "steps": [step.as_dict() for step in self.steps]}


class ReadOnlyLimiter:
    """Decides like the server's limiter over the counts of an SQLite limits store, recording nothing.

    Without such a store (one worker counts in memory) every request is admitted here, and ``note``
    says so."""

    def __init__(self, path: Path | None, clock=time.time) -> None:
        self.path = path
        self.note = "" if path is not None else ("counted in the running server's memory, not visible here: "
                                                 "GET /api/me as the user shows what is left")
        self._clock = clock

    def acquire(self, user: str, limits: Limits) -> Decision:
        now = self._clock()
        if self.path is None or limits.unlimited:
            return Decision(True)
        import sqlite3

        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2)
        except sqlite3.Error:
            return Decision(True)        # no store yet: nothing counted, nothing spent
        try:
            count, oldest = db.execute("SELECT COUNT(*), MIN(at) FROM admitted WHERE user = ? AND at > ?",
                                       (user, now - 3600.0)).fetchone()
            in_flight = db.execute("SELECT COALESCE(SUM(n), 0) FROM in_flight WHERE user = ?", (user,)).fetchone()[0]
        except sqlite3.Error:
            return Decision(True)
        finally:
            db.close()
        refusal = _refusal(limits, in_flight, count, oldest, now)
        return refusal or _decision(True, 0, "", limits, count, oldest, now)

    def release(self, user: str, decision: Decision | None = None) -> None:
        pass


def explain(user, name: str, method: str, path: str, ip: str, networks, default_limits: Limits,
            limiter: ReadOnlyLimiter, override: str | None = None) -> Verdict:
    """The server's decision for ``user`` (None: no such user) sending ``method path`` from ``ip``."""
    from tlskit.server.policy import Denial, Gate

    gate = Gate(None, None, networks, limiter=limiter, default_limits=default_limits)
    steps: list[Step] = []
    if not gate.ip_allowed(ip):
        shown = ", ".join(str(n) for n in networks)
        steps.append(Step("address", False, f"{ip} is not in the allowed networks ({shown}); serve {option('allow')}"))
        return Verdict(False, 403, "address", steps)
    steps.append(Step("address", True, f"{ip} is allowed"))
    if user is None:
        steps.append(Step("user", False, f"no user {name}: every credential for it is a 401"))
        return Verdict(False, 401, "user", steps)
    steps.append(Step("credentials", True, _credentials(user)))
    headers = [(b"x-http-method-override", override.encode("latin-1"))] if override else []
    scope = {"type": "http", "method": method.upper(), "path": path, "raw_path": path.encode("latin-1", "replace"),
             "query_string": b"", "headers": headers}
    # The gate's own method-and-limits step, by its private name: tests/unit/MUTANTS.md tracks the
    # mutation survivors of that method under it.
    outcome = asyncio.run(gate._privileges_and_limits(scope, user))
    if isinstance(outcome, Denial):
        if outcome.reason == "method":
            steps.append(Step("method", False, f"{name} may {','.join(_ordered(user.methods))}, not "
                                               f"{override.upper() if override and not user.may(override.upper()) else method.upper()}"))
            return Verdict(False, outcome.status, "method", steps)
        steps.append(Step("method", True, f"{method.upper()} is allowed"))
        steps.append(Step("limit", False, _limit_detail(gate.limits_for(user), outcome)))
        return Verdict(False, outcome.status, "limit", steps)
    steps.append(Step("method", True, f"{method.upper()} is allowed"))
    limits = gate.limits_for(user)
    detail = _limits_text(limits)
    if limiter.note and not limits.unlimited:
        detail += f"; {limiter.note}"
    elif outcome.decision is not None and outcome.decision.limit:
        detail += f"; {outcome.decision.remaining} left this hour"
    steps.append(Step("limit", True, detail))
    return Verdict(True, 200, None, steps)


def _ordered(methods) -> list[str]:
    from tlskit.server.users import ALL_METHODS

    return sorted(methods, key=ALL_METHODS.index)


def _credentials(user) -> str:
    kinds = []
    if user.password_hash:
        kinds.append("a password")
    if user.token_hashes:
        kinds.append(f"{len(user.token_hashes)} token(s)")
    if user.cert_fingerprints:
        kinds.append(f"{len(user.cert_fingerprints)} pinned certificate(s)")
    if user.s3_key_ids:
        kinds.append(f"{len(user.s3_key_ids)} S3 key pair(s)")
    if not kinds:
        return f"no password, token or key: only a client certificate naming it (serve {option('client_ca')})"
    return "authenticates with " + ", ".join(kinds) + (
        "" if user.cert_fingerprints else f", or a client certificate naming it when serve runs with {option('client_ca')}")


def _limits_text(limits: Limits) -> str:
    if limits.unlimited:
        return "no limits"
    parts = []
    if limits.max_requests:
        parts.append(f"{limits.max_requests} requests per hour")
    if limits.max_concurrent:
        parts.append(f"{limits.max_concurrent} at once")
    return ", ".join(parts)


def _limit_detail(limits: Limits, denial) -> str:
    for name, value in denial.headers:
        if name == b"retry-after":
            return f"{_limits_text(limits)}: spent, retry after {value.decode()} s"
    return f"{_limits_text(limits)}: spent"
