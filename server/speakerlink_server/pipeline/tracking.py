"""The speakers of a live stream, kept the same people while their windows are clustered again.

A live stream clusters its embedded windows afresh at every step, as offline clusters a clip's
(pipeline.clustering): a new voice forms its own cluster once it has enough windows, and a
window first put with the wrong voice moves once more windows show where it belongs. Cluster
numbers mean nothing from one clustering to the next, so each cluster takes the stream speaker
most of its windows had before (an assignment: no two clusters take one speaker), and a
cluster whose windows had none becomes a new speaker.

Memory stays bounded however long the stream: past `max_windows`, the oldest windows of the
speakers with more than `anchors` go, so that every speaker keeps some and a voice that comes
back after an hour is still known.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from speakerlink_server.engines.base import CountBounds, unit_rows
from speakerlink_server.params import ClusteringParams, SpreadParams
from speakerlink_server.pipeline.clustering import cluster_windows, spread_threshold
from speakerlink_server.pipeline.windows import same_stretch

NEW = -1


class SpeakerMemory:
    """Every window a stream has embedded (within bounds) and the stream speaker it belongs to."""

    def __init__(self, dim: int, bounds: CountBounds, params: ClusteringParams, spread: SpreadParams,
                 merge_similarity: float, max_windows: int, anchors: int) -> None:
        self.bounds, self.params, self.spread, self.merge_similarity = bounds, params, spread, merge_similarity
        self.max_windows, self.anchors = max_windows, anchors
        self.embeddings = np.zeros((0, dim))  # unit rows
        self.frames = np.zeros((0, 2), dtype=np.int64)  # each window's first and end grid frames
        self.speakers = np.zeros(0, dtype=np.int64)
        self.count = 0  # stream speakers so far; numbers are never reused

    def update(self, embeddings: np.ndarray, frames: np.ndarray, before: np.ndarray, settle: np.ndarray) -> np.ndarray:
        """Cluster the kept windows with this step's new ones, `embeddings` (n, dim) over grid
        `frames` (n, 2), and return the new ones' stream speakers. `before` (n,): the speaker
        the last step gave most of each new window's frames, or NEW; the ones to `settle` (n,)
        (their frames are all decided now) are kept from now on, the others are cut afresh
        next step."""
        kept = len(self.embeddings)
        population = np.vstack([self.embeddings, unit_rows(embeddings)])
        if not len(population):
            return np.zeros(0, dtype=np.int64)
        labels = cluster_windows(population, self.bounds, replace(self.params, threshold=self.threshold(population, frames))).labels
        before = np.concatenate([self.speakers, before])
        labels = _keep_apart(population, labels, before, self.merge_similarity)
        speakers = self._carry(labels, before)
        self.speakers = speakers[:kept]
        new = speakers[kept:]
        self.embeddings = np.vstack([self.embeddings, unit_rows(embeddings[settle])])
        self.frames = np.vstack([self.frames, frames[settle]])
        self.speakers = np.concatenate([self.speakers, new[settle]])
        self._bound()
        return new

    def threshold(self, population: np.ndarray, frames: np.ndarray) -> float:
        """The clustering bar for the stream as heard so far, lowered as offline lowers a clip's
        where one voice's neighbouring windows agree less (a reverberant room): taken over every
        kept window and this step's, in the order of the audio."""
        spans = np.vstack([self.frames, frames])
        order = np.lexsort((spans[:, 1], spans[:, 0]))
        stretch = same_stretch([tuple(f) for f in spans[order]])
        return spread_threshold(population[order], stretch, self.params.threshold, self.spread)

    def voiceprints(self) -> np.ndarray:
        """Each stream speaker's unit mean embedding (zero rows for one with no windows left).
        Shape: (count, dim)."""
        sums = np.zeros((self.count, self.embeddings.shape[1]))
        np.add.at(sums, self.speakers, self.embeddings)
        return unit_rows(sums) * (np.abs(sums).sum(axis=1, keepdims=True) > 0)

    def _carry(self, labels: np.ndarray, before: np.ndarray) -> np.ndarray:
        """Stream speakers for a clustering's labels, carried over from the windows' speakers before."""
        clusters = labels.max() + 1
        known = before != NEW
        overlap = np.zeros((clusters, max(self.count, 1)))
        np.add.at(overlap, (labels[known], before[known]), 1.0)
        rows, cols = linear_sum_assignment(overlap, maximize=True)
        mapping = np.full(clusters, NEW)
        kept = overlap[rows, cols] > 0
        mapping[rows[kept]] = cols[kept]
        for cluster in np.flatnonzero(mapping == NEW):  # in order of first appearance
            mapping[cluster] = self.count
            self.count += 1
        return mapping[labels]

    def _bound(self) -> None:
        """Past max_windows, drop the oldest windows of speakers that hold more than `anchors`."""
        excess = len(self.embeddings) - self.max_windows
        if excess <= 0:
            return
        drop = np.zeros(len(self.embeddings), dtype=bool)
        held = np.bincount(self.speakers, minlength=self.count)
        for index in np.argsort(self.frames[:, 1], kind="stable"):
            speaker = self.speakers[index]
            if held[speaker] > self.anchors:
                drop[index] = True
                held[speaker] -= 1
                excess -= 1
                if not excess:
                    break
        self.embeddings, self.frames, self.speakers = self.embeddings[~drop], self.frames[~drop], self.speakers[~drop]


def _keep_apart(population: np.ndarray, labels: np.ndarray, before: np.ndarray, merge_similarity: float) -> np.ndarray:
    """Clusters that join two speakers the stream already has, cut back apart unless their
    voiceprints are `merge_similarity` alike: a voice's first windows are few, and average
    linkage over few windows can pass the threshold between two people whose speech has been
    sent under two labels. Windows keep the speaker they had `before`; the others join the
    nearest of the speakers in their cluster."""
    labels = labels.copy()
    fresh = labels.max() + 1
    for cluster in np.unique(labels):
        members = np.flatnonzero(labels == cluster)
        speakers, sizes = np.unique(before[members][before[members] != NEW], return_counts=True)
        if len(speakers) < 2:
            continue
        prints = unit_rows(np.stack([population[members[before[members] == s]].sum(axis=0) for s in speakers]))
        largest = int(sizes.argmax())
        group = np.where(prints @ prints[largest] >= merge_similarity, largest, np.arange(len(speakers)))
        if (group == largest).all():
            continue
        ids = {g: (cluster if g == largest else fresh + n) for n, g in enumerate(np.unique(group))}
        fresh += len(ids)
        for s, g in zip(speakers, group, strict=True):
            labels[members[before[members] == s]] = ids[g]
        others = members[before[members] == NEW]
        if len(others):
            nearest = (unit_rows(population[others]) @ prints.T).argmax(axis=1)
            labels[others] = [ids[group[n]] for n in nearest]
    return labels
