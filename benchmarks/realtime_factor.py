"""Whole-job real-time factor of a 10-minute multi-speaker recording on the embedded default.

The input is real speech: the libri-dev-linking conversations and AMI meeting excerpts of
../shared/data laid end to end up to 10 minutes; without ../shared, a 10-minute conversation
of the project's own espeak-ng voices. The server runs as its own process; RTF counts the
server's processing time (decode, segmentation, embeddings, clustering, linking), and the wall time of
the whole call, upload included, is printed beside it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from speakerlink import Client  # noqa: E402

from benchmarks._server import ROOT, server_process  # noqa: E402

SECONDS = 600
RATE = 16000


def ten_minutes() -> tuple[np.ndarray, str]:
    shared = ROOT.parent / "shared" / "data"
    files = sorted((shared / "libri-dev-linking" / "audio").glob("*.wav")) + sorted((shared / "ami-train" / "audio").glob("*.wav"))
    if files:
        audio = np.concatenate([sf.read(f, dtype="float32")[0] for f in files])
        source = "libri-dev-linking + ami-train (real speech)"
    else:
        import sample_clips

        turns = [(sample_clips.VOICES[i % 4], s) for i, s in enumerate(sample_clips.SENTENCES)]
        audio, _ = sample_clips.make_conversation(turns)
        source = "espeak-ng conversation (../shared absent)"
    reps = int(np.ceil(SECONDS * RATE / len(audio)))
    return np.tile(audio, reps)[: SECONDS * RATE], source


def main() -> None:
    audio, source = ten_minutes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ten-minutes.flac"
        sf.write(path, audio, RATE)
        with server_process() as (_, address), Client(address) as client:
            client.diarize([path])  # warm-up: first-call allocations and caches
            started = time.monotonic()
            result = client.diarize([path], timeout=3600)
            wall = time.monotonic() - started
    s = result.summary
    print(f"input: {s.audio_seconds:.0f} s, {source}")
    print(f"speakers found: {s.unique_speakers}")
    print(f"processing: {s.processing_seconds:.2f} s  -> real-time factor {s.processing_seconds / s.audio_seconds:.4f}")
    print(f"whole call (upload + queue + processing): {wall:.2f} s -> {wall / s.audio_seconds:.4f}")


if __name__ == "__main__":
    main()
