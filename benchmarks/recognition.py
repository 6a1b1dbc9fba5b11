"""Where the voice library's recognition bar comes from (pipeline/recognize.py).

Every utterance of ../shared/data/librispeech-train-clean-100 is cut in two halves, and each
half goes through the embedded default's whole pipeline alone, as a one-clip job would; the
half's main speaker gives a voiceprint. Prints, for the cosine between halves in CAM++'s score
space (engines.base.ScoreSpace, where the server compares voices):
- same-reader pairs (the two halves of one utterance) and different-reader pairs, how many
  reach each bar, with every half and with only halves of 2 s of speech or more;
- an open set: the first halves of 120 readers (not libri-dev-linking's) enrolled, the second
  halves of everyone else looked up: false identifications, and enrolled readers recognised.

Usage: python benchmarks/recognition.py [--bars 0.5 0.55 0.6 0.65 0.7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from speakerlink_server.engines import weights  # noqa: E402
from speakerlink_server.engines.base import compared  # noqa: E402
from speakerlink_server.engines.campplus import CamppEmbedder  # noqa: E402
from speakerlink_server.engines.segmentation import Segmentation3  # noqa: E402
from speakerlink_server.engines.silero import SileroSpeech  # noqa: E402
from speakerlink_server.pipeline import run  # noqa: E402
from speakerlink_server.pipeline.clip import ClipInput  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
ENROLLED = 120


def voiceprint(path: Path, pipeline: run.DiarizationPipeline) -> tuple[np.ndarray, float] | None:
    """The main speaker's (voiceprint, speech seconds) of a one-clip job, or None without speech."""
    diarized = pipeline.run([ClipInput(0, path.name, path, 1.0)], pipeline.default_request())
    main = max(diarized.voiceprints.values(), key=lambda p: p.speech_seconds, default=None)
    return None if main is None else (main.embedding, main.speech_seconds)


def halves(folder: Path, pipeline: run.DiarizationPipeline) -> dict[str, tuple]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for flac in sorted(folder.glob("*.flac")):
            audio, rate = sf.read(flac, dtype="float32")
            parts = []
            for k, half in enumerate((audio[: audio.size // 2], audio[audio.size // 2 :])):
                path = Path(tmp) / f"half{k}.wav"
                sf.write(path, half, rate)
                parts.append(voiceprint(path, pipeline))
            if all(parts):
                out[flac.name.split("-")[0]] = tuple(parts)
    return out


def main(bars: list[float]) -> None:
    torch.set_num_threads(2)
    segmenter = Segmentation3(weights.load_state(weights.SEGMENTATION, "")[0], "cpu")
    embedder = CamppEmbedder(weights.load_state(weights.CAMPPLUS, "")[0], "cpu")
    least = embedder.default_parameters().recognition.min_speech_seconds
    pipeline = run.DiarizationPipeline(segmenter, SileroSpeech(), embedder, chunk_seconds=600.0, max_clip_seconds=3600.0)
    started = time.monotonic()
    found = halves(DATA / "librispeech-train-clean-100", pipeline)
    readers = sorted(found)
    first = compared(np.stack([found[r][0][0] for r in readers]), embedder.space)
    second = compared(np.stack([found[r][1][0] for r in readers]), embedder.space)
    speech = np.array([[found[r][0][1], found[r][1][1]] for r in readers])
    cosine = first @ second.T
    print(f"{len(readers)} readers with speech in both halves ({time.monotonic() - started:.0f} s)")
    for floor in (0.0, least):
        heard = (speech[:, 0] >= floor)[:, None] & (speech[:, 1] >= floor)[None, :]
        same = np.diag(cosine)[np.diag(heard)]
        different = cosine[heard & ~np.eye(len(readers), dtype=bool)]
        print(f"halves with {floor:g} s of speech or more: {same.size} same-reader pairs (min {same.min():.3f}), "
              f"{different.size} different-reader pairs (max {different.max():.3f})")
        for bar in bars:
            print(f"  cosine {bar:.2f}: same-reader {100 * (same >= bar).mean():5.1f} %, "
                  f"different-reader pairs reaching it {int((different >= bar).sum())}")
    linked = {line.split()[7] for line in (DATA / "libri-dev-linking" / "all.rttm").read_text().splitlines()
              if line.startswith("SPEAKER")}
    order = [i for i in np.random.default_rng(0).permutation(len(readers)) if readers[i] not in linked]
    enrolled, others = order[:ENROLLED], [i for i in range(len(readers)) if i not in set(order[:ENROLLED])]
    for bar in bars:
        for floor in (0.0, least):
            voices = [i for i in enrolled if speech[i, 0] >= floor]
            scores = first[voices] @ second.T
            strangers = [j for j in others if speech[j, 1] >= floor]
            false_ids = int((scores[:, strangers].max(axis=0) >= bar).sum())
            mine = [k for k, i in enumerate(voices) if speech[i, 1] >= floor]
            named = sum(int(np.argmax(scores[:, voices[k]]) == k and scores[k, voices[k]] >= bar) for k in mine)
            print(f"open set at {bar:.2f}, {floor:g} s or more: {len(voices)} enrolled, {len(strangers)} not; "
                  f"false identifications {false_ids}; recognised {named} of {len(mine)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bars", type=float, nargs="+", default=[0.5, 0.55, 0.6, 0.65, 0.7])
    main(parser.parse_args().bars)
