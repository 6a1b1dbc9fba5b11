"""Clustering a clip's windows: counts honoured or warned about, strays folded in, memory bounded."""

from __future__ import annotations

import numpy as np
import pytest
from speakerlink_server.engines.base import CountBounds
from speakerlink_server.params import ClusteringParams, SpreadParams
from speakerlink_server.pipeline.clustering import cluster_windows, count_warning, spread_threshold
from speakerlink_server.pipeline.tracking import NEW, SpeakerMemory
from toy_embeddings import noisy, voices


def labels_of(windows: np.ndarray, bounds: CountBounds | None = None) -> list[int]:
    return cluster_windows(windows, bounds or CountBounds(), ClusteringParams(0.5, fold_similarity=0.1, group_fold_similarity=0.3)).labels.tolist()


def test_clustering_honours_counts() -> None:
    a, b, c = voices(3)
    windows = np.vstack([noisy(a, 20, 0.05, 1), noisy(b, 20, 0.05, 2), noisy(c, 20, 0.05, 3)])
    assert len(set(labels_of(windows))) == 3
    assert len(set(labels_of(windows, CountBounds(2, 2)))) == 2
    assert len(set(labels_of(windows, CountBounds(max_speakers=2)))) == 2
    assert len(set(labels_of(windows[:20], CountBounds(min_speakers=2)))) == 2
    assert labels_of(windows[:0]) == []


def test_a_count_the_audio_cannot_hold_is_a_warning() -> None:
    one = voices(1)[0][None]
    clusters = cluster_windows(one, CountBounds(3, 3), ClusteringParams(0.5, fold_similarity=0.1, group_fold_similarity=0.3))
    assert clusters.labels.tolist() == [0]
    assert "3 speakers were asked for" in count_warning(CountBounds(3, 3), len(clusters.centroids))
    assert count_warning(CountBounds(max_speakers=3), 1) == ""


def test_a_few_stray_windows_fold_into_their_speaker_but_a_distinct_short_voice_stays() -> None:
    a, b, c = voices(3)
    stray = (a + 2 * b) / np.linalg.norm(a + 2 * b)  # cosine 0.45 with A: under the bar, close enough to fold
    windows = np.vstack([noisy(a, 20, 0.05, 1), noisy(stray, 2, 0.01, 2), noisy(a, 20, 0.05, 3)])
    assert labels_of(windows) == [0] * 42
    windows = np.vstack([noisy(a, 20, 0.05, 1), noisy(c, 2, 0.05, 2), noisy(a, 20, 0.05, 3)])
    assert labels_of(windows) == [0] * 20 + [1] * 2 + [0] * 20


def test_a_short_voice_of_two_windows_needs_more_to_fold_than_a_lone_window() -> None:
    a, b = voices(2)
    other = b - (b @ a) * a
    near = 0.25 * a + np.sqrt(1 - 0.25**2) * other / np.linalg.norm(other)  # over the lone bar, under the group's
    lone = np.vstack([noisy(a, 20, 0.05, 1), near[None], noisy(a, 20, 0.05, 3)])
    assert labels_of(lone) == [0] * 41
    pair = np.vstack([noisy(a, 20, 0.05, 1), noisy(near, 2, 0.01, 2), noisy(a, 20, 0.05, 3)])
    assert labels_of(pair) == [0] * 20 + [1] * 2 + [0] * 20


def test_long_clips_cluster_in_bounded_memory(monkeypatch) -> None:
    from speakerlink_server.pipeline import clustering

    monkeypatch.setattr(clustering, "MAX_LINKAGE_WINDOWS", 60)
    a, b = voices(2)
    windows = np.vstack([noisy(a, 150, 0.05, 1), noisy(b, 100, 0.05, 2), noisy(a, 50, 0.05, 3)])
    assert labels_of(windows) == [0] * 150 + [1] * 100 + [0] * 50


def pairs_at(cosine: float, count: int, seed: int = 0) -> np.ndarray:
    """Windows in pairs of one stretch whose cosine is exactly `cosine`. Shape: (2 * count, 32)."""
    rows = []
    for a, b in zip(voices(count, seed=seed), voices(count, seed=seed + 1), strict=True):
        other = b - (b @ a) * a
        rows += [a, cosine * a + np.sqrt(1 - cosine**2) * other / np.linalg.norm(other)]
    return np.array(rows)


SPREAD = SpreadParams(reference=0.70, slope=1.5, lowest=0.20)


def test_the_bar_drops_for_a_clip_whose_voices_are_spread() -> None:
    stretch = np.tile([True, False], 8)[:-1]  # windows 0-1, 2-3, ... are of one stretch each
    assert spread_threshold(pairs_at(0.80, 8), stretch, 0.35, SPREAD) == 0.35  # clean: the bar stays
    assert spread_threshold(pairs_at(0.64, 8), stretch, 0.35, SPREAD) == pytest.approx(0.35 - 1.5 * 0.06)
    assert spread_threshold(pairs_at(0.40, 8), stretch, 0.35, SPREAD) == 0.20  # never under `lowest`
    assert spread_threshold(pairs_at(0.40, 8), stretch, 0.35, SpreadParams(0.70, 0.0, 0.20)) == 0.35
    few = np.zeros(15, dtype=bool)
    few[[0, 2, 4, 6]] = True  # four pairs are too few to judge by
    assert spread_threshold(pairs_at(0.40, 8), few, 0.35, SPREAD) == 0.35


def test_a_stream_takes_the_bar_of_all_its_windows_in_the_order_of_the_audio() -> None:
    """A live stream's bar (pipeline.tracking) follows the same rule over the windows it keeps
    and the step's new ones together, taken in the order of the audio whatever order they come in."""
    frames = np.array([(10 * (i // 2) + 2 * (i % 2), 10 * (i // 2) + 2 * (i % 2) + 4) for i in range(16)])  # pairs overlap
    later = np.arange(8, 16)[::-1]
    for cosine, bar in ((0.64, 0.35 - 1.5 * 0.06), (0.80, 0.35)):
        windows = pairs_at(cosine, 8)
        memory = SpeakerMemory(32, CountBounds(), ClusteringParams(0.35, fold_similarity=0.1, group_fold_similarity=0.34), SPREAD, 0.6, 600, 40)
        memory.update(windows[:8], frames[:8], np.full(8, NEW), np.ones(8, dtype=bool))
        assert len(memory.embeddings) == 8
        assert memory.threshold(np.vstack([memory.embeddings, windows[later]]), frames[later]) == pytest.approx(bar)
