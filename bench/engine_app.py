"""tlskit's real request path (gate, dataset, access log) as an ASGI app, for other servers to run.

bench/bench_engines.py starts uvicorn, hypercorn and granian on ``bench.engine_app:app`` to compare
them with tlskit's own HTTP engine doing exactly the same work. The state directory and users database
come from ``TLSKIT_BENCH_STATE`` and ``TLSKIT_BENCH_DB``; the access log goes to ``TLSKIT_BENCH_LOG``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tlskit.server.answers import lifespan
from tlskit.server.config import build_config
from tlskit.server.run import build_app, prepare

_prepared = prepare(build_config({"state_dir": Path(os.environ["TLSKIT_BENCH_STATE"]),
                                  "db": Path(os.environ["TLSKIT_BENCH_DB"])}))
_app, _log = build_app(_prepared, log_stream=open(os.environ.get("TLSKIT_BENCH_LOG", os.devnull), "w"))


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send, on_shutdown=_flush)
        return
    await _app(scope, receive, send)


async def _flush() -> None:
    if _log is not None:
        _log.flush()
