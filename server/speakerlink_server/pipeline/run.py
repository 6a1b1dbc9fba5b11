"""One job's clips through every stage, reporting progress and honouring cancellation.

Per clip, several clips at a time, either
- diarization: decode -> segment (local speakers per frame of sliding 10 s windows) -> binarize,
  count speakers per frame, and find one-speaker stretches -> embed short windows of those ->
  cluster -> give each window's local slots a speaker (pipeline.slots) -> label every frame,
  overlapped ones with two speakers -> turns; or
- transcription: the transcriber's speaker-labelled utterances define the local speakers ->
  a voiceprint per speaker from their longest monologues, decoded chunk by chunk (pipeline.voices).
Then all clips' local speakers are linked into global speakers, the result message is
assembled with global labels S1, S2, ... by first appearance, and speakers that match an
enrolled voice are named (pipeline.recognize).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server import errors
from speakerlink_server.audio_format import SAMPLE_RATE
from speakerlink_server.engines.base import CountBounds, Embedder, Hook, Segmenter, Transcriber, TranscriptionRequest
from speakerlink_server.pipeline import audio
from speakerlink_server.pipeline.activity import binarize, frame_grid, grid_runs, single_speaker_runs, speaker_count
from speakerlink_server.pipeline.chunks import ChunkAnalysis, join_chunks
from speakerlink_server.pipeline.clustering import ClusteringParams, cluster_windows, count_warning
from speakerlink_server.pipeline.linking import LocalSpeaker, global_voiceprints, link_speakers
from speakerlink_server.pipeline.recognize import Voice, recognize
from speakerlink_server.pipeline.reconstruct import TurnParams, frame_labels, label_frames, to_turns
from speakerlink_server.pipeline.request import JobRequest
from speakerlink_server.pipeline.segments import Turn, speech_seconds
from speakerlink_server.pipeline.slots import SlotParams, assign_by_frames, attach, slot_spans, unassigned_slots
from speakerlink_server.pipeline.voices import transcribed_speakers
from speakerlink_server.pipeline.windows import WindowParams, centres, run_windows, sample_spans

# Where each stage starts within a clip's share of the progress percent; linking takes the
# last LINK_SHARE of the job. Diarizing on a CPU (benchmarks/gpu_speed.py): decoding runs
# along with the rest, segmentation takes about 27 % of a clip's time, embedding 67 %,
# clustering and labelling 3 %. Transcribing: mostly waiting for the transcriber.
DIARIZE_STAGES = {"decode": 0.0, "segment": 0.03, "embed": 0.30, "cluster": 0.97}
TRANSCRIBE_STAGES = {
    "transcribe-uploading": 0.0, "transcribe-queued": 0.10, "transcribe-processing": 0.20,
    "transcribe-completed": 0.85, "embed": 0.88,
}
LINK_SHARE = 0.05
# Clips of a job analysed at once: decoding and segmentation overlap, and their windows meet in the
# embedder's device batches. A transcribing job runs the transcriber's own number at once.
CLIP_THREADS = 4
WAIT_SLICE_S = 0.2  # how often a waiting clip checks for cancellation

Report = Callable[[str, float, int, str], None]
"""report(stage, fraction of the whole job done, clip index or -1, message)."""
# The segmenter's 10 s windows slide by this many seconds: each frame is seen by two windows.
# Identity comes from the embedder's short windows, so a finer step buys little and costs CPU
# time in proportion: 2.5 s scored the same, 1 s 0.7 points better on ami-train and 1 point
# worse on libri-dev-linking (benchmarks/QUALITY.md).
STEP_S = 5.0
WINDOWS = WindowParams()
TURNS = TurnParams()
SLOTS = SlotParams()


@dataclass(frozen=True)
class Diarized:
    result: pb.DiarizationResult
    # Each global speaker's (embedding, speech seconds) by label: what enrolling them takes.
    voiceprints: dict[str, tuple[np.ndarray, float]]


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


def run_pipeline(
    clips: list[ClipInput],
    request: JobRequest,
    segmenter: Segmenter,
    embedder: Embedder,
    transcriber: Transcriber | None,
    report: Report,
    check_cancelled: Callable[[], None],
    chunk_seconds: float,
    max_clip_seconds: float,
    voices: Sequence[Voice] = (),
) -> Diarized:
    """Diarize and link the clips; speakers that match one of `voices` (enrolled with this
    embedder) get its name."""
    started = time.monotonic()
    stages, threads = (TRANSCRIBE_STAGES, transcriber.concurrency) if transcriber else (DIARIZE_STAGES, CLIP_THREADS)
    progress = _JobProgress(clips, stages, report, check_cancelled)
    if transcriber is None:
        analyse = functools.partial(analyse_clip, bounds=request.speakers, segmenter=segmenter, embedder=embedder,
                                    chunk_seconds=chunk_seconds, max_seconds=max_clip_seconds)
    else:
        asked = TranscriptionRequest(request.language, request.speakers)
        analyse = functools.partial(transcribe_clip, request=asked, transcriber=transcriber, embedder=embedder,
                                    chunk_seconds=chunk_seconds, max_seconds=max_clip_seconds, wait=progress.wait)
    with ThreadPoolExecutor(max_workers=min(threads, len(clips)), thread_name_prefix="speakerlink-clip") as pool:
        futures = [pool.submit(analyse, clip, stage=functools.partial(progress.stage, clip.index)) for clip in clips]
        analyses = progress.gather(futures)
    check_cancelled()
    report("link", 1.0 - LINK_SHARE, -1, f"linking speakers across {len(clips)} clips")
    speakers = [s for a in analyses for s in a.speakers]
    links = link_speakers(speakers, request.link_threshold, embedder.calibration)
    result = assemble(clips, analyses, speakers, links)
    if request.language and transcriber is None:
        result.summary.warnings.append(f"language {errors.shorten(request.language)!r} was not used: "
                                       "only transcription takes a language, and this job was not transcribed")
    result.summary.link_threshold = request.link_threshold
    result.summary.engines.extend([transcriber.name, embedder.name] if transcriber else [segmenter.name, embedder.name])
    result.summary.processing_seconds = _ms(time.monotonic() - started)
    prints = global_voiceprints(speakers, links)
    matches = recognize(prints, list(voices), embedder.link_threshold, embedder.calibration)
    for speaker, match in zip(result.speakers, matches, strict=True):
        if match is not None:
            speaker.name, speaker.name_score = match.name, match.score
    return Diarized(result, {global_label(i): p for i, p in enumerate(prints)})


def global_label(index: int) -> str:
    """S1, S2, ... by first appearance."""
    return f"S{index + 1}"


class _Aborted(Exception):
    """Another clip of the job failed; this one stops at its next stage."""


class _JobProgress:
    """Job-wide progress from every clip's current stage, for clips analysed side by side.

    It also stops the other clips at their next stage when one fails or the job is cancelled.
    """

    def __init__(
        self, clips: list[ClipInput], stages: dict[str, float], report: Report, check_cancelled: Callable[[], None]
    ) -> None:
        total = sum(c.weight for c in clips) or 1.0
        self._stages = stages
        self._share = {c.index: (1.0 - LINK_SHARE) * c.weight / total for c in clips}
        self._offset = dict.fromkeys(self._share, 0.0)
        self._report, self._check = report, check_cancelled
        self._lock = threading.Lock()
        self._abort = threading.Event()

    def stage(self, clip_index: int, name: str, message: str, part: tuple[int, int] = (0, 1)) -> Hook:
        """Clip `clip_index` begins stage `name` (of its chunk part[0] out of part[1]). The hook
        returned moves the percent toward the next stage's start as the stage's batches complete,
        and stops the clip there when the job is cancelled."""
        self._checkpoint()
        starts = sorted(self._stages.values())
        begin = self._stages[name]
        end = next((s for s in starts if s > begin), 1.0)

        def hook(completed: int, total: int) -> None:
            self._checkpoint()
            if total > 0 and completed > 0:
                self._move(clip_index, name, (part[0] + begin + (end - begin) * min(completed / total, 1.0)) / part[1], message)

        self._move(clip_index, name, (part[0] + begin) / part[1], message)
        return hook

    def _move(self, clip_index: int, name: str, offset: float, message: str) -> None:
        with self._lock:  # reports leave in the order their percents were computed
            self._offset[clip_index] = max(self._offset[clip_index], offset)
            done = sum(self._share[i] * self._offset[i] for i in self._share)
            self._report(name, done, clip_index, message)

    def wait(self, seconds: float) -> None:
        """Sleep, but stop at once when the job is cancelled or another clip fails."""
        until = time.monotonic() + seconds
        while True:
            self._checkpoint()
            left = until - time.monotonic()
            if left <= 0:
                return
            self._abort.wait(min(left, WAIT_SLICE_S))

    def _checkpoint(self) -> None:
        if self._abort.is_set():
            raise _Aborted()
        self._check()

    def gather(self, futures: list[Future]) -> list[ClipAnalysis]:
        """Every clip's analysis in clip order, or the first real failure once all have stopped."""
        failure: BaseException | None = None
        for future in as_completed(futures):
            error = future.exception()
            if error is not None and not isinstance(error, _Aborted):
                failure = failure or error
                self._abort.set()
        if failure is not None:
            raise failure
        return [future.result() for future in futures]


