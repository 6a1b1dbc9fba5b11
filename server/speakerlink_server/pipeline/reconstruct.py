"""From labelled windows and slots back to one timeline: who speaks in each frame of the clip.

A frame where one person speaks takes the speaker of the nearest window of its stretch.
Where the segmenter counts two people at once, the windows' local slots vote, each for the
speaker it was given (pipeline.slots), and the frame keeps the `count` speakers with the most
votes, so overlapped speech carries both. Runs of a speaker closer than `bridge_seconds` become
one turn, as people label a turn across its short pauses.
"""

from __future__ import annotations

import numpy as np

from speakerlink_server.params import TurnParams
from speakerlink_server.pipeline.activity import FrameGrid
from speakerlink_server.pipeline.segments import Turn
from speakerlink_server.pipeline.slots import UNASSIGNED


def frame_labels(runs: list[tuple[int, int]], window_centres: np.ndarray, labels: np.ndarray, size: int) -> np.ndarray:
    """Each grid frame's speaker where one person speaks (the nearest window's, within its
    stretch where the stretch has one), else -1. Shape: (size,)."""
    frame_label = np.full(size, -1)
    if not len(window_centres):
        return frame_label
    for first, end in runs:
        frames = np.arange(first, end)
        inside = np.flatnonzero((window_centres >= first) & (window_centres < end))
        pool = inside if inside.size else np.arange(len(window_centres))
        frame_label[frames] = labels[pool[np.abs(window_centres[pool][None, :] - frames[:, None]).argmin(axis=1)]]
    return frame_label


def label_frames(frame_label: np.ndarray, assign: np.ndarray, activity: np.ndarray, grid: FrameGrid,
                 count: np.ndarray, num_speakers: int) -> np.ndarray:
    """Who speaks in each grid frame. Shape: (grid.size, num_speakers), bool."""
    speaking = np.zeros((grid.size, num_speakers), dtype=bool)
    known = frame_label >= 0
    speaking[np.flatnonzero(known), frame_label[known]] = True
    votes = np.zeros((grid.size, num_speakers))
    for w, k in zip(*np.nonzero(assign != UNASSIGNED), strict=True):
        votes[grid.index[w][(activity[w, :, k] > 0) & grid.valid[w]], assign[w, k]] += 1.0
    busy = np.flatnonzero(count >= 2)
    ranked = np.argsort(-votes[busy], axis=1, kind="stable")
    chosen = np.zeros((busy.size, num_speakers), dtype=bool)
    np.put_along_axis(chosen, ranked, np.arange(num_speakers)[None, :] < count[busy, None], axis=1)
    speaking[busy] |= chosen & (votes[busy] > 0)
    return speaking


def to_turns(speaking: np.ndarray, grid: FrameGrid, offset: float, duration: float, params: TurnParams) -> list[Turn]:
    """Turns sorted by start, times shifted by `offset` and kept inside [0, duration] of the audio."""
    turns: list[Turn] = []
    for c in range(speaking.shape[1]):
        runs: list[tuple[float, float]] = []
        for start, end in grid.spans(speaking[:, c]):
            start, end = max(start, 0.0), min(end, duration)
            if runs and start - runs[-1][1] < params.bridge_seconds:
                runs[-1] = (runs[-1][0], end)
            elif end > start:
                runs.append((start, end))
        turns += [Turn(offset + a, offset + b, c) for a, b in runs]
    return sorted(turns, key=lambda t: (t.start, t.end, t.speaker))
