"""Within-clip clustering of window embeddings with an automatic speaker count.

Two stages, because single window embeddings are noisy while cluster centroids are not:

1. Average-linkage agglomerative clustering on cosine distance, cut at a strict threshold
   (`threshold - FRAGMENT_MARGIN`), gives small, pure fragments (a turn or part of one).
2. Fragments merge, most similar pair of centroids first, while their centroid cosine clears
   `threshold`. A pair where one side has fewer than SMALL_CLUSTER_WINDOWS windows needs
   SMALL_CLUSTER_BONUS less: a short fragment's centroid is noisier, and a stray piece of a
   speaker's turn otherwise survives as an extra speaker (on libri-dev-linking the genuine
   short speakers sit well below that bar, about 0.71 at most, the stray pieces at 0.79-0.80).

Then tiny clusters (under MIN_CLUSTER_WINDOWS windows, often a cough or a cross-talk blip) are
folded into their nearest neighbour unless that would go below the requested minimum. When a
request fixes the count (exact) or bounds it (min/max) and this misses it, the fragments of
stage 1 merge, most similar first, down to the count (the tree is cut finer where there are too
few). Merging fragments rather than cutting the plain tree at the count matters: with each
clip's true count given, libri-dev-linking scores per-clip DER 1.4 % (as when the count is
found) instead of the tree cut's 5.3 %. On ami-train GE2E cannot tell the speakers apart at
window level, and any forced count hurts: 45.6 % merging fragments, 39.0 % cutting the tree,
53.8 % merging by Ward's criterion, against 25.1 % with the count found.

Window counts assume the GE2E hop of 0.3 s: 5 windows of 1.2 s span about 2.4 s of speech.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from speakerlink_server.engines.base import unit_rows

# Average linkage needs all pairwise distances: n^2/2 doubles, 64 MB for 4000 windows (20 min
# of speech at the GE2E hop) but 7 GB for 43000 (a 100 MB MP3 of 3.6 h). Longer clips are
# clustered on an evenly spread subset, and every window then joins its nearest centroid.
MAX_LINKAGE_WINDOWS = 4000
MIN_CLUSTER_WINDOWS = 5
SMALL_CLUSTER_WINDOWS = 8
SMALL_CLUSTER_BONUS = 0.05
FRAGMENT_MARGIN = 0.04


@dataclass(frozen=True)
class CountBounds:
    exact: int = 0
    min: int = 0
    max: int = 0


def cluster_windows(embeddings: np.ndarray, bounds: CountBounds, threshold: float) -> np.ndarray:
    """A speaker index 0..k-1 per window, numbered by first appearance.

    `threshold` is the centroid cosine above which two clusters are one speaker.
    """
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1:
        return np.zeros(1, dtype=int)
    if n > MAX_LINKAGE_WINDOWS:
        subset = np.linspace(0, n - 1, MAX_LINKAGE_WINDOWS).round().astype(int)
        labels = cluster_windows(embeddings[subset], bounds, threshold)
        return _renumber((embeddings @ centroids(embeddings[subset], labels).T).argmax(axis=1))
    tree = linkage(embeddings, method="average", metric="cosine")
    fragments = fcluster(tree, t=1.0 - (threshold - FRAGMENT_MARGIN), criterion="distance")
    labels = _fold_small(embeddings, _merge_fragments(embeddings, fragments, threshold), max(bounds.min, 1))
    lo, hi = (bounds.exact, bounds.exact) if bounds.exact else (bounds.min or 1, bounds.max or n)
    count = len(np.unique(labels))
    if lo <= count <= hi:
        return _renumber(labels)
    # The count is fixed or bounded and the threshold missed it: merge the fragments to it, or
    # where there are too few, cut the tree finer.
    target = min(max(count, lo), hi, n)
    if len(np.unique(fragments)) < target:
        fragments = fcluster(tree, t=target, criterion="maxclust")
    return _renumber(merge_to(embeddings, _fold_small(embeddings, fragments, target), target))


def _merge_fragments(embeddings: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy centroid-linkage merging: the pair furthest above its bar merges first."""
    labels = labels.copy()
    while True:
        ids, sizes, vectors = _groups(embeddings, labels)
        if len(ids) < 2:
            return labels
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, -np.inf)
        small = np.minimum(sizes[:, None], sizes[None, :]) < SMALL_CLUSTER_WINDOWS
        margin = similarity - np.where(small, threshold - SMALL_CLUSTER_BONUS, threshold)
        a, b = np.unravel_index(int(np.argmax(margin)), margin.shape)
        if margin[a, b] < 0:
            return labels
        labels[labels == ids[b]] = ids[a]


def merge_to(embeddings: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Greedy centroid-linkage merging, most similar pair first, down to `count` clusters.
    Rows may be weighted (a centroid is the direction of its rows' sum)."""
    labels = labels.copy()
    while True:
        ids, _, vectors = _groups(embeddings, labels)
        if len(ids) <= count:
            return labels
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, -np.inf)
        a, b = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
        labels[labels == ids[b]] = ids[a]


def _fold_small(embeddings: np.ndarray, labels: np.ndarray, keep_at_least: int) -> np.ndarray:
    labels = labels.copy()
    while True:
        ids, sizes, vectors = _groups(embeddings, labels)
        small = sizes < MIN_CLUSTER_WINDOWS
        if len(ids) <= keep_at_least or not small.any() or small.all():
            return labels
        victim = int(np.flatnonzero(small)[np.argmin(sizes[small])])
        similarity = vectors @ vectors[victim]
        similarity[victim] = -np.inf
        labels[labels == ids[victim]] = ids[int(np.argmax(similarity))]


def _renumber(labels: np.ndarray) -> np.ndarray:
    order = {label: i for i, label in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([order[label] for label in labels.tolist()], dtype=int)


def _groups(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each label's id, size and unit-length mean embedding, in sorted label order."""
    ids, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((len(ids), embeddings.shape[1]))
    np.add.at(sums, inverse, embeddings)
    return ids, sizes, unit_rows(sums)


def centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit-length mean embedding of each speaker index 0..k-1, in index order."""
    return _groups(embeddings, labels)[2]
