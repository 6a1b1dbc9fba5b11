"""How soon a cancel takes effect: a 10-minute job cancelled at several points of its run.

The server runs as its own process on the 10 minutes of benchmarks/realtime_factor.py; for
each point, the seconds from CancelJob to the job's cancelled event are printed with the stage
the job was in.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from speakerlink import Client, JobCancelledError  # noqa: E402

from benchmarks._server import server_process  # noqa: E402
from benchmarks.realtime_factor import RATE, ten_minutes  # noqa: E402

AFTER_SECONDS = (0.5, 2.0, 4.0, 7.0, 10.0)


def main() -> None:
    audio, source = ten_minutes()
    print(f"input: {len(audio) / RATE:.0f} s, {source}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ten-minutes.flac"
        sf.write(path, audio, RATE)
        with server_process() as (_, address), Client(address) as client:
            took = []
            for after in AFTER_SECONDS:
                events = client.iter_diarize([path], timeout=600)
                job_id = next(events).job_id
                stage, started = "queued", time.monotonic()
                for event in events:
                    if event.HasField("progress"):
                        stage = event.progress.stage
                    if time.monotonic() - started > after:
                        break
                asked = time.monotonic()
                client.cancel(job_id)
                try:
                    client.wait(job_id, timeout=120)
                except JobCancelledError:
                    pass
                took.append(time.monotonic() - asked)
                print(f"cancelled after {after:4.1f} s, in stage {stage:<8}: took effect in {took[-1]:.2f} s", flush=True)
    print(f"slowest: {max(took):.2f} s")


if __name__ == "__main__":
    main()
