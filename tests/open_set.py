"""Open-set mixes from ../shared/data/librispeech-train-clean-100: people heard in one clip only.

Each clip interleaves the utterances of `per_clip` readers, cut at their own pauses into turns
with short gaps, so every reader is a voice the job has heard nowhere else. The readers of
libri-dev-linking are left out, since its quality checks use their voices.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000


def quiet_cuts(audio: np.ndarray, parts: int) -> list[np.ndarray]:
    """`audio` cut into about `parts` turns at its quietest 50 ms near the even split points."""
    hop = RATE // 20
    energy = np.array([np.mean(audio[i : i + hop] ** 2) for i in range(0, audio.size - hop, hop)])
    cuts = [0]
    for k in range(1, parts):
        centre = k * len(energy) // parts
        lo, hi = max(centre - 20, 1), min(centre + 20, len(energy) - 1)
        cuts.append((lo + int(np.argmin(energy[lo:hi]))) * hop)
    cuts.append(audio.size)
    return [audio[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b - a > RATE // 2]


def write_open_set(folder: Path, out: Path, clips: int, per_clip: int, exclude: set[str], seed: int = 7) -> dict[str, list[str]]:
    """Write the mixes as WAV files into `out`; returns each clip's file name -> its readers."""
    files = sorted(folder.glob("*.flac"))
    readers = [f for f in files if f.name.split("-")[0] not in exclude and sf.info(f).duration >= 8.0]
    random.Random(seed).shuffle(readers)
    cast: dict[str, list[str]] = {}
    rng = np.random.default_rng(seed)
    for c in range(clips):
        chosen = readers[c * per_clip : (c + 1) * per_clip]
        turns = [quiet_cuts(sf.read(f, dtype="float32")[0], 3) for f in chosen]
        pieces = []
        for k in range(max(len(t) for t in turns)):
            for who in turns:
                if k < len(who):
                    level = 10 ** (rng.uniform(-28, -22) / 20) / max(float(np.sqrt(np.mean(who[k] ** 2))), 1e-6)
                    pieces += [who[k] * level, np.zeros(int(rng.uniform(0.3, 0.8) * RATE), dtype=np.float32)]
        name = f"open{c:02d}.wav"
        mix = np.concatenate(pieces) + rng.normal(0, 10 ** (-66 / 20), sum(p.size for p in pieces))
        sf.write(out / name, mix.astype(np.float32), RATE, subtype="PCM_16")
        cast[name] = [f.name.split("-")[0] for f in chosen]
    return cast
