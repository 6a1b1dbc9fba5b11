"""Unit-length toy voiceprints: a few random voices and noisy windows around them."""

from __future__ import annotations

import numpy as np


def voices(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def noisy(center: np.ndarray, count: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = center + spread * rng.standard_normal((count, center.size))
    return x / np.linalg.norm(x, axis=1, keepdims=True)