def analyse_clip(
    clip: ClipInput,
    bounds: CountBounds,
    segmenter: Segmenter,
    embedder: Embedder,
    chunk_seconds: float,
    stage: Callable[..., Hook],
    max_seconds: float,
) -> ClipAnalysis:
    """Diarize one clip; a recording longer than chunk_seconds a chunk at a time (pipeline.chunks)."""
    info = audio.probe(clip.path, clip.index, clip.name)
    parts = max(1, math.ceil((info.declared_seconds or 0.0) / chunk_seconds))
    chunks: list[ChunkAnalysis] = []
    duration = 0.0
    stage("decode", f"decoding {clip.name}")
    # A chunk may hold fewer speakers than the recording: chunks get the count as a maximum only,
    # and the recording's count is met when they are joined.
    chunk_bounds = bounds if parts == 1 else CountBounds(max_speakers=bounds.max_speakers)
    with contextlib.closing(audio.stream(clip.path, clip.index, clip.name, chunk_seconds, info, max_seconds)) as pieces:
        for offset, wav in pieces:
            part = functools.partial(stage, part=(min(len(chunks), parts - 1), parts))
            end = offset + wav.size / SAMPLE_RATE
            where = f"{clip.name} ({offset:.0f}-{end:.0f} s)" if parts > 1 else clip.name
            chunks.append(analyse_chunk(wav, offset, where, chunk_bounds, segmenter, embedder, part))
            duration = end
    if len(chunks) == 1:
        only = chunks[0]
        return ClipAnalysis(duration, only.turns, [replace(s, clip_index=clip.index) for s in only.speakers], only.warnings)
    turns, speakers = join_chunks(clip.index, chunks, embedder.link_threshold, embedder.calibration, bounds)
    warnings = [w for c in chunks for w in c.warnings] + _count_warnings(clip.name, bounds, len(speakers))
    return ClipAnalysis(duration, turns, speakers, warnings)


