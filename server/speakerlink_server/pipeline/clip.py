"""One clip's analysis, the algorithm itself.

Either diarization: decode -> segment (local speakers per frame of sliding 10 s windows) ->
binarize, count speakers per frame (a second opinion where it hears no one: pipeline.missed_speech),
and find one-speaker stretches -> embed short windows of
those -> cluster -> give each window's local slots a speaker (pipeline.slots) -> label every
frame, overlapped ones with two speakers -> turns; a recording longer than a chunk a chunk at a
time (pipeline.chunks). Or transcription: the transcriber's speaker-labelled utterances define
the local speakers -> a voiceprint per speaker from their longest monologues, decoded chunk by
chunk (pipeline.voices).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from speakerlink_server import errors
from speakerlink_server.audio_format import SAMPLE_RATE
from speakerlink_server.engines.base import (
    ClipPart, CountBounds, Embedder, Hook, Segmenter, SpeechDetector, Transcriber, TranscriptionRequest,
)
from speakerlink_server.params import PipelineParams
from speakerlink_server.pipeline import audio, channel, missed_speech
from speakerlink_server.pipeline.activity import binarize, frame_grid, grid_runs, single_speaker_runs, speaker_count
from speakerlink_server.pipeline.chunks import ChunkAnalysis, join_chunks
from speakerlink_server.pipeline.clustering import Clusters, cluster_windows, count_warning, spread_threshold
from speakerlink_server.pipeline.linking import LocalSpeaker
from speakerlink_server.pipeline.reconstruct import frame_labels, label_frames, to_turns
from speakerlink_server.pipeline.segments import Turn, speech_seconds
from speakerlink_server.pipeline.slots import assign_by_frames, attach, slot_spans, unassigned_slots
from speakerlink_server.pipeline.voices import transcribed_speakers
from speakerlink_server.pipeline.windows import centres, run_windows, same_stretch, sample_spans


@dataclass(frozen=True)
class ClipInput:
    index: int
    name: str
    path: Path
    weight: float  # relative amount of work, e.g. file size


@dataclass(frozen=True)
class ClipAnalysis:
    duration: float
    turns: list[Turn]
    speakers: list[LocalSpeaker]
    warnings: list[str] = field(default_factory=list)


def analyse_clip(
    clip: ClipInput,
    bounds: CountBounds,
    segmenter: Segmenter,
    speech: SpeechDetector,
    embedder: Embedder,
    chunk_seconds: float,
    hook: Hook,
    max_seconds: float,
    params: PipelineParams,
) -> ClipAnalysis:
    """Diarize one clip; a recording longer than chunk_seconds a chunk at a time (pipeline.chunks)."""
    info = audio.probe(clip.path, clip.index, clip.name)
    parts = max(1, math.ceil((info.declared_seconds or 0.0) / chunk_seconds))
    chunks: list[ChunkAnalysis] = []
    duration = 0.0
    # A chunk may hold fewer speakers than the recording: chunks get the count as a maximum only,
    # and the recording's count is met when they are joined.
    chunk_bounds = bounds if parts == 1 else CountBounds(max_speakers=bounds.max_speakers)
    with contextlib.closing(audio.stream(clip.path, clip.index, clip.name, chunk_seconds, info, max_seconds)) as pieces:
        for part, offset, wav in _decoded(clip, parts, pieces, hook):
            end = offset + wav.size / SAMPLE_RATE
            where = f"{clip.name} ({offset:.0f}-{end:.0f} s)" if parts > 1 else clip.name
            chunks.append(analyse_chunk(wav, offset, where, chunk_bounds, segmenter, speech, embedder, hook, params, part))
            duration = end
    if len(chunks) == 1:
        only = chunks[0]
        return ClipAnalysis(duration, only.turns, [replace(s, clip_index=clip.index) for s in only.speakers], only.warnings)
    turns, speakers = join_chunks(clip.index, chunks, params.linking, embedder.calibration, embedder.space, bounds)
    warnings = [w for c in chunks for w in c.warnings] + _count_warnings(clip.name, bounds, len(speakers))
    return ClipAnalysis(duration, turns, speakers, warnings)


def _decoded(
    clip: ClipInput, parts: int, pieces: Iterator[tuple[float, np.ndarray]], hook: Hook,
) -> Iterator[tuple[ClipPart, float, np.ndarray]]:
    """(part, offset seconds, samples) of each chunk as it is decoded, each one a decode step
    for the hook (of the `parts` chunks the container declares: a chunk past them has none)."""
    for chunk in itertools.count():
        part = ClipPart(clip.index, clip.name, min(chunk, parts - 1), parts)
        if chunk < parts:
            which = f", chunk {chunk + 1} of {parts}" if parts > 1 else ""
            hook("decode", clip=part, message=f"decoding {clip.name}{which}")
        piece = next(pieces, None)
        if piece is None:
            return
        offset, wav = piece
        hook("decode", wav, clip=part)  # shape: (samples,)
        yield part, offset, wav


def analyse_chunk(
    wav: np.ndarray,
    offset: float,
    where: str,
    bounds: CountBounds,
    segmenter: Segmenter,
    speech: SpeechDetector,
    embedder: Embedder,
    hook: Hook,
    params: PipelineParams,
    part: ClipPart,
) -> ChunkAnalysis:
    """Diarize one stretch of audio; times come out shifted by offset. Each step begins and
    ends with a hook call about `part`, the end with what the step produced."""
    hook = functools.partial(hook, clip=part)
    hook("segment", message=f"finding speech and overlap in {where}")
    segmentation = segmenter.segment(wav, params.segmentation.step_seconds, hook)
    activity = binarize(segmentation)  # shape: (num_windows, num_frames, local_speakers)
    grid = frame_grid(segmentation)
    count = missed_speech.fill(wav, grid, speaker_count(segmentation, grid), lambda: speech.speech(wav), params.missed_speech)  # shape: (grid.size,)
    hook("segment", segmentation)  # log_probs shape: (num_windows, num_frames, num_classes)
    runs = single_speaker_runs(activity, grid, count)
    windows = run_windows(runs, grid, params.windows)
    if not windows and (count > 0).any():  # too little speech for a window: one voice of what there is
        windows = grid_runs(count > 0)
        runs = windows
    narrowband = channel.is_narrowband(wav)
    hook("embed", message=f"embedding {len(windows)} windows of {where}{' (narrowband)' if narrowband else ''}")
    embeddings = channel.embed(embedder, wav, sample_spans(windows, grid), narrowband, hook)  # shape: (num_windows, dim)
    hook("embed", embeddings)
    threshold = spread_threshold(embeddings, same_stretch(windows), params.clustering.threshold, params.spread)
    spread = f" (threshold {threshold:.2f}: its voices are spread)" if threshold != params.clustering.threshold else ""
    hook("cluster", message=f"clustering {where}{spread}")
    clusters = cluster_windows(embeddings, bounds, replace(params.clustering, threshold=threshold))
    frame_label = frame_labels(runs, centres(windows), clusters.labels, grid.size)
    assign = assign_by_frames(activity, grid, frame_label, len(clusters.centroids))
    slots = unassigned_slots(activity, grid, assign, params.slots)
    centroids = clusters.centroids
    if slots:
        slot_embeddings = channel.embed(embedder, wav, slot_spans(activity, grid, slots), narrowband, hook, step="cluster")
        assign, centroids = attach(assign, slots, slot_embeddings, centroids, activity, grid, bounds,
                                   params.clustering.threshold, params.slots)
    hook("cluster", Clusters(clusters.labels, centroids))  # labels shape: (num_windows,); centroids (speakers, dim)
    hook("turns", message=f"labelling the frames of {where}")
    speaking = label_frames(frame_label, assign, activity, grid, count, len(centroids))
    heard = speaking.any(axis=0)  # a new speaker may lose every frame to the others' votes
    speaking, centroids = speaking[:, heard], centroids[heard]
    turns = to_turns(speaking, grid, offset, wav.size / SAMPLE_RATE, params.turns)
    hook("turns", turns)
    speech = speech_seconds(turns, len(centroids))
    speakers = [LocalSpeaker(-1, i, centroid, float(speech[i]), narrowband) for i, centroid in enumerate(centroids)]
    return ChunkAnalysis(turns, speakers, _count_warnings(where, bounds, len(centroids)))


def _count_warnings(where: str, bounds: CountBounds, found: int) -> list[str]:
    warning = count_warning(bounds, found)
    return [f"{where}: {warning}"] if warning else []


def transcribe_clip(
    clip: ClipInput,
    request: TranscriptionRequest,
    transcriber: Transcriber,
    embedder: Embedder,
    chunk_seconds: float,
    wait: Callable[[float, ClipPart], None],
    hook: Hook,
    max_seconds: float,
) -> ClipAnalysis:
    part = ClipPart(clip.index, clip.name)
    hook = functools.partial(hook, clip=part)
    try:
        utterances = transcriber.transcribe(clip.path, request, hook, functools.partial(wait, clip=part))
    except errors.ServiceError as exc:
        raise exc.about_clip(clip.index, clip.name) from None
    found = len({u.speaker for u in utterances})
    hook("embed", message=f"embedding the voices of {found} speaker{'s' if found != 1 else ''} in {clip.name}")
    info = audio.probe(clip.path, clip.index, clip.name)
    with contextlib.closing(audio.stream(clip.path, clip.index, clip.name, chunk_seconds, info, max_seconds)) as pieces:
        speakers = transcribed_speakers(clip.index, pieces, info.declared_seconds or math.inf, utterances, embedder)
    hook("embed", np.stack([s.centroid for s in speakers.speakers]) if speakers.speakers else np.zeros((0, embedder.dim)))
    return ClipAnalysis(speakers.duration, speakers.turns, speakers.speakers)
