"""`GET /metrics`: what `tlskit serve` counts, in Prometheus' text exposition format (version 0.0.4).

A few counters and one histogram, kept in plain dicts: the request path pays a dict update per
request, not a metrics library's locks and label objects (prometheus_client is used only by the tests,
to parse what is written here). Gauges that read files (certificate expiry) are computed at scrape time.

What is counted, and where:

- ``tlskit_requests_total{status,user}`` and ``tlskit_request_duration_seconds``: every answer, in
  :class:`~tlskit.server.app.TlskitApp` (``user`` is ``-`` before authentication);
- ``tlskit_auth_failures_total{reason}``: 401 (missing, malformed or wrong credentials), 429 from the
  login throttle, 503 when the users database cannot be read;
- ``tlskit_denials_total{reason}``: the gate's other refusals (``address``, ``method``, ``limit``, ``body``);
- ``tlskit_upstream_errors_total{status}``: the reverse proxy's 502/504 answers;
- ``tlskit_certificate_expiry_seconds{path}``: seconds left on the served certificate (the one in service
  after hot reloads) and on each ``--acme`` lineage;
- ``tlskit_reloads_total{what,result}``: certificate reloads and SIGHUP settings reloads, done or refused.

With ``--workers N`` each worker counts its own requests, labelled ``worker`` with its pid; Prometheus
sums over it (``sum without (worker) (...)``). A scrape is answered by whichever worker accepts it and
reports every worker: each writes its counts to ``<state dir>/metrics/<pid>.json`` once a second.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
# Seconds; from a cached dataset read (~0.2 ms) to an upstream near its timeout.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
AUTH_REASONS = {"missing credentials": "missing", "malformed credentials": "malformed", "credentials": "wrong",
                "users database": "unavailable"}

_HELP = {
    "tlskit_requests_total": ("counter", "Requests answered, by status code and authenticated user."),
    "tlskit_request_duration_seconds": ("histogram", "Time from the request head to the end of the answer."),
    "tlskit_auth_failures_total": ("counter", "Requests refused for their credentials, by reason."),
    "tlskit_denials_total": ("counter", "Requests the gate refused for other reasons (address, method, limit)."),
    "tlskit_upstream_errors_total": ("counter", "502 and 504 answers of the reverse proxy."),
    "tlskit_reloads_total": ("counter", "Certificate and settings reloads, by result."),
    "tlskit_certificate_expiry_seconds": ("gauge", "Seconds until the certificate's notAfter."),
}


class Metrics:
    """The counts of one worker. ``observe`` is called once per answered request."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}
        self.auth_failures: dict[str, int] = {}
        self.denials: dict[str, int] = {}
        self.upstream_errors: dict[str, int] = {}
        self.reloads: dict[tuple[str, str], int] = {}
        self.buckets = [0] * len(BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0
        # Read at scrape time: counters kept elsewhere (the certificate reloader) and certificate files.
        self.reload_sources: list[Callable[[], Iterable[tuple[str, str, int]]]] = []
        self.certificates: list[Callable[[], Iterable[tuple[str, float]]]] = []

    def observe(self, status: int, user: str | None, seconds: float, denial_reason: str | None = None,
                upstream: bool = False) -> None:
        key = (str(status), user or "-")
        self.requests[key] = self.requests.get(key, 0) + 1
        self.duration_sum += seconds
        self.duration_count += 1
        for index, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.buckets[index] += 1
                break
        if denial_reason:
            self.count_denial(status, denial_reason)
        elif upstream and status in (502, 504):
            self.upstream_errors[str(status)] = self.upstream_errors.get(str(status), 0) + 1

    def count_denial(self, status: int, reason: str) -> None:
        if status in (401, 503) or (status == 429 and reason != "limit"):
            label = AUTH_REASONS.get(reason, "throttled" if status == 429 else reason)
            self.auth_failures[label] = self.auth_failures.get(label, 0) + 1
        else:
            self.denials[reason] = self.denials.get(reason, 0) + 1

    def count_reload(self, what: str, done: bool) -> None:
        key = (what, "done" if done else "refused")
        self.reloads[key] = self.reloads.get(key, 0) + 1

    # ---- exposition ------------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """This worker's counts as JSON-able data (what a worker shares with the others)."""
        reloads = dict(self.reloads)
        for source in self.reload_sources:
            for what, result, count in source():
                reloads[(what, result)] = reloads.get((what, result), 0) + count
        return {
            "requests": [[s, u, n] for (s, u), n in self.requests.items()],
            "auth_failures": self.auth_failures, "denials": self.denials,
            "upstream_errors": self.upstream_errors,
            "reloads": [[w, r, n] for (w, r), n in reloads.items()],
            "buckets": self.buckets, "sum": self.duration_sum, "count": self.duration_count,
        }

    def certificate_expiry(self) -> dict[str, float]:
        seconds = {}
        for source in self.certificates:
            for label, left in source():
                seconds[label] = left
        return seconds


def render(workers: dict[str, dict], certificates: dict[str, float]) -> bytes:
    """The exposition text for the snapshots of ``workers`` (pid -> :meth:`Metrics.snapshot`)."""
    labelled = len(workers) > 1
    out: list[str] = []

    def family(name: str) -> None:
        kind, text = _HELP[name]
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")

    def sample(name: str, labels: dict[str, str], value: float, worker: str) -> None:
        if labelled:
            labels = {**labels, "worker": worker}
        out.append(f"{name}{_labels(labels)} {_number(value)}")

    family("tlskit_requests_total")
    for worker, data in workers.items():
        for status, user, count in data["requests"]:
            sample("tlskit_requests_total", {"status": status, "user": user}, count, worker)
    family("tlskit_request_duration_seconds")
    for worker, data in workers.items():
        cumulative = 0
        for bound, count in zip(BUCKETS, data["buckets"]):
            cumulative += count
            sample("tlskit_request_duration_seconds_bucket", {"le": _number(bound)}, cumulative, worker)
        sample("tlskit_request_duration_seconds_bucket", {"le": "+Inf"}, data["count"], worker)
        sample("tlskit_request_duration_seconds_sum", {}, data["sum"], worker)
        sample("tlskit_request_duration_seconds_count", {}, data["count"], worker)
    for name, key, label in (("tlskit_auth_failures_total", "auth_failures", "reason"),
                             ("tlskit_denials_total", "denials", "reason"),
                             ("tlskit_upstream_errors_total", "upstream_errors", "status")):
        family(name)
        for worker, data in workers.items():
            for value, count in data[key].items():
                sample(name, {label: value}, count, worker)
    family("tlskit_reloads_total")
    for worker, data in workers.items():
        for what, result, count in data["reloads"]:
            sample("tlskit_reloads_total", {"what": what, "result": result}, count, worker)
    family("tlskit_certificate_expiry_seconds")
    for path, left in sorted(certificates.items()):
        out.append(f"tlskit_certificate_expiry_seconds{_labels({'path': path})} {_number(left)}")
    return ("\n".join(out) + "\n").encode()


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def certificate_seconds_left(path: Path, label: str | None = None) -> Callable[[], Iterable[tuple[str, float]]]:
    """A gauge source: seconds left on the first certificate of ``path``, re-read when the file changes."""
    cache: dict[str, object] = {}

    def read() -> Iterable[tuple[str, float]]:
        try:
            stat = path.stat()
        except OSError:
            return []
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if cache.get("stamp") != stamp:
            from tlskit.files import load_certificates

            try:
                cache["not_after"] = load_certificates(path)[0].not_valid_after_utc.timestamp()
            except Exception:  # a half-written file: report it on the next scrape
                return []
            cache["stamp"] = stamp
        return [(label or str(path), float(cache["not_after"]) - time.time())]

    return read


class SharedCounts:
    """The workers of ``--workers N`` publish their snapshots under one directory; any of them renders all.

    Each worker writes ``<pid>.json`` atomically once a second; a file whose process is gone is skipped
    (and removed), so a restarted worker does not count twice.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.own = directory / f"{os.getpid()}.json"

    def publish(self, metrics: Metrics) -> None:
        temp = self.own.with_suffix(".tmp")
        try:
            temp.write_text(json.dumps(metrics.snapshot()))
            os.replace(temp, self.own)
        except OSError:
            pass

    def collect(self, metrics: Metrics) -> dict[str, dict]:
        from tlskit.files import process_alive

        workers = {str(os.getpid()): metrics.snapshot()}
        for path in self.directory.glob("*.json"):
            pid = path.stem
            if pid == str(os.getpid()) or not pid.isdigit():
                continue
            if not process_alive(int(pid)):
                path.unlink(missing_ok=True)
                continue
            try:
                workers[pid] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
        return workers

    def remove(self) -> None:
        self.own.unlink(missing_ok=True)


METRICS_PATH = "/metrics"


class MetricsEndpoint:
    """Who may read ``/metrics``, and the answer: clients in ``networks`` (a Prometheus server) without
    credentials, and authenticated users holding the METRICS privilege (``tlskit users set NAME --methods
    GET,METRICS``)."""

    def __init__(self, metrics: Metrics, networks=(), shared: SharedCounts | None = None) -> None:
        self.metrics = metrics
        self.networks = tuple(networks)
        self.shared = shared

    def allows_address(self, ip: str) -> bool:
        if not self.networks:
            return False
        import ipaddress

        try:
            address = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == n.version and address in n for n in self.networks)

    def body(self) -> bytes:
        workers = (self.shared.collect(self.metrics) if self.shared is not None
                   else {str(os.getpid()): self.metrics.snapshot()})
        return render(workers, self.metrics.certificate_expiry())

    async def answer(self, send, method: str) -> None:
        from tlskit.server.answers import answer, answer_json

        if method not in ("GET", "HEAD"):
            await answer_json(send, 405, b'{"error":"method not allowed","detail":"/metrics answers GET"}',
                              [(b"allow", b"GET, HEAD")], method)
            return
        await answer(send, 200, self.body(), CONTENT_TYPE, [(b"cache-control", b"no-store")], method)

    async def answer_user(self, send, method: str, user) -> None:
        from tlskit.server.users import METRICS_PRIVILEGE

        if METRICS_PRIVILEGE not in user.methods:
            from tlskit.server.answers import answer_json

            await answer_json(send, 403, b'{"error":"forbidden","detail":"reading /metrics needs the METRICS '
                                         b'privilege"}', [], method)
            return
        await self.answer(send, method)
