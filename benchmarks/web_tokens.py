"""What made-up tokens cost the web page: open files and memory after 300 of them.

A TLS server with a tenants file and the page in front of it, in this process. Each request
brings a new random bearer token; the page sends every token over its one channel as that
call's credentials, so the open files and memory should stay flat and every answer be a 401.

    python benchmarks/web_tokens.py
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from certs import Authority  # noqa: E402
from conftest import make_config  # noqa: E402
from speakerlink_server.main import start_server  # noqa: E402
from test_security import write_tenants  # noqa: E402
from test_web import serving_page  # noqa: E402

TOKENS = 300


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="speakerlink-web-tokens-"))
    authority = Authority(folder, "ca")
    issued = authority.issue("server", server=True)
    tenants = write_tenants(folder / "tenants.toml", {"acme": [secrets.token_urlsafe(32)]})
    running = start_server(make_config(folder / "data", tls_cert=str(issued.cert), tls_key=str(issued.key),
                                       tenants_file=str(tenants)))
    process = psutil.Process()
    try:
        with serving_page(f"localhost:{running.config.port}", {"tls": authority.pem}) as url, \
                httpx.Client(base_url=url, timeout=30) as http:
            def ask() -> int:
                return http.get("/api/jobs", headers={"Authorization": f"Bearer {secrets.token_urlsafe(24)}",
                                                      "X-Speakerlink": "1"}).status_code

            for _ in range(10):  # the page's one channel and the pools settle first
                ask()
            files, memory, started = process.num_fds(), process.memory_info().rss, time.monotonic()
            answers = Counter(ask() for _ in range(TOKENS))
            print(f"{TOKENS} made-up tokens: {process.num_fds() - files:+d} open files, "
                  f"{(process.memory_info().rss - memory) / 2**20:+.1f} MiB, {time.monotonic() - started:.1f} s, "
                  f"answers {dict(answers)}")
    finally:
        running.stop(grace=0)


if __name__ == "__main__":
    main()
