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
# A speaker's pauses shorter than this stay inside their turn. Reference annotations (AMI's,
# and libri-dev-linking's for pauses under 0.3 s) label a turn across its pauses, and the VAD
# splits speech at pauses of 0.15 s. Measured (speakerlink eval, benchmarks/QUALITY.md): AMI
# global DER 37.4 % -> 31.4 %, libri 2.9 % -> 2.2 %. Gaps between different speakers stay.
MAX_BRIDGE_S = 1.0
# A change of speaker with no pause between the two turns is where people talk over each
# other: the incoming speaker starts before the outgoing one stops. Both are given the
# stretch around the change, the new speaker OVERLAP_BEFORE_S before it, the old one
# OVERLAP_AFTER_S after. On libri-dev-linking every change without a pause (10 of 71) sat on a
# real overlap and no change with a pause did; global DER 2.16 % -> 1.41 %, AMI 31.41 % ->
# 31.18 % (benchmarks/QUALITY.md). Fixed spans, not embedding scores, so it holds for any embedder.
NO_PAUSE_S = 0.05
OVERLAP_BEFORE_S = 0.4
OVERLAP_AFTER_S = 0.6


@dataclass(frozen=True)
class Turn:
    """A stretch of one local speaker: from labelled windows, or a transcriber's utterance."""

    start: float
    end: float
    speaker: int  # local speaker index within the clip
    text: str = ""
    words: tuple[TranscribedWord, ...] = ()


def speech_seconds(turns: list[Turn], count: int) -> np.ndarray:
    """Seconds each of `count` local speakers speaks in the turns."""
    speech = np.zeros(count)
    for turn in turns:
        speech[turn.speaker] += turn.end - turn.start
    return speech


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


def bridge_pauses(turns: list[Turn], max_gap: float = MAX_BRIDGE_S) -> list[Turn]:
    """Turns sorted by start, where consecutive turns of one speaker less than max_gap apart
    are one turn covering the pause."""
    out: list[Turn] = []
    for turn in sorted(turns, key=lambda t: t.start):
        last = out[-1] if out else None
        if last is not None and last.speaker == turn.speaker and turn.start - last.end < max_gap:
            out[-1] = Turn(last.start, max(last.end, turn.end), last.speaker)
        else:
            out.append(turn)
    return out


def overlap_turns(turns: list[Turn]) -> list[Turn]:
    """Extra turns, overlapping the given ones, for both speakers around each change of
    speaker without a pause. `turns` must be sorted by start and not overlap."""
    extra: list[Turn] = []
    for a, b in zip(turns, turns[1:], strict=False):
        if a.speaker == b.speaker or b.start - a.end > NO_PAUSE_S:
            continue
        change = (a.end + b.start) / 2
        extra.append(Turn(max(change - OVERLAP_BEFORE_S, a.start), change, b.speaker))
        extra.append(Turn(change, min(change + OVERLAP_AFTER_S, b.end), a.speaker))
    return extra
