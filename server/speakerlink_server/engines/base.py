"""The interfaces every engine implements.

An embedder turns windows of a 16 kHz clip into unit-length speaker vectors, and carries the
thresholds calibrated for its own cosine scale (GE2E's and TitaNet's differ).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np


class VoiceActivityDetector(Protocol):
    name: str

    def speech_regions(self, wav: np.ndarray) -> list[tuple[float, float]]:
        """Speech as (start, end) seconds, sorted and disjoint."""
        ...


class Embedder(Protocol):
    name: str
    dim: int
    window_seconds: float
    hop_seconds: float
    min_window_seconds: float
    cluster_threshold: float
    link_threshold: float

    def embed(self, wav: np.ndarray, windows: list[tuple[int, int]]) -> np.ndarray:
        """One L2-normalised row per (start, end) sample window; shape (len(windows), dim).

        Safe to call from several threads: calls share the embedder's device batches."""
        ...

    def close(self) -> None:
        """Stop the embedder's batching thread."""
        ...


def groups_by_length(spans: list[tuple[int, int]], most: int) -> Iterator[tuple[list[int], int]]:
    """(row indices, length) groups of at most `most` equal-length spans, so none needs padding.

    Nearly all windows have the full length; only speech regions shorter than a window give
    a few shorter ones. `most` bounds the memory one group of a long recording takes.
    """
    by_length: dict[int, list[int]] = {}
    for i, (start, end) in enumerate(spans):
        by_length.setdefault(end - start, []).append(i)
    for length, rows in by_length.items():
        for k in range(0, len(rows), most):
            yield rows[k : k + most], length


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)
