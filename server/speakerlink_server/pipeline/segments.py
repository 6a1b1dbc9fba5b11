"""From labelled windows back to time: speaker turns inside the speech regions.

Every 10 ms of speech takes the speaker of the nearest window centre in its region, and runs
of one speaker become a segment. Regions with no window (too short to embed) take the
speaker of the nearest window in time, so all detected speech is attributed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from speakerlink_server.engines.base import TranscribedWord

STEP_S = 0.01


@dataclass(frozen=True)
class Turn:
    """A stretch of one local speaker: from labelled windows, or a transcriber's utterance."""

    start: float
    end: float
    speaker: int  # local speaker index within the clip
    text: str = ""
    words: tuple[TranscribedWord, ...] = ()


def label_regions(regions: list[tuple[float, float]], centers: np.ndarray, labels: np.ndarray) -> list[Turn]:
    """Turns sorted by start."""
    if len(centers) == 0:
        return []
    segments: list[Turn] = []
    for start, end in regions:
        inside = np.flatnonzero((centers >= start) & (centers <= end))
        pool = inside if inside.size else np.arange(len(centers))
        times = np.arange(start, end, STEP_S) + STEP_S / 2
        nearest = pool[np.abs(centers[pool][None, :] - times[:, None]).argmin(axis=1)]
        frame_labels = labels[nearest]
        cuts = np.flatnonzero(np.diff(frame_labels)) + 1
        bounds = [0, *cuts.tolist(), len(frame_labels)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            segments.append(Turn(start + a * STEP_S, min(end, start + b * STEP_S), int(frame_labels[a])))
    return segments
