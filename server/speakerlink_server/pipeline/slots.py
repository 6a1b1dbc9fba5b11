"""Each local slot of the segmenter's windows as one of the clip's speakers.

A slot is one person within one 10 s window, and the segmenter has already told the slots of a
window apart. So a slot takes the speaker most of its one-speaker frames were given, two slots
of one window never taking the same speaker (an assignment per window, as pyannote makes with
its slot embeddings). A slot with no labelled frame of its own, a person heard only while
someone else talks or in fragments too short for a window, is embedded from all its frames,
overlapped ones too. It joins the most similar speaker not already in its window where the
cosine clears the clustering threshold; the slots left over are clustered among themselves into
new speakers, kept where they hold `new_speaker_seconds` (benchmarks/QUALITY.md).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from speakerlink_server.engines.base import CountBounds, Spans, unit_rows
from speakerlink_server.params import ClusteringParams, SlotParams
from speakerlink_server.pipeline.activity import FrameGrid, grid_runs
from speakerlink_server.pipeline.clustering import cluster_windows
from speakerlink_server.pipeline.windows import sample_spans

UNASSIGNED = -1


def assign_by_frames(activity: np.ndarray, grid: FrameGrid, frame_label: np.ndarray, num_speakers: int) -> np.ndarray:
    """Each slot's speaker from its labelled one-speaker frames, or UNASSIGNED.
    Shape: (num_windows, local_speakers)."""
    windows, _, slots = activity.shape
    assign = np.full((windows, slots), UNASSIGNED)
    if num_speakers == 0:
        return assign
    for w in range(windows):
        heard = np.zeros((slots, num_speakers))
        for k in range(slots):
            labels = frame_label[_frames(activity, grid, w, k)]
            heard[k] = np.bincount(labels[labels >= 0], minlength=num_speakers)
        rows, cols = linear_sum_assignment(heard, maximize=True)
        found = heard[rows, cols] > 0
        assign[w, rows[found]] = cols[found]
    return assign


def unassigned_slots(activity: np.ndarray, grid: FrameGrid, assign: np.ndarray, params: SlotParams) -> list[tuple[int, int]]:
    """(window, slot) of the slots without a speaker that are active long enough to embed."""
    active = (activity > 0) & grid.valid[:, :, None]
    long_enough = active.sum(axis=1) * grid.step >= params.min_seconds
    return [(int(w), int(k)) for w, k in zip(*np.nonzero(long_enough & (assign == UNASSIGNED)), strict=True)]


def slot_spans(activity: np.ndarray, grid: FrameGrid, slots: list[tuple[int, int]]) -> list[Spans]:
    """Each slot's active frames, overlapped ones included, as one item to embed."""
    items = []
    for w, k in slots:
        frames = np.zeros(grid.size, dtype=bool)
        frames[_frames(activity, grid, w, k)] = True
        items.append([span for [span] in sample_spans(grid_runs(frames), grid)])
    return items


def attach(
    assign: np.ndarray,
    slots: list[tuple[int, int]],
    embeddings: np.ndarray,
    centroids: np.ndarray,
    activity: np.ndarray,
    grid: FrameGrid,
    bounds: CountBounds,
    threshold: float,
    params: SlotParams,
) -> tuple[np.ndarray, np.ndarray]:
    """The assignment with `slots` (embedded as `embeddings`) given a speaker where one fits,
    and the centroids with any new speakers' appended. New speakers stop at the count's bound."""
    assign = assign.copy()
    left: list[int] = []
    for i, (w, k) in enumerate(slots):
        best = _best_free(embeddings[i], centroids, assign[w])
        if best is not None and float(centroids[best] @ embeddings[i]) >= threshold:
            assign[w, k] = best
        else:
            left.append(i)
    if not left:
        return assign, centroids
    max_speakers = bounds.max_speakers or np.inf
    # Every slot is a cluster of its own size: none is small, so nothing folds.
    groups = cluster_windows(embeddings[left], CountBounds(), ClusteringParams(threshold, fold_similarity=1.0, group_fold_similarity=1.0, min_cluster_windows=1))
    frames = [set() for _ in groups.centroids]
    for i, g in zip(left, groups.labels, strict=True):
        frames[g].update(_frames(activity, grid, *slots[i]).tolist())
    for g in np.argsort([-len(f) for f in frames], kind="stable"):
        if len(centroids) >= max_speakers or len(frames[g]) * grid.step < params.new_speaker_seconds:
            continue
        centroids = np.vstack([centroids, groups.centroids[g]])
        for i in np.array(left)[groups.labels == g]:
            w, k = slots[i]
            if len(centroids) - 1 not in assign[w]:
                assign[w, k] = len(centroids) - 1
    return assign, unit_rows(centroids)


def _best_free(embedding: np.ndarray, centroids: np.ndarray, taken: np.ndarray) -> int | None:
    """The speaker most similar to `embedding` among those not in `taken`."""
    similarity = centroids @ embedding
    similarity[taken[taken >= 0]] = -np.inf
    return int(np.argmax(similarity)) if np.isfinite(similarity).any() else None


def _frames(activity: np.ndarray, grid: FrameGrid, w: int, k: int) -> np.ndarray:
    """Grid frames where slot k of window w is active."""
    return grid.index[w][(activity[w, :, k] > 0) & grid.valid[w]]
