"""The interfaces every engine implements.

A segmenter scores, frame by frame, which local speakers talk in overlapping windows of a clip.
An embedder turns stretches of a clip into unit-length speaker vectors, and supplies the
pipeline's parameters for its own cosine scale (CAM++'s and TitaNet's differ; params.py). A transcriber
turns a clip into speaker-labelled utterances; its labels are per clip, and linking them
across clips is the pipeline's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol, Self

import numpy as np

from speakerlink_server.params import PipelineParams

Spans = list[tuple[int, int]]
"""One item to embed: (start, end) sample spans of a clip, joined into one stretch of speech."""


@dataclass(frozen=True)
class ClipPart:
    """Which clip of a job, and which chunk of it, a hook call is about."""

    index: int
    name: str
    chunk: int = 0
    chunks: int = 1


class Hook(Protocol):
    """What follows a job's steps (decode, segment, embed, cluster, turns, link, ...).

    A step calls it when it begins (`hook(step, clip=..., message=...)`), after each batch of
    its work (`completed=`, `total=`; `total=0` where there is no amount to tell, only a chance
    to stop), and when it ends, with what it produced (`hook(step, artifact, clip=...)`; never
    None). `clip` is None for a step of the whole job. Raising from it stops the work: that is
    how a cancel lands within one batch. Progress, cancel, timing and artifacts are hooks
    (pipeline/hooks.py, pipeline/progress.py)."""

    def __call__(self, step: str, artifact: object = None, *, completed: int | None = None,
                 total: int | None = None, clip: ClipPart | None = None, message: str = "") -> None: ...


def noop_hook(step: str, artifact: object = None, *, completed: int | None = None, total: int | None = None,
              clip: ClipPart | None = None, message: str = "") -> None:
    """The hook of a caller that follows nothing."""


@dataclass(frozen=True)
class FrameTiming:
    """Where frame f of a window that starts at t lies: from t + start + f * step, for duration."""

    start: float
    step: float
    duration: float
    count: int  # frames per window

    def centres(self, window_start: float | np.ndarray) -> np.ndarray:
        offsets = self.start + self.duration / 2 + self.step * np.arange(self.count)
        return np.add.outer(np.atleast_1d(window_start), offsets)


@dataclass(frozen=True)
class Segmentation:
    log_probs: np.ndarray  # shape: (num_windows, num_frames, num_classes)
    starts: np.ndarray  # shape: (num_windows,), seconds from the start of the audio given
    timing: FrameTiming
    powerset: np.ndarray  # shape: (num_classes, local_speakers): who speaks in each class
    duration: float  # seconds of audio given


@dataclass(frozen=True)
class Calibration:
    """P(one person | the score s linking gives a pair of voiceprints, pipeline.linking.scores)
    = 1 / (1 + exp(-(slope * s + offset))), at even odds.

    Each embedder has its own (engines/*.py), fitted on same-person and different-person
    pairs of real recordings. A link's confidence is that probability for its least similar
    pair; a decision not to link is as sure as the most similar speaker of another clip is not
    the same person."""

    slope: float
    offset: float

    def same_person(self, cosine: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.slope * cosine + self.offset, -50.0, 50.0)))


class Measured:
    """A measurement of an embedder, shipped beside its weights as the float32 arrays of its
    dataclass fields (.npz) and written by the benchmark that measures it."""

    @classmethod
    def load(cls, path: Path) -> Self:
        with np.load(path, allow_pickle=False) as saved:
            return cls(**{field.name: saved[field.name] for field in fields(cls)})

    def save(self, path: Path) -> None:
        np.savez(path, **{field.name: getattr(self, field.name).astype(np.float32) for field in fields(self)})


@dataclass(frozen=True)
class ChannelCompensation(Measured):
    """What a narrowband channel does to an embedder's unit embeddings, measured once per
    embedder (benchmarks/narrowband_compensation.py) and taken away by pipeline.channel.

    `shift` is the mean narrowband embedding less the mean full-band one; `nuisance` holds the
    directions in which narrowband channels (pass bands, codecs) differ from one another, to be
    projected out (nuisance attribute projection)."""

    shift: np.ndarray  # shape: (dim,)
    nuisance: np.ndarray  # shape: (directions, dim), orthonormal rows


@dataclass(frozen=True)
class ScoreSpace(Measured):
    """Where an embedder's voiceprints are compared across recordings (linking, naming):
    centred on the mean voice, then whitened against how one person's voiceprint moves from
    one piece of speech and recording condition to another (within-class covariance
    normalisation, WCCN), then unit length. Measured once per embedder on readers heard
    through many simulated rooms, lines and codecs (benchmarks/score_space.py): directions in
    which a room or a codec moves everyone count less than those in which people differ.

    Voiceprints are stored as the embedder gives them; the space applies when two are scored,
    so a new measurement needs no migration of enrolled voices."""

    mean: np.ndarray  # shape: (dim,)
    whitening: np.ndarray  # shape: (dim, dim), symmetric

    def project(self, vectors: np.ndarray) -> np.ndarray:
        return unit_rows(unit_rows(unit_rows(vectors) - self.mean) @ self.whitening)


def compared(vectors: np.ndarray, space: ScoreSpace | None) -> np.ndarray:
    """Voiceprints (rows) as unit rows of the space they are scored in: the embedder's score
    space, or the embedding space itself where none was measured."""
    return unit_rows(vectors) if space is None else space.project(vectors)


class SpeechStream(Protocol):
    """A speech detector following one live stream: fed its audio once, in order, so that each
    step reads only the audio new since the last."""

    def feed(self, samples: np.ndarray, final: bool = False) -> None:
        """The stream's next 16 kHz mono samples; `final`: they are its last."""
        ...

    def speech(self, start: int, end: int) -> list[tuple[float, float]]:
        """(start, end) seconds from the stream's beginning of each stretch of speech in its
        samples start..end (as far as they have been fed)."""
        ...

    def forget(self, before: int) -> None:
        """Samples before this one will not be asked about again: what was kept of them can go,
        so that memory stays bounded over any length of stream."""
        ...

    def close(self) -> None: ...


class SpeechDetector(Protocol):
    """Where there is speech, and nothing about who: a second opinion where the segmenter hears
    none (pipeline.missed_speech)."""

    name: str

    def speech(self, wav: np.ndarray) -> list[tuple[float, float]]:
        """(start, end) seconds of each stretch of speech in 16 kHz mono samples. Safe to call
        from several threads."""
        ...

    def stream(self) -> SpeechStream:
        """A detector for one live stream; one thread at a time."""
        ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


class Segmenter(Protocol):
    name: str

    def segment(self, wav: np.ndarray, step: float, hook: Hook = noop_hook) -> Segmentation:
        """Frame scores of local speakers in windows every `step` s over the clip; hook("segment",
        completed=, total=) per batch."""
        ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


class Embedder(Protocol):
    name: str
    dim: int
    calibration: Calibration  # link confidence as a probability, from linking's scores
    # Where voiceprints are compared across recordings (linking, naming), or None where it was
    # not measured: then raw cosines.
    space: ScoreSpace | None
    # What a narrowband channel does to this embedder's embeddings (pipeline.channel), or None
    # where it was not measured: then nothing is taken away.
    narrowband: ChannelCompensation | None

    def default_parameters(self) -> PipelineParams:
        """The pipeline's parameters for this embedder's cosine scale (params.py)."""
        ...

    def embed(self, wav: np.ndarray, items: list[Spans], hook: Hook = noop_hook, step: str = "embed") -> np.ndarray:
        """One L2-normalised row per item; an item with no audio gets a zero row. Shape (len(items), dim).
        hook(step, completed=, total=) per batch: `step` is the caller's (embedding a clip's
        stray slots is part of its "cluster" step).

        Safe to call from several threads: calls share the embedder's device batches."""
        ...

    def describe(self) -> str: ...

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
class CountBounds:
    """How many speakers a request allows, resolved once (uploads.job_request): an exact count
    N is (N, N), and 0 leaves that side open. Clustering, slots, chunk joining and transcribers
    all read this one pair."""

    min_speakers: int = 0
    max_speakers: int = 0

    @property
    def exact(self) -> int:
        """The one count allowed, or 0 where the bounds leave a range."""
        return self.min_speakers if self.min_speakers == self.max_speakers else 0


@dataclass(frozen=True)
class TranscriptionRequest:
    language: str = ""  # "" for the transcriber's default
    speakers: CountBounds = CountBounds()


Wait = Callable[[float], None]
"""wait(seconds): sleep, raising instead if the job is cancelled meanwhile."""


class Transcriber(Protocol):
    name: str
    concurrency: int  # clips of one job to transcribe at once

    def transcribe(self, path: Path, request: TranscriptionRequest, hook: Hook, wait: Wait) -> list[Utterance]:
        """The clip's utterances in time order. Each stage of the service's begins with
        hook("transcribe-queued", message=...) and the like. All waiting goes through `wait`,
        so a cancelled job stops polling at once. Failures raise ServiceError."""
        ...


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)
