"""Peak server memory and real-time factor for one long recording (F14), on this machine.

The recording is the project's sample clips end to end, repeated to the length asked (2 hours
by default), as a 64 kbit/s MP3. The server runs as a child process; its resident memory, with
its ffmpeg children, is sampled every 20 ms while it diarizes the file.

`--cast libri` makes it of ../shared/data/libri-dev-linking's 16 conversations instead (real
read speech, 32 people), each round in another order so that chunk boundaries fall elsewhere,
and also prints its DER against their reference laid end to end: the same people recurring
over an hour of 10-minute chunks must keep one label each.

    python benchmarks/long_recording.py [--hours 2] [--chunk-seconds 600] [--cast samples|libri]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import sample_clips  # noqa: E402
from speakerlink import Client  # noqa: E402
from speakerlink.evaluation import Turns, hypothesis_of, read_rttm, score  # noqa: E402

from benchmarks._server import ROOT, server_process  # noqa: E402

LIBRI = ROOT.parent / "shared" / "data" / "libri-dev-linking"


def sample_rounds(out: Path, hours: float) -> list[Path]:
    clips = []
    for clip in sample_clips.write_sample_set(out / "samples"):
        if clip.suffix != ".rttm":  # one codec for the concat demuxer
            clips.append(clip.with_suffix(".pcm.wav"))
            subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-ac", "1", "-ar", "16000", str(clips[-1])], check=True)
    seconds = sum(p.stat().st_size / 32000 for p in clips)
    return clips * (int(hours * 3600 // seconds) + 1)


def libri_rounds(hours: float) -> tuple[list[Path], Turns]:
    """libri-dev-linking's conversations, each round in another order, and the reference of
    the whole recording."""
    clips = sorted((LIBRI / "audio").glob("*.wav"))
    reference = read_rttm(LIBRI / "all.rttm")
    order: list[Path] = []
    turns: list[tuple[float, float, str]] = []
    offset, round_ = 0.0, 0
    while offset < hours * 3600:
        for k in np.random.default_rng(round_).permutation(len(clips)):
            order.append(clips[k])
            turns += [(offset + start, offset + end, who) for start, end, who in reference[clips[k].stem]]
            offset += sf.info(clips[k]).duration
        round_ += 1
    return order, {"long": turns}


def make_recording(out: Path, hours: float, clips: list[Path]) -> Path:
    listing = out / "list.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in clips))
    path = out / "long.mp3"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing), "-t", str(hours * 3600),
         "-ac", "1", "-ar", "16000", "-c:a", "libmp3lame", "-b:a", "64k", str(path)],
        check=True,
    )
    return path


def rss_with_children(proc: psutil.Process) -> int:
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--chunk-seconds", type=float, default=600.0)
    parser.add_argument("--cast", choices=("samples", "libri"), default="samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.cast == "libri":
            clips, reference = libri_rounds(args.hours)
        else:
            clips, reference = sample_rounds(Path(tmp), args.hours), None
        path = make_recording(Path(tmp), args.hours, clips)
        print(f"recording: {path.name}, {path.stat().st_size / 1e6:.1f} MB, {args.hours:g} h of the {args.cast} cast")
        flags = ("--chunk-seconds", str(args.chunk_seconds), "--max-file-bytes", str(path.stat().st_size + 1),
                 "--titanet-model", "")  # the embedded default alone: NeMo's import is 700 MB of its own
        with server_process(*flags) as (proc, address), Client(address, timeout=3 * 3600) as client:
            server = psutil.Process(proc.pid)
            before = rss_with_children(server)
            peak = [before]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.02):
                    peak[0] = max(peak[0], rss_with_children(server))

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.monotonic()
            try:
                result = client.diarize([path])
            finally:
                done.set()
                sampler.join()
            wall = time.monotonic() - started
    s = result.summary
    print(f"server RSS before the job: {before / 2**20:.0f} MiB; peak during it: {peak[0] / 2**20:.0f} MiB")
    print(f"processing {s.processing_seconds:.1f} s for {s.audio_seconds:.0f} s of audio: "
          f"real-time factor {s.processing_seconds / s.audio_seconds:.4f} ({wall:.1f} s with upload)")
    if reference is None:
        print(f"speakers: {s.unique_speakers} (the sample cast has 5)")
        return
    scores = score(reference, {"long": hypothesis_of(result)["long"]}, {"long": (0.0, s.audio_seconds)})
    print(f"speakers: {s.unique_speakers} (libri-dev-linking has 32); DER {scores.clip_der:.2%} "
          "(collar 0.25 s, overlap scored)")


if __name__ == "__main__":
    main()
