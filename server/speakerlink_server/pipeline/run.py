"""One job's clips through every stage, reporting progress and honouring cancellation.

Per clip: decode -> speech regions (VAD) -> windows -> embeddings -> clustering into local
speakers. Then all clips' local speakers are linked into global speakers, and the result
message is assembled with global labels S1, S2, ... by first appearance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server.engines.base import Embedder, VoiceActivityDetector
from speakerlink_server.pipeline import audio
from speakerlink_server.pipeline.clustering import CountBounds, centroids, cluster_windows
from speakerlink_server.pipeline.linking import LocalSpeaker, link_speakers
from speakerlink_server.pipeline.segments import label_regions
from speakerlink_server.pipeline.windows import speech_windows, window_centers

# Share of a clip's work per stage, for the progress percent; linking gets LINK_SHARE of the job.
STAGE_SHARES = {"decode": 0.10, "vad": 0.20, "embed": 0.55, "cluster": 0.15}
LINK_SHARE = 0.05

Report = Callable[[str, float, int, str], None]
"""report(stage, fraction of the whole job done, clip index or -1, message)."""


@dataclass(frozen=True)
class ClipInput:
    index: int
    name: str
    path: Path
    weight: float  # relative amount of work, e.g. file size


@dataclass(frozen=True)
class ClipAnalysis:
    duration: float
    segments: list[tuple[float, float, int]]
    speakers: list[LocalSpeaker]


def run_pipeline(
    clips: list[ClipInput],
    options: pb.DiarizeOptions,
    vad: VoiceActivityDetector,
    embedder: Embedder,
    report: Report,
    check_cancelled: Callable[[], None],
) -> pb.DiarizationResult:
    started = time.monotonic()
    bounds = CountBounds(options.speakers.exact, options.speakers.min, options.speakers.max)
    total_weight = sum(c.weight for c in clips) or 1.0
    done = 0.0
    analyses = []
    for clip in clips:
        share = (1.0 - LINK_SHARE) * clip.weight / total_weight
        stages = _ClipStages(report, check_cancelled, clip.index, done, share)
        analyses.append(analyse_clip(clip, bounds, vad, embedder, stages))
        done += share
    check_cancelled()
    report("link", done, -1, f"linking speakers across {len(clips)} clips")
    threshold = options.link_threshold if options.HasField("link_threshold") else embedder.link_threshold
    speakers = [s for a in analyses for s in a.speakers]
    links = link_speakers(speakers, threshold)
    result = assemble(clips, analyses, speakers, links)
    result.summary.link_threshold = threshold
    result.summary.engines.extend([vad.name, embedder.name])
    result.summary.processing_seconds = time.monotonic() - started
    return result


class _ClipStages:
    """Turns one clip's stage names into job-wide progress, checking for cancellation first."""

    def __init__(self, report: Report, check_cancelled: Callable[[], None], clip_index: int, start: float, share: float) -> None:
        self._report, self._check = report, check_cancelled
        self._clip, self._start, self._share = clip_index, start, share
        self._offset = 0.0

    def __call__(self, name: str, message: str) -> None:
        self._check()
        self._report(name, self._start + self._share * self._offset, self._clip, message)
        self._offset += STAGE_SHARES[name]


def analyse_clip(
    clip: ClipInput,
    bounds: CountBounds,
    vad: VoiceActivityDetector,
    embedder: Embedder,
    stage: Callable[[str, str], None],
) -> ClipAnalysis:
    stage("decode", f"decoding {clip.name}")
    wav = audio.decode(clip.path, clip.index, clip.name)
    duration = wav.size / audio.SAMPLE_RATE
    stage("vad", f"finding speech in {clip.name} ({duration:.1f} s)")
    regions = vad.speech_regions(wav)
    windows = speech_windows(regions, embedder.window_seconds, embedder.hop_seconds, embedder.min_window_seconds)
    stage("embed", f"embedding {len(windows)} windows of {clip.name}")
    embeddings = embedder.embed(wav, windows)
    stage("cluster", f"clustering {clip.name}")
    labels = cluster_windows(embeddings, bounds, embedder.cluster_threshold)
    segments = label_regions(regions, window_centers(windows), labels)
    speech = np.zeros(int(labels.max()) + 1 if labels.size else 0)
    for start, end, who in segments:
        speech[who] += end - start
    speakers = [
        LocalSpeaker(clip.index, i, centroid, float(speech[i]))
        for i, centroid in enumerate(centroids(embeddings, labels))
    ]
    return ClipAnalysis(duration, segments, speakers)


def assemble(
    clips: list[ClipInput], analyses: list[ClipAnalysis], speakers: list[LocalSpeaker], links: list
) -> pb.DiarizationResult:
    global_of = {(s.clip_index, s.local_index): link for s, link in zip(speakers, links, strict=True)}
    count = 1 + max((link.global_index for link in links), default=-1)
    labels = [f"S{i + 1}" for i in range(count)]
    result = pb.DiarizationResult()
    totals = np.zeros(count)
    occurs: list[list[int]] = [[] for _ in range(count)]
    for clip, analysis in zip(clips, analyses, strict=True):
        out = result.clips.add(index=clip.index, name=clip.name, duration_seconds=analysis.duration)
        for speaker in analysis.speakers:
            link = global_of[(clip.index, speaker.local_index)]
            out.speakers.add(
                local_label=f"L{speaker.local_index}",
                global_label=labels[link.global_index],
                confidence=link.confidence,
                speech_seconds=speaker.speech_seconds,
            )
            totals[link.global_index] += speaker.speech_seconds
            occurs[link.global_index].append(clip.index)
        for start, end, who in analysis.segments:
            out.segments.add(
                start=round(start, 3), end=round(end, 3),
                speaker=labels[global_of[(clip.index, who)].global_index], local_speaker=f"L{who}",
            )
        out.speech_seconds = sum(end - start for start, end, _ in analysis.segments)
    for i, label in enumerate(labels):
        result.speakers.add(label=label, speech_seconds=float(totals[i]), clip_indices=occurs[i])
    result.summary.clips = len(clips)
    result.summary.unique_speakers = count
    result.summary.audio_seconds = sum(a.duration for a in analyses)
    return result
