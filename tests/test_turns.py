"""From the segmenter's frames to speaker turns: overlap, slots, cuts, bridges and embedding windows, on toy frames."""

from __future__ import annotations

import numpy as np
from speakerlink_server.engines.base import CountBounds, FrameTiming, Segmentation
from speakerlink_server.pipeline.activity import binarize, frame_grid, grid_runs, single_speaker_runs, speaker_count
from speakerlink_server.params import SlotParams, TurnParams, WindowParams
from speakerlink_server.pipeline.reconstruct import frame_labels, label_frames, to_turns
from speakerlink_server.pipeline.slots import UNASSIGNED, assign_by_frames, attach, unassigned_slots
from speakerlink_server.pipeline.windows import run_windows, same_stretch, sample_spans
from toy_embeddings import voices


def segmentation(classes: list[list[int]], starts: list[float], step: float = 0.5) -> Segmentation:
    """A toy segmenter output: per window, the powerset class of each frame, frames every `step` s."""
    powerset = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float32)
    log_probs = np.log(np.full((len(classes), len(classes[0]), 7), 1e-3))
    for w, row in enumerate(classes):
        log_probs[w, np.arange(len(row)), row] = 0.0
    timing = FrameTiming(start=0.0, step=step, duration=step, count=len(classes[0]))
    return Segmentation(log_probs, np.array(starts), timing, powerset, starts[-1] + len(classes[0]) * step)


def test_overlap_carries_both_speakers() -> None:
    # Frames every 0.5 s. Window 0: A (slot 0) alone, A and B together, then B (slot 1) alone.
    # Window 1, from 2 s: the same overlap and B, with B in slot 0.
    seg = segmentation([[1, 1, 1, 4, 4, 2, 2, 2], [4, 1, 1, 1, 1, 0, 0, 0]], [0.0, 2.0])
    activity = binarize(seg)
    grid = frame_grid(seg)
    count = speaker_count(seg, grid)
    assert count.tolist() == [1, 1, 1, 2, 2, 1, 1, 1, 1, 0, 0, 0]
    runs = single_speaker_runs(activity, grid, count)
    assert runs == [(0, 3), (5, 9)]
    # One window labelled A in A's stretch, one labelled B in B's: the overlap gets both.
    frame_label = frame_labels(runs, np.array([1.5, 7.0]), np.array([0, 1]), grid.size)
    assign = assign_by_frames(activity, grid, frame_label, 2)
    assert assign.tolist() == [[0, 1, UNASSIGNED], [1, UNASSIGNED, UNASSIGNED]]
    speaking = label_frames(frame_label, assign, activity, grid, count, 2)
    assert speaking[:, 0].tolist() == [True] * 5 + [False] * 7
    assert speaking[:, 1].tolist() == [False] * 3 + [True] * 6 + [False] * 3
    turns = to_turns(speaking, grid, offset=10.0, duration=6.0, params=TurnParams(bridge_seconds=0.0))
    assert [(t.start, t.end, t.speaker) for t in turns] == [(10.0, 12.5, 0), (11.5, 14.5, 1)]


def test_a_voice_heard_only_in_overlap_gets_a_speaker_never_its_windows_other_one() -> None:
    # One window, frames every 0.5 s: slot 0 alone (labelled speaker 0), then slots 0 and 1 together for 2 s.
    seg = segmentation([[1, 1, 1, 1, 4, 4, 4, 4]], [0.0])
    activity, grid = binarize(seg), frame_grid(seg)
    frame_label = np.array([0, 0, 0, 0, -1, -1, -1, -1])
    assign = assign_by_frames(activity, grid, frame_label, 1)
    assert assign.tolist() == [[0, UNASSIGNED, UNASSIGNED]]
    slots = unassigned_slots(activity, grid, assign, SlotParams())
    assert slots == [(0, 1)]
    a, b, c = voices(3)

    def attached(voice: np.ndarray, centroids: np.ndarray, most: int = 0) -> tuple[list, int]:
        found, cents = attach(assign, slots, voice[None], centroids, activity, grid, CountBounds(max_speakers=most), 0.5,
                              SlotParams())
        return found.tolist(), len(cents)

    # Like a known speaker who is not in the window: that speaker.
    assert attached(b, np.vstack([a, b])) == ([[0, 1, UNASSIGNED]], 2)
    # Like the speaker of the window's other slot only: a new speaker, not the same one twice.
    assert attached(a, a[None]) == ([[0, 1, UNASSIGNED]], 2)
    # Unlike everyone: a new speaker, unless the count asked for is already reached.
    assert attached(c, np.vstack([a, b])) == ([[0, 2, UNASSIGNED]], 3)
    assert attached(c, np.vstack([a, b]), most=2) == ([[0, UNASSIGNED, UNASSIGNED]], 2)
    # Too little speech to be a person of its own.
    assert attach(assign, slots, c[None], a[None], activity, grid, CountBounds(), 0.5,
                  SlotParams(new_speaker_seconds=4.0))[0].tolist() == [[0, UNASSIGNED, UNASSIGNED]]


def test_a_change_of_speaker_without_a_pause_cuts_a_stretch() -> None:
    seg = segmentation([[1, 1, 2, 2, 0]], [0.0])
    activity = binarize(seg)
    grid = frame_grid(seg)
    assert single_speaker_runs(activity, grid, speaker_count(seg, grid)) == [(0, 2), (2, 4)]


def test_pauses_shorter_than_the_bridge_stay_inside_a_turn() -> None:
    seg = segmentation([[1, 1, 0, 1, 0, 0, 0, 1]], [0.0])
    grid = frame_grid(seg)
    speaking = (binarize(seg)[0, :, :1] > 0)
    turns = to_turns(speaking, grid, 0.0, 4.0, TurnParams(bridge_seconds=0.6))
    assert [(t.start, t.end) for t in turns] == [(0.0, 2.0), (3.5, 4.0)]


def test_windows_cover_one_speaker_stretches() -> None:
    seg = segmentation([[0] * 40], [0.0], step=0.1)
    grid = frame_grid(seg)
    windows = run_windows([(0, 40), (50, 52), (60, 68)], grid, WindowParams(seconds=1.5, hop_seconds=0.5, min_seconds=0.5))
    assert windows[:2] == [(0, 15), (5, 20)] and windows[-1] == (60, 68)
    assert (50, 52) not in windows  # 0.2 s is too short to embed
    assert (25, 40) in windows  # the tail window ends with its stretch
    assert sample_spans([(0, 15)], grid) == [[(0, 24000)]]
    neighbours = same_stretch(windows)  # within (0, 40) they overlap; (25, 40) and (60, 68) do not
    assert neighbours.size == len(windows) - 1 and neighbours[:-1].all() and not neighbours[-1]
    assert grid_runs(np.array([True, True, False, True])) == [(0, 2), (3, 4)]
