"""What enrollments cost a job that runs beside them.

One server with one worker slot. A job of the sample meeting, tiled to 73 s, is timed alone,
then again with three enrollments of 180 s of one voice sent just after it. Enrollments take
one of the worker slots before they embed (capacity.py), so the job's time should stay close
to its time alone; without that, the three enrollments ran beside it on their call threads.

    python benchmarks/enrollment_load.py
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "examples"))
import sample_clips  # noqa: E402
from conftest import make_config, one_voice  # noqa: E402
from speakerlink import Client  # noqa: E402
from speakerlink_server.main import start_server  # noqa: E402

ENROLL_SECONDS = 180


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="speakerlink-enroll-load-"))
    sample_clips.write_sample_set(folder)
    meeting, rate = sf.read(folder / "meeting.wav", dtype="float32")
    job = folder / "job.flac"
    sf.write(job, np.tile(meeting, 2), rate)
    voice, rate = sf.read(one_voice(folder, sample_clips.VOICES[0]), dtype="float32")
    enroll = folder / "enroll.flac"
    sf.write(enroll, np.resize(voice, ENROLL_SECONDS * rate), rate)
    running = start_server(make_config(folder / "data", workers=1))
    try:
        with Client(running.config.address, timeout=600) as client:
            client.diarize([job])  # warm
            started = time.monotonic()
            client.diarize([job])
            alone = time.monotonic() - started
            beside: list[float] = []

            def run_job() -> None:
                began = time.monotonic()
                client.diarize([job])
                beside.append(time.monotonic() - began)

            threads = [threading.Thread(target=run_job)]
            threads[0].start()
            time.sleep(0.5)
            threads += [threading.Thread(target=client.enroll, args=(f"voice {n}", [enroll])) for n in range(3)]
            for thread in threads[1:]:
                thread.start()
            for thread in threads:
                thread.join()
            print(f"job of {len(meeting) * 2 / rate:.0f} s: alone {alone:.1f} s; with 3 enrollments of "
                  f"{ENROLL_SECONDS} s sent just after it {beside[0]:.1f} s")
    finally:
        running.stop(grace=0)


if __name__ == "__main__":
    main()
