"""The result message from every clip's analysis and the cross-clip links: the one module of
the pipeline that speaks protobuf. Global labels are S1, S2, ... by first appearance."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server.params import PipelineParams
from speakerlink_server.pipeline.clip import ClipAnalysis, ClipInput
from speakerlink_server.pipeline.linking import Link, LocalSpeaker, Voiceprint
from speakerlink_server.pipeline.recognize import Match
from speakerlink_server.pipeline.request import JobRequest
from speakerlink_server.pipeline.segments import Turn


@dataclass(frozen=True)
class Diarized:
    result: pb.DiarizationResult
    voiceprints: dict[str, Voiceprint]  # each global speaker's, by label: what enrolling them takes


@dataclass(frozen=True)
class Summary:
    """What the job used and met beyond the clips' own analyses."""

    request: JobRequest
    params: PipelineParams  # as used: linking.threshold is the request's
    engines: list[str]
    warnings: list[str]  # after the clips' own
    processing_seconds: float


def global_label(index: int) -> str:
    """S1, S2, ... by first appearance."""
    return f"S{index + 1}"


def assemble(
    clips: list[ClipInput], analyses: list[ClipAnalysis], speakers: list[LocalSpeaker], links: list[Link],
    prints: list[Voiceprint], matches: list[Match | None], summary: Summary,
) -> Diarized:
    """The result, with speakers named where `matches` (by global index) found an enrolled voice."""
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
    for speaker, match in zip(result.speakers, matches, strict=True):
        if match is not None:
            speaker.name, speaker.name_score = match.name, match.score
    result.summary.warnings.extend([w for a in analyses for w in a.warnings] + summary.warnings)
    result.summary.clips = len(clips)
    result.summary.unique_speakers = count
    result.summary.audio_seconds = _ms(sum(a.duration for a in analyses))
    result.summary.link_threshold = summary.request.link_threshold
    result.summary.engines.extend(summary.engines)
    result.summary.processing_seconds = _ms(summary.processing_seconds)
    result.provenance.CopyFrom(provenance(summary.request, summary.params))
    return Diarized(result, {global_label(i): p for i, p in enumerate(prints)})


def provenance(request: JobRequest, params: PipelineParams) -> pb.Provenance:
    """The resolved request and every parameter, as faster-whisper's TranscriptionInfo records its options."""
    out = pb.Provenance(request=pb.ResolvedRequest(
        engine=request.engine, transcriber=request.transcriber, recognize=request.recognize,
        link_threshold=request.link_threshold, min_speakers=request.speakers.min_speakers,
        max_speakers=request.speakers.max_speakers, language=request.language,
    ))
    out.parameters.update(dataclasses.asdict(params))
    return out


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
