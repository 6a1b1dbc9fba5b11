"""Whole-job real-time factor of a 10-minute multi-speaker recording on the embedded default.

The input is real speech: the libri-dev-linking conversations and AMI meeting excerpts of
../shared/data laid end to end up to 10 minutes; without ../shared, a 10-minute conversation
of the project's own espeak-ng voices. The server runs as its own process; RTF counts the
server's processing time (decode, segmentation, embeddings, clustering, linking), and the wall time of
the whole call, upload included, is printed beside it. `--seconds` also runs the same recording
through the pipeline in this process, with the server's settings, and prints the seconds of each
step (pipeline.hooks.TimingHook). `--mixed-bands` cuts the same 10 minutes into 10 clips of a minute
and passes every other one through a GSM phone line, so the job mixes bands and its "link" step
includes hearing the full-band voices again through a phone line (pipeline.matched_band).

    python benchmarks/realtime_factor.py [--seconds] [--mixed-bands]
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
MIXED_CLIPS = 10  # the most a job takes by default


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


def clips_of(audio: np.ndarray, folder: Path, mixed_bands: bool) -> list[Path]:
    """The recording as one clip, or as MIXED_CLIPS clips with every other one through a GSM line."""
    if not mixed_bands:
        path = folder / "ten-minutes.flac"
        sf.write(path, audio, RATE)
        return [path]
    from speakerlink import conditions
    from speakerlink.condition_spec import parse

    paths = []
    for k, piece in enumerate(np.array_split(audio, MIXED_CLIPS)):
        paths.append(folder / f"part{k:02d}.flac")
        heard = conditions.apply(parse("phone-gsm"), piece, clip=paths[-1].stem, seed=1).audio if k % 2 else piece
        sf.write(paths[-1], heard, RATE)
    return paths


def step_seconds(paths: list[Path]) -> dict[str, float]:
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
        clips = [ClipInput(k, path.name, path, 1.0) for k, path in enumerate(paths)]
        pipeline.run(clips, pipeline.default_request())  # warm-up, as for the server
        timing = TimingHook()
        pipeline.run(clips, pipeline.default_request(), timing)
        return timing.seconds
    finally:
        engines.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", action="store_true", help="also print the seconds of each step, run in-process")
    parser.add_argument("--mixed-bands", action="store_true", help="10 clips of a minute, every other one through a GSM line")
    args = parser.parse_args()
    audio, source = ten_minutes()
    with tempfile.TemporaryDirectory() as tmp:
        paths = clips_of(audio, Path(tmp), args.mixed_bands)
        with server_process() as (_, address), Client(address) as client:
            client.diarize(paths)  # warm-up: first-call allocations and caches
            started = time.monotonic()
            result = client.diarize(paths, timeout=3600)
            wall = time.monotonic() - started
        steps = step_seconds(paths) if args.seconds else {}
    s = result.summary
    shape = f", as {MIXED_CLIPS} clips, every other one through a GSM line" if args.mixed_bands else ""
    print(f"input: {s.audio_seconds:.0f} s, {source}{shape}")
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
