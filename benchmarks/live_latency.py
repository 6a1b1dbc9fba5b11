"""Live diarization's DER at each latency, beside the same clips diarized offline.

Each clip of a folder is streamed on its own, in-process, as fast as it can go (the latency is
counted in audio time, so the pace does not change a decision), in frames of 20 ms. The
result is the stream's final turns. Per-clip DER (collar 0.25 s, overlap scored), as
`speakerlink eval` prints it; offline is one job of the folder's clips. The streams run on one
torch thread, so that the CPU seconds per audio second are a stream's own cost, as when many
streams share the cores.

    python benchmarks/live_latency.py ../shared/data/ami-train ../shared/data/libri-dev-linking
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from speakerlink.evaluation import clip_id, hypothesis_of, read_rttm, read_uem, score
from speakerlink_server.config import load_config
from speakerlink_server.engines.registry import load_engines
from speakerlink_server.pipeline.clip import ClipInput
from speakerlink_server.pipeline.live import LiveDiarizer
from speakerlink_server.pipeline.run import DiarizationPipeline

LATENCIES = (0.5, 1.0, 2.0, 5.0)
FRAME_SECONDS = 0.02


def live_turns(diarizer: LiveDiarizer, wav: np.ndarray) -> list[tuple[float, float, str]]:
    frame = int(FRAME_SECONDS * 16000)
    for start in range(0, wav.size, frame):
        diarizer.feed(wav[start : start + frame])
    diarizer.finish()
    return [(t.start, t.end, f"S{diarizer.label(t.speaker) + 1}") for t in diarizer.turns]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders with audio/*.wav, all.rttm and all.uem")
    parser.add_argument("--latency", type=float, action="append", help="latencies to measure (default: 0.5 1 2 5)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config()
    engines = load_engines(config)
    embedder = engines.embedder("auto")
    pipeline = DiarizationPipeline(engines.segmenter, engines.speech, embedder, chunk_seconds=config.chunk_seconds,
                                   max_clip_seconds=config.max_clip_seconds)
    try:
        print(f"{'folder':<20} {'latency':>8} {'per-clip DER':>13} {'exact counts':>13} {'CPU s / audio s':>16}")
        for folder in args.folders:
            paths = sorted((folder / "audio").glob("*.wav"))
            reference, uem = read_rttm(folder / "all.rttm"), read_uem(folder / "all.uem")
            clips = [ClipInput(k, p.name, p, 1.0) for k, p in enumerate(paths)]
            offline = score(reference, hypothesis_of(pipeline.run(clips, pipeline.default_request()).result), uem)
            audio = {clip_id(p.name): sf.read(p, dtype="float32")[0] for p in paths}
            seconds = sum(w.size for w in audio.values()) / 16000
            print(f"{folder.name:<20} {'offline':>8} {100 * offline.clip_der:>12.2f}% "
                  f"{sum(c.ref_speakers == c.hyp_speakers for c in offline.clips):>9}/{len(paths)}")
            for latency in args.latency or LATENCIES:
                started = time.process_time()
                hypothesis = {clip: live_turns(LiveDiarizer(engines.segmenter, engines.speech, embedder, pipeline.params, latency, 20), wav)
                              for clip, wav in audio.items()}
                cpu = time.process_time() - started
                report = score(reference, hypothesis, uem)
                print(f"{folder.name:<20} {latency:>7g}s {100 * report.clip_der:>12.2f}% "
                      f"{sum(c.ref_speakers == c.hyp_speakers for c in report.clips):>9}/{len(paths)} {cpu / seconds:>16.3f}")
    finally:
        engines.close()


if __name__ == "__main__":
    main()
