"""Whole-job real-time factor of a 10-minute multi-speaker recording on the embedded default.

The input is real speech: the libri-dev-linking conversations and AMI meeting excerpts of
../shared/data laid end to end up to 10 minutes; without ../shared, a 10-minute conversation
of the project's own espeak-ng voices. The server runs as its own process; RTF counts the
server's processing time (decode, segmentation, embeddings, clustering, linking), and the wall time of
the whole call, upload included, is printed beside it. `--seconds` also runs the same recording
through the pipeline in this process, with the server's settings, and prints the seconds of each
step (pipeline.hooks.TimingHook).

    python benchmarks/realtime_factor.py [--seconds]
"""

from __future__ import annotations

import argparse
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


def step_seconds(path: Path) -> dict[str, float]:
    """Seconds per step of one in-process run of the recording, after a warm-up run."""
    from speakerlink_server.config import load_config
    from speakerlink_server.engines.registry import load_engines
    from speakerlink_server.pipeline.clip import ClipInput
    from speakerlink_server.pipeline.hooks import TimingHook
    from speakerlink_server.pipeline.run import DiarizationPipeline

    config = load_config()  # the SPEAKERLINK_* environment applies, as for the server above
    engines = load_engines(config)
    try:
        pipeline = DiarizationPipeline(engines.segmenter, engines.speech, engines.embedder("auto"), chunk_seconds=config.chunk_seconds,
                                       max_clip_seconds=config.max_clip_seconds)
        clips = [ClipInput(0, path.name, path, 1.0)]
        pipeline.run(clips, pipeline.default_request())  # warm-up, as for the server
        timing = TimingHook()
        pipeline.run(clips, pipeline.default_request(), timing)
        return timing.seconds
    finally:
        engines.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", action="store_true", help="also print the seconds of each step, run in-process")
    args = parser.parse_args()
    audio, source = ten_minutes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ten-minutes.flac"
        sf.write(path, audio, RATE)
        with server_process() as (_, address), Client(address) as client:
            client.diarize([path])  # warm-up: first-call allocations and caches
            started = time.monotonic()
            result = client.diarize([path], timeout=3600)
            wall = time.monotonic() - started
        steps = step_seconds(path) if args.seconds else {}
    s = result.summary
    print(f"input: {s.audio_seconds:.0f} s, {source}")
    print(f"speakers found: {s.unique_speakers}")
    print(f"processing: {s.processing_seconds:.2f} s  -> real-time factor {s.processing_seconds / s.audio_seconds:.4f}")
    print(f"whole call (upload + queue + processing): {wall:.2f} s -> {wall / s.audio_seconds:.4f}")
    if steps:
        total = sum(steps.values())
        print(f"in-process, seconds per step ({total:.2f} s in all):")
        for step, seconds in steps.items():
            print(f"  {step:<8} {seconds:8.2f} s  {seconds / total:6.1%}")


if __name__ == "__main__":
    main()