def analyse_chunk(
    wav: np.ndarray,
    offset: float,
    where: str,
    bounds: CountBounds,
    segmenter: Segmenter,
    embedder: Embedder,
    stage: Callable[[str, str], Hook],
) -> ChunkAnalysis:
    """Diarize one stretch of audio; times come out shifted by offset."""
    hook = stage("segment", f"finding speech and overlap in {where}")
    segmentation = segmenter.segment(wav, STEP_S, hook)
    activity = binarize(segmentation)  # shape: (num_windows, num_frames, local_speakers)
    grid = frame_grid(segmentation)
    count = speaker_count(segmentation, grid)  # shape: (grid.size,)
    runs = single_speaker_runs(activity, grid, count)
    windows = run_windows(runs, grid, WINDOWS)
    if not windows and (count > 0).any():  # too little speech for a window: one voice of what there is
        windows = grid_runs(count > 0)
        runs = windows
    hook = stage("embed", f"embedding {len(windows)} windows of {where}")
    embeddings = embedder.embed(wav, sample_spans(windows, grid), hook)  # shape: (num_windows, dim)
    hook = stage("cluster", f"clustering {where}")
    clusters = cluster_windows(embeddings, bounds, ClusteringParams(embedder.cluster_threshold))
    frame_label = frame_labels(runs, centres(windows), clusters.labels, grid.size)
    assign = assign_by_frames(activity, grid, frame_label, len(clusters.centroids))
    slots = unassigned_slots(activity, grid, assign, SLOTS)
    centroids = clusters.centroids
    if slots:
        slot_embeddings = embedder.embed(wav, slot_spans(activity, grid, slots), hook)
        assign, centroids = attach(assign, slots, slot_embeddings, centroids, activity, grid, bounds,
                                   embedder.cluster_threshold, SLOTS)
    speaking = label_frames(frame_label, assign, activity, grid, count, len(centroids))
    heard = speaking.any(axis=0)  # a new speaker may lose every frame to the others' votes
    speaking, centroids = speaking[:, heard], centroids[heard]
    turns = to_turns(speaking, grid, offset, wav.size / SAMPLE_RATE, TURNS)
    speech = speech_seconds(turns, len(centroids))
    speakers = [LocalSpeaker(-1, i, centroid, float(speech[i])) for i, centroid in enumerate(centroids)]
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
    wait: Callable[[float], None],
    stage: Callable[[str, str], None],
    max_seconds: float,
) -> ClipAnalysis:
    try:
        utterances = transcriber.transcribe(clip.path, request, stage, wait)
    except errors.ServiceError as exc:
        raise exc.about_clip(clip.index, clip.name) from None
    found = len({u.speaker for u in utterances})
    stage("embed", f"embedding the voices of {found} speaker{'s' if found != 1 else ''} in {clip.name}")
    info = audio.probe(clip.path, clip.index, clip.name)
    with contextlib.closing(audio.stream(clip.path, clip.index, clip.name, chunk_seconds, info, max_seconds)) as pieces:
        speakers = transcribed_speakers(clip.index, pieces, info.declared_seconds or math.inf, utterances, embedder)
    return ClipAnalysis(speakers.duration, speakers.turns, speakers.speakers)


