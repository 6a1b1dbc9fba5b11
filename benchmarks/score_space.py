"""Measure CAM++'s score space for cross-recording comparisons (engines.base.ScoreSpace), and
write it where the server reads it: server/speakerlink_server/engines/campplus_space.npz.

The readers are apart from every dev set: librispeech-train-clean-100 readers that are neither
in libri-dev-linking nor drawn into any condition set (benchmarks/condition_sets.default_readers), as for benchmarks/narrowband_compensation.py. Each reader's utterance is cut
at pauses into up to three pieces, each piece goes through every condition class of the dev
sets (benchmarks/condition_sets.CLASSES, with a seed of its own, so no room or codec draw is
shared with a dev set) and then through the embedded default's whole pipeline as a one-clip
job; its main speaker's voiceprint is one sample of that reader. Then:

- mean: the mean voiceprint over every reader, piece and condition;
- whitening: the inverse square root of the within-reader covariance of the centred
  voiceprints (how one voice moves between pieces of speech and conditions), shrunk toward
  its average variance by SHRINK, since 70-odd readers cannot fix 192 dimensions' worth.

Prints, on the voiceprints it measured, how far same-reader pairs heard through different
conditions sit above different readers, in cosine and in the new space.

    python benchmarks/score_space.py [--data ../shared/data] [--out PATH]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "client"), str(ROOT / "server"), str(ROOT / "benchmarks")]
import condition_sets  # noqa: E402
from recognition import voiceprint  # noqa: E402
from speakerlink import conditions  # noqa: E402
from speakerlink.condition_spec import parse  # noqa: E402
from speakerlink_server.engines import weights  # noqa: E402
from speakerlink_server.engines.base import ScoreSpace, unit_rows  # noqa: E402
from speakerlink_server.engines.campplus import SPACE_FILE, CamppEmbedder  # noqa: E402
from speakerlink_server.engines.segmentation import Segmentation3  # noqa: E402
from speakerlink_server.engines.silero import SileroSpeech  # noqa: E402
from speakerlink_server.pipeline import run  # noqa: E402

SEED = 4242  # the conditions' draws, apart from the dev sets'
PIECE_SPEECH_S = 3.0  # a piece per this much speech, up to three
SHORTEST_PIECE_S = 2.0
LEAST_SPEECH_S = 1.0  # a piece whose main speaker is heard less gives no sample
# Shrinkage of the within-reader covariance toward its average variance. On the dev sets of
# benchmarks/condition_sets.py, 0.05-0.8 separate cross-condition pairs from different people
# about alike; from 0.4 up ami-train keeps its links as in raw cosine (benchmarks/QUALITY.md).
SHRINK = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=SPACE_FILE)
    args = parser.parse_args(argv)
    started = time.monotonic()
    torch.set_num_threads(2)
    drawn = condition_sets.default_readers(args.data)
    libri = args.data / "librispeech-train-clean-100"
    segmenter = Segmentation3(weights.load_state(weights.SEGMENTATION, "")[0], "cpu")
    embedder = CamppEmbedder(weights.load_state(weights.CAMPPLUS, "")[0], "cpu")
    pipeline = run.DiarizationPipeline(segmenter, SileroSpeech(), embedder, chunk_seconds=600.0, max_clip_seconds=3600.0)
    prints, readers, classes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "piece.wav"
        for row in drawn.unused:
            audio = conditions.load(libri / row["path"])
            for k, piece in enumerate(pieces(audio)):
                turns = [(0.0, piece.size / conditions.RATE, row["speaker_id"])]
                for name, spec in condition_sets.CLASSES.items():
                    heard = conditions.apply(parse(spec), piece, clip=f"{row['utt_id']}-{k}-{name}", seed=SEED,
                                             context=conditions.Context(turns, drawn.babble))
                    conditions.write_wav(path, heard.audio)
                    found = voiceprint(path, pipeline)
                    if found is not None and found[1] >= LEAST_SPEECH_S:
                        prints.append(found[0])
                        readers.append(row["speaker_id"])
                        classes.append(name)
    vectors, readers_, classes_ = np.stack(prints), np.array(readers), np.array(classes)
    print(f"{len(set(readers))} readers in no dev set, {len(prints)} voiceprints "
          f"({len(condition_sets.CLASSES)} classes; {time.monotonic() - started:.0f} s)")
    space = fit(vectors, readers_)
    for label, scored in (("cosine", unit_rows(vectors)), ("score space", space.project(vectors))):
        same, different = _pairs(scored, readers_, classes_)
        print(f"{label}: same reader through different classes q10 {np.percentile(same, 10):.3f}, "
              f"median {np.median(same):.3f}; different readers max {different.max():.3f}, "
              f"99.9th percentile {np.percentile(different, 99.9):.3f}")
    space.save(args.out)
    print(f"-> {args.out}")
    return 0


def pieces(audio: np.ndarray) -> list[np.ndarray]:
    """The utterance cut at its pauses into pieces of about equal speech."""
    speech = condition_sets._speech(audio)
    total = condition_sets._total(speech)
    count = int(min(3, max(1, total // PIECE_SPEECH_S)))
    pauses = [(a[1] + b[0]) / 2 for a, b in itertools.pairwise(speech)]
    cuts = [0.0]
    for q in range(1, count):
        if pauses:
            cuts.append(min(pauses, key=lambda p: abs(condition_sets._total([(s, min(e, p)) for s, e in speech if s < p])
                                                   - total * q / count)))
    cuts.append(audio.size / conditions.RATE)
    out = [audio[int(a * conditions.RATE): int(b * conditions.RATE)] for a, b in itertools.pairwise(cuts) if b > a]
    return [piece for piece in out if piece.size >= SHORTEST_PIECE_S * conditions.RATE]


def fit(vectors: np.ndarray, readers: np.ndarray) -> ScoreSpace:
    mean = unit_rows(vectors).mean(axis=0)
    centred = unit_rows(unit_rows(vectors) - mean)
    within = np.zeros((centred.shape[1],) * 2)
    for reader in np.unique(readers):
        own = centred[readers == reader]
        own = own - own.mean(axis=0)
        within += own.T @ own
    within /= len(centred)
    within = (1 - SHRINK) * within + SHRINK * np.trace(within) / len(within) * np.eye(len(within))
    values, directions = np.linalg.eigh(within)
    return ScoreSpace(mean, directions @ np.diag(values**-0.5) @ directions.T)


def _pairs(scored: np.ndarray, readers: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cosine = scored @ scored.T
    upper = np.triu(np.ones_like(cosine, dtype=bool), k=1)
    same = (readers[:, None] == readers[None, :]) & (classes[:, None] != classes[None, :])
    different = readers[:, None] != readers[None, :]
    return cosine[upper & same], cosine[upper & different]


if __name__ == "__main__":
    raise SystemExit(main())
