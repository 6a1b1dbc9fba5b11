"""Sliding windows over speech regions: the units that get an embedding and a speaker."""

from __future__ import annotations

import numpy as np

from speakerlink_server.pipeline.audio import SAMPLE_RATE


def speech_windows(
    regions: list[tuple[float, float]], window_s: float, hop_s: float, min_window_s: float
) -> list[tuple[int, int]]:
    """(start, end) sample windows of window_s every hop_s inside each region.

    A region shorter than a window gets one window of its own length if it is at least
    min_window_s long; the tail of a longer region gets a last window aligned to its end, so
    no speech is left without a nearby window.
    """
    win, hop, shortest = (int(round(x * SAMPLE_RATE)) for x in (window_s, hop_s, min_window_s))
    windows: list[tuple[int, int]] = []
    for start_s, end_s in regions:
        start, end = int(round(start_s * SAMPLE_RATE)), int(round(end_s * SAMPLE_RATE))
        length = end - start
        if length < shortest:
            continue
        if length <= win:
            windows.append((start, end))
            continue
        starts = list(range(start, end - win + 1, hop))
        if end - win > starts[-1]:
            starts.append(end - win)
        windows.extend((s, s + win) for s in starts)
    return windows


def window_centers(windows: list[tuple[int, int]]) -> np.ndarray:
    return np.array([(a + b) / 2 / SAMPLE_RATE for a, b in windows], dtype=np.float64)
