"""One access-log line per request: combined-log style (as nginx writes) or JSON lines (``--log-json``).

Lines never carry a secret: no header but User-Agent and Referer is written, and the ``authtoken``
query parameter, however it is spelled (:mod:`.query`), is replaced by ``authtoken=REDACTED`` in the
request target and in the Referer. The user is the authenticated name, or ``-``.

Writing is buffered and flushed at least once a second (and when 64 KiB pile up): a write(2) per
request would cost more than the rest of the hot path. The formatted timestamp is reused within a second.

With a file (``--access-log FILE``) each flush is one ``write(2)`` of whole lines on an ``O_APPEND``
descriptor, so the workers of ``--workers N`` can share the file without tearing each other's lines.
:meth:`AccessLog.reopen` (SIGUSR1, as nginx) opens the path again after logrotate renamed the file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from tlskit.server import query

FLUSH_BYTES = 64 * 1024
FLUSH_SECONDS = 1.0


def _redact_url(url: bytes) -> bytes:
    """A Referer (an absolute URL) with its query redacted; fragments never reach a server."""
    base, mark, rest = url.partition(b"?")
    return base + mark + query.redact(rest) if mark else url


def _quote(text: str) -> str:
    if '"' not in text and "\\" not in text:
        return text
    return text.replace("\\", "\\\\").replace('"', '\\"')


class AccessLog:
    def __init__(self, stream: TextIO | None = None, json_lines: bool = False, path: Path | None = None) -> None:
        self.stream = stream or sys.stdout
        self.json_lines = json_lines
        self.path = path
        self._fd = open_log_file(path) if path is not None else None
        self._buffer: list[str] = []
        self._size = 0
        self._second = -1
        self._stamp = ""
        self._timer = None

    def _timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)) if self.json_lines
                           else time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)))
        return self._stamp

    def log(self, scope: dict, ip: str, user: str | None, status: int, size: int, duration: float) -> None:
        now = time.time()
        path = scope.get("raw_path") or scope["path"].encode()
        path_text = path.decode("latin-1") if isinstance(path, bytes) else path
        query_string = scope.get("query_string", b"")
        if query_string:
            path_text += "?" + query.redact(query_string).decode("latin-1")
        agent = referer = "-"
        for name, value in scope["headers"]:
            if name == b"user-agent":
                agent = value.decode("latin-1")
            elif name == b"referer":
                referer = _redact_url(value).decode("latin-1")
        if self.json_lines:
            line = json.dumps({"time": self._timestamp(now), "ip": ip, "user": user, "method": scope["method"],
                               "path": path_text, "status": status, "bytes": size,
                               "duration_ms": round(duration * 1000, 3), "user_agent": agent,
                               "referer": referer}, separators=(",", ":")) + "\n"
        else:
            line = (f'{ip} - {user or "-"} [{self._timestamp(now)}] "{scope["method"]} {_quote(path_text)} '
                    f'HTTP/{scope.get("http_version", "1.1")}" {status} {size} "{_quote(referer)}" '
                    f'"{_quote(agent)}" {duration * 1000:.3f}ms\n')
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            self._schedule()

    def _schedule(self) -> None:
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._timer = loop.call_later(FLUSH_SECONDS, self._timed_flush)

    def _timed_flush(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        data = "".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        try:
            if self._fd is not None:
                payload = data.encode("utf-8", "replace")
                while payload:
                    payload = payload[os.write(self._fd, payload):]
            else:
                self.stream.write(data)
                self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed stdout or a full disk must not take the server down

    def set_format(self, json_lines: bool) -> None:
        """Combined-log or JSON lines from the next request on (the timestamp's format goes with it)."""
        if json_lines != self.json_lines:
            self.flush()
            self.json_lines = json_lines
            self._second = -1

    def reopen(self) -> None:
        """Write to a fresh file at :attr:`path` from now on (logrotate moved the old one away)."""
        if self.path is None:
            return
        self.flush()
        try:
            fd = open_log_file(self.path)
        except OSError:
            return  # keep writing to the old file rather than lose lines
        old, self._fd = self._fd, fd
        if old is not None:
            os.close(old)

    def close(self) -> None:
        self.flush()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def open_log_file(path: Path) -> int:
    """An append-only descriptor for the access log, created 0640 (readable by an adm-like group)."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
