"""Speech the segmenter did not hear: a second opinion on the frames it calls silent.

Through a reverberant room segmentation-3.0 can miss most of a voice that is as loud as the
rest of the clip, and a missed voice is neither counted nor linked. The speech detector hears
the whole chunk; where it hears speech in frames the segmenter left silent, they become
one-speaker frames, so the usual windows, embeddings and clustering decide who it is. Two
guards keep out what the detector hears and no one would label: a piece shorter than
`min_seconds` (the tail of a word beside a turn: 0.2 s of it cost an ami-train clip 2 points),
and a piece whose loud end is more than `within_db` under the loud end of the clip's speech (a
crowd behind the talkers, a distant door: the segmenter is right to leave it). Measured on the
dev sets of benchmarks/condition_sets.py and ../shared/data (benchmarks/QUALITY.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from speakerlink_server.audio_format import SAMPLE_RATE
from speakerlink_server.params import MissedSpeechParams
from speakerlink_server.pipeline.activity import FrameGrid, grid_runs

# The clip's loud end is taken over the segmenter's speech where it found this many frames
# (about 0.85 s), else over the whole audio.
MIN_SPEECH_FRAMES = 50


def fill(wav: np.ndarray, grid: FrameGrid, count: np.ndarray, heard: Callable[[], list[tuple[float, float]]],
         params: MissedSpeechParams) -> np.ndarray:
    """`count` with one speaker in the silent frames where the detector hears speech worth
    labelling. heard(): the detector's (start, end) seconds of speech in `wav`, asked for only
    where the segmenter left a silence long enough to fill. Shape: (grid.size,)."""
    shortest = max(1, round(params.min_seconds / grid.step))
    if not any(b - a >= shortest for a, b in grid_runs(count == 0)):
        return count
    level = frame_levels(wav, grid)
    speech = count > 0
    loud = np.percentile(level[speech] if speech.sum() >= MIN_SPEECH_FRAMES else level, 95)
    filled = count.copy()
    for start, end in heard():
        piece = np.zeros(grid.size, dtype=bool)
        piece[_frame_at(grid, start):_frame_at(grid, end)] = True
        piece &= count == 0
        if piece.sum() >= shortest and np.percentile(level[piece], 90) >= loud - params.within_db:
            filled[piece] = 1
    return filled


def frame_levels(wav: np.ndarray, grid: FrameGrid) -> np.ndarray:
    """Each grid frame's mean power in dB. Shape: (grid.size,)."""
    starts = grid.first_centre + (np.arange(grid.size + 1) - 0.5) * grid.step  # grid.edge of every frame, and the end
    edges = np.clip(np.rint(starts * SAMPLE_RATE).astype(np.int64), 0, wav.size)
    energy = np.concatenate([[0.0], np.cumsum(np.square(wav, dtype=np.float64))])
    power = (energy[edges[1:]] - energy[edges[:-1]]) / np.maximum(edges[1:] - edges[:-1], 1)
    return 10.0 * np.log10(power + 1e-10)


def _frame_at(grid: FrameGrid, seconds: float) -> int:
    """The first grid frame that begins at or after `seconds`."""
    return max(0, int(np.ceil((seconds - grid.first_centre) / grid.step + 0.5)))
