"""The server's peak memory while it receives large uploads: it must not grow with the size.

Uploads of 10, 50 and 100 MB (random bytes in a .wav name: the server streams them to disk
before it looks inside) go to a server process whose resident memory is sampled every 10 ms.
The job is refused after the upload (not audio), so only receiving is measured.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from speakerlink import Client, SpeakerlinkError  # noqa: E402

from benchmarks._server import server_process  # noqa: E402

MB = 1_000_000


def peak_rss_during(pid: int, action) -> tuple[int, int, float]:
    proc = psutil.Process(pid)
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        action()
    finally:
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
    return before, peak[0], elapsed


def main() -> None:
    sizes = (10, 50, 100)
    with tempfile.TemporaryDirectory() as tmp, server_process("--max-file-bytes", str(120 * MB)) as (proc, address):
        with Client(address, timeout=600) as client:
            print(f"{'upload':>8} {'rss before':>11} {'peak rss':>9} {'growth':>8} {'throughput':>11}")
            for size in sizes:
                path = Path(tmp) / f"upload-{size}mb.wav"
                with path.open("wb") as fh:
                    for _ in range(size):
                        fh.write(os.urandom(MB))

                def upload(path: Path = path) -> None:
                    try:
                        client.diarize([path])
                    except SpeakerlinkError as err:
                        assert err.code == "NOT_AUDIO", err
                before, peak, seconds = peak_rss_during(proc.pid, upload)
                print(f"{size:>6}MB {before / 2**20:>9.1f}MiB {peak / 2**20:>7.1f}MiB {(peak - before) / 2**20:>6.1f}MiB "
                      f"{size / seconds:>8.0f}MB/s")
                path.unlink()


if __name__ == "__main__":
    main()
