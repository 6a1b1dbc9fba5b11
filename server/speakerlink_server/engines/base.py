"""The interfaces every engine implements.

An embedder turns windows of a 16 kHz clip into unit-length speaker vectors, and carries the
thresholds calibrated for its own cosine scale (GE2E's and TitaNet's differ).
"""

from __future__ import annotations

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
        """One L2-normalised row per (start, end) sample window; shape (len(windows), dim)."""
        ...
