"""Run the real server as a child process, so its memory and CPU are its own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server_process(*flags: str) -> Iterator[tuple[subprocess.Popen, str]]:
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        log = open(Path(data) / "server.log", "w+")
        proc = subprocess.Popen(
            [sys.executable, "-m", "speakerlink_server", "--port", str(port), "--data-dir", f"{data}/d", *flags],
            stdout=log, stderr=subprocess.STDOUT, env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
        try:
            deadline = time.monotonic() + 120
            while "ready on" not in Path(log.name).read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(Path(log.name).read_text())
                time.sleep(0.2)
            yield proc, f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
