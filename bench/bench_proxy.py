"""`tlskit serve --upstream` vs nginx `proxy_pass`: authenticated proxied GET req/s over TLS keep-alive.

The same upstream application for both: an nginx answering a small JSON body with ``return 200`` on a
plain-HTTP loopback port (cheap, so the figure is the proxy's cost, not the application's). Same
certificate, same user (an apr1 htpasswd entry: nginx checks it with ``auth_basic`` on every request,
tlskit imports it and caches the verification), same credentials on every request, access logs on for
both. nginx keeps a pool of upstream keep-alive connections (``keepalive 64`` + HTTP/1.1), as tlskit does
(aiohttp's connector and response parser under tlskit.server.upstream_client).

Rows:
- proxied GET through tlskit serve vs nginx proxy_pass + auth_basic (what each is deployed as);
- the same against nginx proxy_pass without auth_basic (nginx's pure proxy cost, the strictest peer).

The servers under test are pinned to CPU 0, wrk and the upstream to CPU 1 (``taskset``); runs
alternate between the two servers and each figure is the median of RUNS runs.

    .venv/bin/python -m bench.bench_proxy      # prints the rows as JSON
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess

from bench.common import TLSKIT, Result, need, workdir
from bench.servers import CLIENT_CPU, SERVER_CPU, free_port, start_nginx, start_tlskit, stop, wrk, wrk_text

RUNS = int(os.environ.get("BENCH_PROXY_RUNS", "3"))
DURATION = int(os.environ.get("BENCH_PROXY_SECONDS", "5"))
PATH = "/app/items?id=1"
BODY = '{"id":1,"name":"widget","price":9.5}'

UPSTREAM_CONF = """
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        location / {{ default_type application/json; return 200 '{answer}'; }}
    }}
"""

PROXY_CONF = """
    access_log {work}/{name}-access.log combined;
    upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{
            {auth}
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-User $remote_user;
            add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;
        }}
    }}
"""


def run() -> list[Result]:
    need("nginx")
    need("wrk")
    work = workdir("proxy")
    state = work / "state"
    apr1 = subprocess.run(["openssl", "passwd", "-apr1", "proxy-bench-pass"], capture_output=True, text=True,
                          check=True).stdout.strip()
    htpasswd = work / "htpasswd"
    htpasswd.write_text(f"bench:{apr1}\n")
    subprocess.run([*TLSKIT, "users", "import-htpasswd", str(htpasswd), "--state-dir", str(state)], check=True,
                   capture_output=True)
    header = "Authorization: Basic " + base64.b64encode(b"bench:proxy-bench-pass").decode()

    upstream_port = free_port()
    upstream = start_nginx(work, "upstream", UPSTREAM_CONF.format(port=upstream_port, answer=BODY),
                           upstream_port, cpu=CLIENT_CPU)
    procs = [upstream]
    try:
        tlskit, tport = start_tlskit(work, "--state-dir", str(state), "--upstream", f"http://127.0.0.1:{upstream_port}",
                                     cpu=SERVER_CPU, log="tlskit-access.log")
        procs.append(tlskit)
        cert, key = state / "localhost.pem", state / "localhost.key"
        peers = {}
        for name, auth in (("nginx-auth", f'auth_basic "bench"; auth_basic_user_file {htpasswd};'),
                           ("nginx-noauth", "")):
            port = free_port()
            body = PROXY_CONF.format(work=work, name=name, upstream=upstream_port, port=port, cert=cert, key=key,
                                     auth=auth)
            procs.append(start_nginx(work, name, body, port, cpu=SERVER_CPU))
            peers[name] = port
        # Same answer through both proxies (and the upstream really is behind them).
        for port in (tport, *peers.values()):
            got = subprocess.run(["curl", "-sSk", "-H", header, f"https://127.0.0.1:{port}{PATH}"],
                                 capture_output=True, text=True, check=True).stdout
            if got != BODY:
                raise SystemExit(f"port {port} answered {got!r}, not the upstream's body")

        def rate(port: int, seconds: int = DURATION) -> float:
            return wrk(f"https://127.0.0.1:{port}{PATH}", [header], seconds)

        for port in (tport, *peers.values()):
            rate(port, seconds=2)  # warm-up: connections, tlskit's credential cache
        figures: dict[str, list[float]] = {"tlskit": [], **{n: [] for n in peers}}
        for _ in range(RUNS):
            figures["tlskit"].append(rate(tport))
            for name, port in peers.items():
                figures[name].append(rate(port))
    finally:
        for proc in reversed(procs):
            stop(proc)
    tl = statistics.median(figures["tlskit"])
    wrk_cmd = wrk_text(["Authorization: Basic <apr1 user>"], PATH, DURATION)
    tlskit_text = f"tlskit serve --upstream http://127.0.0.1:UP (apr1 user imported); {wrk_cmd}"
    return [
        Result("proxied GET req/s, TLS keep-alive, apr1 user (tlskit --upstream vs nginx proxy_pass + auth_basic)",
               tl, statistics.median(figures["nginx-auth"]), "req/s", "higher", "nginx 1 worker",
               tlskit_text, f"nginx proxy_pass + auth_basic, upstream keepalive 64; {wrk_cmd}", target=">= 1.0x"),
        Result("proxied GET req/s, TLS keep-alive (tlskit --upstream with auth vs nginx proxy_pass, no auth)",
               tl, statistics.median(figures["nginx-noauth"]), "req/s", "higher", "nginx 1 worker",
               tlskit_text, f"nginx proxy_pass, no auth_basic, upstream keepalive 64; {wrk_cmd}"),
    ]


if __name__ == "__main__":
    print(json.dumps([r.as_dict() for r in run()], indent=2))
