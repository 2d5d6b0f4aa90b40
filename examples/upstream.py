"""The application of the README's `tlskit serve --upstream` examples: GET /hello.json on 127.0.0.1.

    python3 examples/upstream.py            # port 9000; --port N for another
"""

from __future__ import annotations

import argparse
import http.server
import json

BODY = b'{"hello":"from upstream"}'     # 25 bytes, as in the README's access log lines


class Application(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/hello.json":
            self._send(404, json.dumps({"error": "not found", "path": self.path}).encode())
            return
        self._send(200, BODY)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        # Show what tlskit passed on: the forwarded headers, never credentials (they are stripped).
        forwarded = {k: v for k, v in self.headers.items() if k.lower().startswith("x-forwarded")}
        print(f"{self.command} {self.path} {forwarded}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Application)
    print(f"upstream on http://127.0.0.1:{args.port}/hello.json", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
