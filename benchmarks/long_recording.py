"""Peak server memory and real-time factor for one long recording (F14), on this machine.

The recording is the project's sample clips end to end, repeated to the length asked (2 hours
by default), as a 64 kbit/s MP3. The server runs as a child process; its resident memory, with
its ffmpeg children, is sampled every 20 ms while it diarizes the file.

    python benchmarks/long_recording.py [--hours 2] [--chunk-seconds 600]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import sample_clips  # noqa: E402
from speakerlink import Client  # noqa: E402

from benchmarks._server import server_process  # noqa: E402


def make_recording(out: Path, hours: float) -> Path:
    clips = []
    for clip in sample_clips.write_sample_set(out / "samples"):
        if clip.suffix != ".rttm":  # one codec for the concat demuxer
            clips.append(clip.with_suffix(".pcm.wav"))
            subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-ac", "1", "-ar", "16000", str(clips[-1])], check=True)
    seconds = sum(p.stat().st_size / 32000 for p in clips)
    repeats = int(hours * 3600 // seconds) + 1
    listing = out / "list.txt"
    listing.write_text("".join(f"file '{p}'\n" for _ in range(repeats) for p in clips))
    path = out / f"long-{hours:g}h.mp3"
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = make_recording(Path(tmp), args.hours)
        print(f"recording: {path.name}, {path.stat().st_size / 1e6:.1f} MB, {args.hours:g} h")
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
    print(f"speakers: {s.unique_speakers} (the sample cast has 5)")


if __name__ == "__main__":
    main()
