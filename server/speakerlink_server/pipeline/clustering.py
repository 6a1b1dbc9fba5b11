"""Within-clip clustering of window embeddings with an automatic speaker count.

Average-linkage agglomerative clustering on cosine distance: the count comes from the
embedder's calibrated threshold unless the request fixes it (exact) or bounds it (min/max).
Tiny clusters (a window or two, often a cough or a cross-talk blip) are folded into their
nearest neighbour unless that would go below the requested minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

MIN_CLUSTER_WINDOWS = 3


@dataclass(frozen=True)
class CountBounds:
    exact: int = 0
    min: int = 0
    max: int = 0


def cluster_windows(embeddings: np.ndarray, bounds: CountBounds, threshold: float) -> np.ndarray:
    """A speaker index 0..k-1 per window, numbered by first appearance."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1:
        return np.zeros(1, dtype=int)
    tree = linkage(embeddings, method="average", metric="cosine")
    if bounds.exact:
        labels = fcluster(tree, t=min(bounds.exact, n), criterion="maxclust")
    else:
        labels = fcluster(tree, t=1.0 - threshold, criterion="distance")
        labels = _fold_small(embeddings, labels, max(bounds.min, 1))
        count = len(np.unique(labels))
        lo, hi = bounds.min or 1, bounds.max or n
        if count < lo or count > hi:
            labels = fcluster(tree, t=min(max(count, lo), hi, n), criterion="maxclust")
    return _renumber(labels)


def _fold_small(embeddings: np.ndarray, labels: np.ndarray, keep_at_least: int) -> np.ndarray:
    labels = labels.copy()
    while True:
        ids, sizes = np.unique(labels, return_counts=True)
        small = ids[sizes < MIN_CLUSTER_WINDOWS]
        if len(ids) <= keep_at_least or len(small) == 0 or len(small) == len(ids):
            return labels
        victim = small[np.argmin(sizes[sizes < MIN_CLUSTER_WINDOWS])]
        others = [c for c in ids if c != victim]
        centroid = unit(embeddings[labels == victim].mean(axis=0))
        nearest = max(others, key=lambda c: float(unit(embeddings[labels == c].mean(axis=0)) @ centroid))
        labels[labels == victim] = nearest


def _renumber(labels: np.ndarray) -> np.ndarray:
    order = {label: i for i, label in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([order[label] for label in labels.tolist()], dtype=int)


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-8)


def centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit-length mean embedding of each speaker index, in index order."""
    k = int(labels.max()) + 1 if labels.size else 0
    return np.stack([unit(embeddings[labels == i].mean(axis=0)) for i in range(k)]) if k else np.zeros((0, embeddings.shape[1]))