def _ms(seconds: float) -> float:
    """Times in a result are kept to the millisecond: finer is noise, and long decimals in JSON."""
    return round(seconds, 3)


def _covered(turns: list[Turn]) -> float:
    """Seconds in which anyone speaks: overlapped turns count once."""
    total, reach = 0.0, -math.inf
    for turn in sorted(turns, key=lambda t: t.start):
        total += max(0.0, turn.end - max(turn.start, reach))
        reach = max(reach, turn.end)
    return total


def assemble(
    clips: list[ClipInput], analyses: list[ClipAnalysis], speakers: list[LocalSpeaker], links: list
) -> pb.DiarizationResult:
    global_of = {(s.clip_index, s.local_index): link for s, link in zip(speakers, links, strict=True)}
    count = 1 + max((link.global_index for link in links), default=-1)
    labels = [global_label(i) for i in range(count)]
    result = pb.DiarizationResult()
    totals = np.zeros(count)
    occurs: list[list[int]] = [[] for _ in range(count)]
    for clip, analysis in zip(clips, analyses, strict=True):
        out = result.clips.add(index=clip.index, name=clip.name, duration_seconds=_ms(analysis.duration))
        for speaker in analysis.speakers:
            link = global_of[(clip.index, speaker.local_index)]
            out.speakers.add(
                local_label=f"L{speaker.local_index}",
                global_label=labels[link.global_index],
                confidence=link.confidence,
                speech_seconds=_ms(speaker.speech_seconds),
            )
            totals[link.global_index] += speaker.speech_seconds
            occurs[link.global_index].append(clip.index)
        for turn in analysis.turns:
            speaker = labels[global_of[(clip.index, turn.speaker)].global_index]
            segment = out.segments.add(
                start=_ms(turn.start), end=_ms(turn.end), speaker=speaker,
                local_speaker=f"L{turn.speaker}", text=turn.text,
            )
            for word in turn.words:
                segment.words.add(start=_ms(word.start), end=_ms(word.end), text=word.text,
                                  speaker=speaker, confidence=word.confidence)
        out.speech_seconds = _ms(_covered(analysis.turns))
    for i, label in enumerate(labels):
        result.speakers.add(label=label, speech_seconds=_ms(float(totals[i])), clip_indices=occurs[i])
    result.summary.warnings.extend(w for a in analyses for w in a.warnings)
    result.summary.clips = len(clips)
    result.summary.unique_speakers = count
    result.summary.audio_seconds = _ms(sum(a.duration for a in analyses))
    return result
