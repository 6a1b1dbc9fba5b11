"""Sliding windows inside one-speaker stretches: the units that get an embedding and a speaker.

Who a stretch of speech is comes from short windows over frames where one person speaks,
not from the segmenter's local slots: the segmenter sometimes keeps two similar voices that
follow each other without a pause in one slot for a whole 10 s window, and an embedding of
that slot is a blend of both (benchmarks/QUALITY.md). A 1.5 s window that straddles such a
change mislabels a fraction of a second instead.
"""

from __future__ import annotations

import itertools

import numpy as np

from speakerlink_server.audio_format import SAMPLE_RATE
from speakerlink_server.engines.base import Spans
from speakerlink_server.params import WindowParams
from speakerlink_server.pipeline.activity import FrameGrid


def run_windows(runs: list[tuple[int, int]], grid: FrameGrid, params: WindowParams) -> list[tuple[int, int]]:
    """(first, end) grid frames of windows every hop inside each run; a run shorter than a window
    is one window if it lasts min_seconds, and the tail of a longer run gets a window ending with it."""
    size, hop, shortest = (max(1, round(x / grid.step)) for x in (params.seconds, params.hop_seconds, params.min_seconds))
    windows: list[tuple[int, int]] = []
    for first, end in runs:
        if end - first < shortest:
            continue
        if end - first <= size:
            windows.append((first, end))
            continue
        starts = list(range(first, end - size + 1, hop))
        if end - size > starts[-1]:
            starts.append(end - size)
        windows.extend((s, s + size) for s in starts)
    return windows


def same_stretch(frames: list[tuple[int, int]]) -> np.ndarray:
    """For each window but the last, whether the next is of the same stretch: windows of one
    stretch overlap (a hop shorter than a window), stretches do not. Shape: (len(frames) - 1,)."""
    return np.array([b[0] < a[1] for a, b in itertools.pairwise(frames)], dtype=bool)


def sample_spans(frames: list[tuple[int, int]], grid: FrameGrid) -> list[Spans]:
    """Each (first, end) of grid frames as a one-span item to embed."""
    def sample(g: int) -> int:
        return max(0, int(round(grid.edge(g) * SAMPLE_RATE)))

    return [[(sample(a), sample(b))] for a, b in frames]


def centres(frames: list[tuple[int, int]]) -> np.ndarray:
    return np.array([(a + b) / 2 for a, b in frames], dtype=np.float64)
