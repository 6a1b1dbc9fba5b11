"""The interfaces every engine implements.

An embedder turns windows of a 16 kHz clip into unit-length speaker vectors, and carries the
thresholds calibrated for its own cosine scale (GE2E's and TitaNet's differ). A transcriber
turns a clip into speaker-labelled utterances; its labels are per clip, and linking them
across clips is the pipeline's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class TranscribedWord:
    start: float  # seconds
    end: float
    text: str
    confidence: float


@dataclass(frozen=True)
class Utterance:
    start: float  # seconds
    end: float
    speaker: str  # the transcriber's own label, meaningful within one clip only
    text: str
    words: tuple[TranscribedWord, ...]


@dataclass(frozen=True)
class TranscriptionRequest:
    language: str = ""  # "" for the transcriber's default
    speakers_exact: int = 0  # 0: not set
    speakers_min: int = 0
    speakers_max: int = 0


Stage = Callable[[str, str], None]
"""stage(name, message): a transcription stage of the clip has begun ("transcribe-queued", ...)."""
Wait = Callable[[float], None]
"""wait(seconds): sleep, raising instead if the job is cancelled meanwhile."""


class Transcriber(Protocol):
    name: str
    concurrency: int  # clips of one job to transcribe at once

    def transcribe(self, path: Path, request: TranscriptionRequest, stage: Stage, wait: Wait) -> list[Utterance]:
        """The clip's utterances in time order. All waiting goes through `wait`, so a
        cancelled job stops polling at once. Failures raise ServiceError."""
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
