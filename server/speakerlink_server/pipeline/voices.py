"""Voiceprints for a transcriber's speakers, so that they can be linked across clips.

A transcriber labels speakers within one clip only. Each of its speakers gets one embedding,
the mean of the embedder's windows over their longest monologues: at most MAX_MONOLOGUES
utterances and VOICE_SECONDS of speech in all.

- Longest first, because long turns are the ones least likely to hold another voice: short
  utterances are often backchannels, interruptions or overlap at a turn change.
- VOICE_SECONDS = 30: speaker-verification embeddings are scored on utterances of about
  4-10 s (VoxCeleb trials average about 8 s), and averaging window embeddings stops helping
  well before half a minute of clean speech, while the cost grows with every second. Two to
  five long turns give a centroid as stable as the clustering path's, at about 100 GE2E
  windows per speaker.
- EDGE_SECONDS is trimmed from both ends of each turn: word timestamps put turn boundaries
  where the previous speaker may still be trailing off.
- Stretches where another labelled speaker talks too are left out: overlapped speech is two
  voices in one window. (On libri-dev-linking with the reference turns as labels, this took
  cross-clip linking from 96.4 % to 100 %: one speaker's turns in the overlapped clip dlk15
  had been split off.) A speaker who only ever speaks over someone keeps their whole turns.

A speaker whose every utterance is too short for a window gets one window of the embedder's
minimum length centred on their longest utterance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from speakerlink_server.engines.base import Embedder, Utterance
from speakerlink_server.pipeline.audio import SAMPLE_RATE
from speakerlink_server.pipeline.clustering import centroids
from speakerlink_server.pipeline.linking import LocalSpeaker
from speakerlink_server.pipeline.segments import Turn, speech_seconds
from speakerlink_server.pipeline.windows import speech_windows

MAX_MONOLOGUES = 5
VOICE_SECONDS = 30.0
EDGE_SECONDS = 0.1


@dataclass(frozen=True)
class TranscribedSpeakers:
    speakers: list[LocalSpeaker]
    turns: list[Turn]
    duration: float  # seconds of audio decoded


def voice_spans(utterances: list[Utterance], duration: float, min_window: float) -> list[tuple[float, float]]:
    """The (start, end) seconds of one speaker's speech that their voiceprint is taken from."""
    spans: list[tuple[float, float]] = []
    total = 0.0
    for u in sorted(utterances, key=lambda u: u.end - u.start, reverse=True)[:MAX_MONOLOGUES]:
        start, end = u.start + EDGE_SECONDS, min(u.end - EDGE_SECONDS, duration)
        if end - start < min_window:
            break  # sorted by length: every later one is shorter still
        take = min(end - start, VOICE_SECONDS - total)
        spans.append((start, start + max(take, min_window)))
        total += take
        if total >= VOICE_SECONDS:
            break
    if not spans and utterances:
        longest = max(utterances, key=lambda u: u.end - u.start)
        centre = min(max((longest.start + longest.end) / 2, min_window / 2), max(duration - min_window / 2, 0.0))
        spans.append((max(centre - min_window / 2, 0.0), min(centre + min_window / 2, duration)))
    return spans


def without(spans: list[tuple[float, float]], cuts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The parts of spans that no cut overlaps."""
    for cut_start, cut_end in cuts:
        pieces = []
        for start, end in spans:
            if cut_end <= start or cut_start >= end:
                pieces.append((start, end))
                continue
            pieces += [p for p in ((start, cut_start), (cut_end, end)) if p[1] > p[0]]
        spans = pieces
    return spans


def _windows(spans: list[tuple[float, float]], embedder: Embedder) -> list[tuple[int, int]]:
    return speech_windows(spans, embedder.window_seconds, embedder.hop_seconds, embedder.min_window_seconds)


def transcribed_speakers(
    clip_index: int,
    pieces: Iterable[tuple[float, np.ndarray]],
    duration: float,
    utterances: list[Utterance],
    embedder: Embedder,
) -> TranscribedSpeakers:
    """Local speakers in order of first appearance, each with a voiceprint, and the turns.

    The audio comes as (offset seconds, samples) chunks of the recording (audio.stream), so a
    long one is never in memory whole; `duration` is its length as far as known beforehand
    (the container's), the result's is what was decoded."""
    labels = list(dict.fromkeys(u.speaker for u in utterances))
    local = {label: i for i, label in enumerate(labels)}
    wanted: list[tuple[int, int, int]] = []  # (start, end) sample window, speaker
    for label, i in local.items():
        mine = [u for u in utterances if u.speaker == label]
        spans = voice_spans(mine, duration, embedder.min_window_seconds)
        clean = without(spans, [(u.start, u.end) for u in utterances if u.speaker != label])
        wanted += [(a, b, i) for a, b in _windows(clean, embedder) or _windows(spans, embedder)]
    embedded, owners = [], []
    decoded = 0.0
    for offset, wav in pieces:
        decoded = offset + wav.size / SAMPLE_RATE
        base = round(offset * SAMPLE_RATE)
        inside = [(a - base, b - base, i) for a, b, i in wanted if base <= a and b <= base + wav.size]
        if inside:  # a window across a chunk boundary is left out: a second's speech at most
            embedded.append(embedder.embed(wav, [(a, b) for a, b, _ in inside]))
            owners += [i for *_, i in inside]
    # A speaker with no window at all (only in a clip shorter than one) keeps a zero
    # voiceprint: cosine 0 with everyone, so they are never linked.
    prints = np.zeros((len(labels), embedder.dim))
    if owners:
        prints[sorted(set(owners))] = centroids(np.concatenate(embedded), np.array(owners, dtype=np.int64))
    turns = [Turn(u.start, u.end, local[u.speaker], u.text, u.words) for u in utterances]
    speech = speech_seconds(turns, len(labels))
    speakers = [LocalSpeaker(clip_index, i, prints[i], float(speech[i])) for i in range(len(labels))]
    return TranscribedSpeakers(speakers, turns, decoded)
