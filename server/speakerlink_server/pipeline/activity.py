"""From the segmenter's scores to who is active, frame by frame, and how many speak at once.

Each window's frames are binarized on their own (the most likely powerset class: no threshold
to tune). Local speaker slots mean different people in different windows, so only the number
of active speakers is aggregated across overlapping windows, onto one frame grid over the clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from speakerlink_server.engines.base import Segmentation


@dataclass(frozen=True)
class FrameGrid:
    """One frame grid over the whole audio, at the segmenter's frame step."""

    index: np.ndarray  # shape: (num_windows, num_frames), each window frame's grid frame
    valid: np.ndarray  # shape: (num_windows, num_frames), False where a padded window runs past the audio
    size: int
    step: float
    first_centre: float  # seconds

    def edge(self, g: int) -> float:
        """Seconds where grid frame g begins (and frame g - 1 ends)."""
        return self.first_centre + (g - 0.5) * self.step

    def spans(self, frames: np.ndarray) -> list[tuple[float, float]]:
        """(start, end) seconds of each run of True in a boolean vector over the grid."""
        return [(self.edge(a), self.edge(b)) for a, b in grid_runs(frames)]


def grid_runs(frames: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) indices of each run of True in a boolean vector."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], frames, [False]]).astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def binarize(segmentation: Segmentation) -> np.ndarray:
    """Each local speaker's activity, 0 or 1. Shape: (num_windows, num_frames, local_speakers)."""
    return segmentation.powerset[segmentation.log_probs.argmax(axis=2)]


def frame_grid(segmentation: Segmentation) -> FrameGrid:
    timing = segmentation.timing
    first = timing.start + timing.duration / 2
    index = np.rint((timing.centres(segmentation.starts) - first) / timing.step).astype(np.int64)
    size = max(1, int(np.ceil(segmentation.duration / timing.step)))
    return FrameGrid(index, index < size, size, timing.step, first)


def speaker_count(segmentation: Segmentation, grid: FrameGrid) -> np.ndarray:
    """How many speakers talk in each grid frame: the likeliest count once each count's
    probability (summed over the powerset classes with that many speakers) is averaged over
    the windows that see the frame. Averaging probabilities rather than each window's decided
    count lets two windows that both half-hear a second voice add up to an overlap, with no
    threshold to tune (benchmarks/QUALITY.md). Shape: (grid.size,)."""
    sizes = segmentation.powerset.sum(axis=1).astype(np.int64)
    per_count = np.stack([np.exp(segmentation.log_probs[..., sizes == n]).sum(axis=2)
                          for n in range(sizes.max() + 1)], axis=2)  # (windows, frames, counts)
    index, values = grid.index[grid.valid], per_count[grid.valid]
    total = np.stack([np.bincount(index, values[:, n], grid.size) for n in range(values.shape[1])], axis=1)
    return total.argmax(axis=1)


def single_speaker_runs(activity: np.ndarray, grid: FrameGrid, count: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) grid frames of the stretches where one person speaks, cut wherever a window
    of the segmenter moves its one active speaker to another local slot: a change of speaker
    with no pause between the two, which the count alone does not show."""
    single = activity.sum(axis=2) == 1
    slot = activity.argmax(axis=2)
    changed = single[:, 1:] & single[:, :-1] & (slot[:, 1:] != slot[:, :-1]) & grid.valid[:, 1:]
    cuts = np.zeros(grid.size, dtype=bool)
    at = grid.index[:, 1:][changed]
    cuts[at[at < grid.size]] = True
    runs: list[tuple[int, int]] = []
    for first, end in grid_runs(count == 1):
        edges = [first, *(np.flatnonzero(cuts[first + 1 : end]) + first + 1).tolist(), end]
        runs += list(zip(edges[:-1], edges[1:], strict=True))
    return runs
