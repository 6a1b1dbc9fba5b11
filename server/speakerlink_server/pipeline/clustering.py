"""Within-clip clustering of window embeddings, with an automatic speaker count.

Average-linkage agglomerative clustering on cosine distance, cut where the average cosine
between two groups falls below the embedder's clustering threshold, lowered for a clip whose
voices a room has spread (spread_threshold). Then clusters of fewer
than `min_cluster_windows` windows (a cough, a window across a change of speaker) are folded
into their nearest neighbour, where it is close enough: `fold_similarity` for a lone window,
the higher `group_fold_similarity` for windows that cluster together, more often a person with
a few seconds of speech. A count asked for that this misses is met
by merging the most similar clusters (too many) or cutting the same tree at the count (too
few); a count the audio cannot hold comes back as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from speakerlink_server.engines.base import CountBounds, unit_rows
from speakerlink_server.params import ClusteringParams, SpreadParams

# Fewest pairs of neighbouring windows of one stretch to judge a clip's spread by.
MIN_SPREAD_PAIRS = 5

# Average linkage needs all pairwise distances: n^2/2 doubles, 64 MB for 4000 windows (an
# hour of one-speaker speech at a 0.75 s hop... split in chunks of 10 minutes, so at most 800
# a chunk). Beyond it an evenly spread subset is clustered and every window joins its nearest centroid.
MAX_LINKAGE_WINDOWS = 4000


@dataclass(frozen=True)
class Clusters:
    labels: np.ndarray  # shape: (num_windows,), 0..k-1 by first appearance
    centroids: np.ndarray  # shape: (k, dim), unit rows


def cluster_windows(embeddings: np.ndarray, bounds: CountBounds, params: ClusteringParams) -> Clusters:
    n = len(embeddings)
    if n <= 1:
        labels = np.zeros(n, dtype=int)
        return Clusters(labels, unit_rows(embeddings))
    if n > MAX_LINKAGE_WINDOWS:
        subset = np.linspace(0, n - 1, MAX_LINKAGE_WINDOWS).round().astype(int)
        fitted = cluster_windows(embeddings[subset], bounds, params)
        labels = _renumber((embeddings @ fitted.centroids.T).argmax(axis=1))
        return Clusters(labels, centroids(embeddings, labels))
    tree = linkage(embeddings, method="average", metric="cosine")
    fewest, most = bounds.min_speakers or 1, bounds.max_speakers or n
    labels = fcluster(tree, t=1.0 - params.threshold, criterion="distance")
    labels = _fold_small(embeddings, labels, params, fewest)
    found = len(np.unique(labels))
    if found > most:
        labels = merge_to(embeddings, labels, most)
    elif found < fewest:
        labels = fcluster(tree, t=fewest, criterion="maxclust")
    labels = _renumber(labels)
    return Clusters(labels, centroids(embeddings, labels))


def spread_threshold(embeddings: np.ndarray, same_stretch: np.ndarray, threshold: float, spread: SpreadParams) -> float:
    """The clustering threshold for this clip: lowered where neighbouring windows of one
    stretch, almost always one person, agree less than they do in clean audio. A reverberant
    room spreads each voice's windows while different people stay apart, so a fixed bar splits
    voices there. same_stretch[i]: windows i and i + 1 are of one stretch."""
    pairs = np.flatnonzero(same_stretch)
    if pairs.size < MIN_SPREAD_PAIRS:
        return threshold
    agreement = float(np.median(np.einsum("ij,ij->i", embeddings[pairs], embeddings[pairs + 1])))
    return max(spread.lowest, threshold - spread.slope * max(0.0, spread.reference - agreement))


def merge_to(rows: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Labels after merging the two groups with the most similar centroids, again and again,
    until at most `count` remain. Rows may be weighted: a centroid is the direction of its rows' sum."""
    labels = labels.copy()
    while True:
        ids, vectors = _groups(rows, labels)
        if len(ids) <= count:
            return labels
        similarity = vectors @ vectors.T
        np.fill_diagonal(similarity, -np.inf)
        a, b = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
        labels[labels == ids[b]] = ids[a]


def centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit-length mean embedding of each label 0..k-1, in label order."""
    return _groups(embeddings, labels)[1]


def _fold_small(embeddings: np.ndarray, labels: np.ndarray, params: ClusteringParams, keep_at_least: int) -> np.ndarray:
    labels = labels.copy()
    kept: set[int] = set()  # small clusters too unlike the others to fold
    while True:
        ids, vectors = _groups(embeddings, labels)
        sizes = np.unique(labels, return_counts=True)[1]
        small = (sizes < params.min_cluster_windows) & ~np.isin(ids, list(kept))
        if len(ids) <= keep_at_least or not small.any() or (sizes < params.min_cluster_windows).all():
            return labels
        victim = int(np.flatnonzero(small)[np.argmin(sizes[small])])
        similarity = vectors @ vectors[victim]
        similarity[victim] = -np.inf
        if similarity.max() < (params.fold_similarity if sizes[victim] == 1 else params.group_fold_similarity):
            kept.add(int(ids[victim]))
            continue
        labels[labels == ids[victim]] = ids[int(np.argmax(similarity))]


def _groups(rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each label's id and unit-length summed row, in sorted label order."""
    ids, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")  # each group's rows in their own order, as a loop would add them
    firsts = np.searchsorted(inverse[order], np.arange(len(ids)))
    return ids, unit_rows(np.add.reduceat(rows[order].astype(np.float64), firsts, axis=0))


def _renumber(labels: np.ndarray) -> np.ndarray:
    order = {label: i for i, label in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([order[label] for label in labels.tolist()], dtype=int)


def count_warning(bounds: CountBounds, found: int) -> str:
    """What to tell the caller when `found` speakers fall short of the count asked for, or ""."""
    wanted = bounds.min_speakers
    if not wanted or found >= wanted:
        return ""
    return f"{wanted} speakers were asked for, but the audio holds speech enough to tell apart only {found}"
