"""How many live streams one server keeps up with at real speed, with their latency held.

The server runs as its own process. For each number of streams, that many clients stream
real speech (benchmarks/realtime_factor.py's recording, each from its own place in it) at
its real pace, side by side, at one latency; their starts are spread over one second, as
streams that people start are (`--together` starts them in the same instant: the server then
moves their steps apart by whole frames, live_stream.StepInstants). The delay of an update is
how long after the oldest moment it decides was captured it arrived: in audio time the latency
less the tenth of a step kept for the analysis (pipeline.live), plus the analysis and any
time the server fell behind. A number of streams keeps up where the p95 of that delay is
within the latency + 0.5 s.

    python benchmarks/live_keepup.py                 # 1, 2, 4, 6, 8 streams of 60 s at 2 s latency
    python benchmarks/live_keepup.py --streams 6 --seconds 120 [--together]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from speakerlink import Client  # noqa: E402
from speakerlink.live import paced  # noqa: E402

from benchmarks._server import server_process  # noqa: E402
from benchmarks.realtime_factor import RATE, ten_minutes  # noqa: E402

FRAME_SECONDS = 0.1
SLACK_SECONDS = 0.5


def stream(address: str, audio: np.ndarray, latency: float, delays: list[float], after: float) -> None:
    time.sleep(after)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    size = int(RATE * FRAME_SECONDS) * 2
    frames = (pcm[i : i + size] for i in range(0, len(pcm), size))
    with Client(address) as client:
        started, decided = None, 0.0
        for event in client.live(paced(frames, RATE * 2, 1.0, threading.Event()), latency=latency, recognize=False):
            if event.HasField("accepted"):
                started = time.monotonic()
            elif event.HasField("update") and started is not None:
                update = event.update
                if update.decided_until > decided and update.heard_seconds < len(audio) / RATE:  # not the flush at the end
                    delays.append(time.monotonic() - started - decided)
                    decided = update.decided_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, action="append", help="numbers of streams to try (default 1 2 4 6 8)")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per stream (default 60)")
    parser.add_argument("--latency", type=float, default=2.0, help="latency of every stream (default 2)")
    parser.add_argument("--together", action="store_true", help="start every stream in the same instant")
    args = parser.parse_args()
    audio, source = ten_minutes()
    length = int(args.seconds * RATE)
    cores = os.cpu_count() or 1
    with server_process() as (_, address), Client(address) as client:
        device = client.info().device
        print(f"input: {source}; {args.seconds:g} s per stream at {args.latency:g} s latency, started "
              f"{'together' if args.together else 'over a second'}; server on {device}, {cores} CPU cores")
        print(f"{'streams':>7} {'p50 delay':>10} {'p95 delay':>10} {'max delay':>10}  keeps up")
        kept = 0
        for count in args.streams or (1, 2, 4, 6, 8):
            delays: list[list[float]] = [[] for _ in range(count)]
            threads = [threading.Thread(target=stream, args=(
                address, np.roll(audio, -n * len(audio) // count)[:length], args.latency, delays[n], 0.0 if args.together else n / count))
                for n in range(count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            every = np.concatenate([np.array(d) for d in delays])
            p50, p95 = np.percentile(every, 50), np.percentile(every, 95)
            ok = p95 <= args.latency + SLACK_SECONDS
            kept = max(kept, count) if ok else kept
            print(f"{count:>7} {p50:>9.2f}s {p95:>9.2f}s {every.max():>9.2f}s  {'yes' if ok else 'no'}", flush=True)
    where = device if "cuda" in device else f"{cores} CPU cores: {kept / cores:g} per core"
    print(f"streams kept up at {args.latency:g} s latency: {kept} ({where})")


if __name__ == "__main__":
    main()
