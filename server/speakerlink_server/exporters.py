"""A finished result rendered as JSON, CSV, plain text or RTTM.

The server renders exports so that every client (CLI, SDK, grpcurl) gets identical files.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

from google.protobuf import json_format
from speakerlink.v1 import speakerlink_pb2 as pb


def to_json(result: pb.DiarizationResult) -> str:
    return json_format.MessageToJson(
        result, preserving_proto_field_name=True, always_print_fields_with_no_presence=True, indent=2
    ) + "\n"


def to_csv(result: pb.DiarizationResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["clip", "clip_index", "start", "end", "duration", "speaker", "local_speaker", "link_confidence", "text"])
    for clip in result.clips:
        confidence = {link.local_label: link.confidence for link in clip.speakers}
        for seg in clip.segments:
            writer.writerow([
                clip.name, clip.index, f"{seg.start:.3f}", f"{seg.end:.3f}", f"{seg.end - seg.start:.3f}",
                seg.speaker, seg.local_speaker, f"{confidence.get(seg.local_speaker, 0.0):.3f}", seg.text,
            ])
    return out.getvalue()


def to_text(result: pb.DiarizationResult) -> str:
    s = result.summary
    lines = [
        f"{s.clips} clip{'s' if s.clips != 1 else ''}, {s.unique_speakers} speaker{'s' if s.unique_speakers != 1 else ''}, "
        f"{s.audio_seconds:.1f} s of audio, processed in {s.processing_seconds:.1f} s ({', '.join(s.engines)})",
        "",
        "Speakers:",
    ]
    names = {clip.index: clip.name for clip in result.clips}
    for speaker in result.speakers:
        label = f"{speaker.label} ({speaker.name})" if speaker.name else speaker.label
        where = ", ".join(names.get(i, str(i)) for i in speaker.clip_indices)
        lines.append(f"  {label:<6} {speaker.speech_seconds:7.1f} s  in {where}")
    for clip in result.clips:
        links = ", ".join(f"{link.local_label}->{link.global_label} ({link.confidence:.2f})" for link in clip.speakers)
        lines += ["", f"== {clip.name}  ({clip.duration_seconds:.1f} s; {links or 'no speech'})"]
        for seg in clip.segments:
            text = f"  {seg.text}" if seg.text else ""
            lines.append(f"[{_clock(seg.start)} - {_clock(seg.end)}] {seg.speaker}{text}")
    return "\n".join(lines) + "\n"


def to_rttm(result: pb.DiarizationResult) -> str:
    """One RTTM for all clips: file id is the clip name without extension, speaker the global label."""
    stems = [Path(clip.name).stem for clip in result.clips]
    lines = []
    for clip, stem in zip(result.clips, stems, strict=True):
        file_id = re.sub(r"\s+", "_", stem if stems.count(stem) == 1 else clip.name)
        for seg in clip.segments:
            lines.append(
                f"SPEAKER {file_id} 1 {seg.start:.3f} {seg.end - seg.start:.3f} <NA> <NA> {seg.speaker} <NA> <NA>"
            )
    return "\n".join(lines) + ("\n" if lines else "")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes):02d}:{rest:05.2f}"


# format -> (renderer, content type, file extension)
EXPORTERS: dict[int, tuple[Callable[[pb.DiarizationResult], str], str, str]] = {
    pb.EXPORT_FORMAT_JSON: (to_json, "application/json", "json"),
    pb.EXPORT_FORMAT_CSV: (to_csv, "text/csv", "csv"),
    pb.EXPORT_FORMAT_TEXT: (to_text, "text/plain", "txt"),
    pb.EXPORT_FORMAT_RTTM: (to_rttm, "text/x-rttm", "rttm"),
}


def export(result: pb.DiarizationResult, fmt: int) -> pb.ExportResponse:
    render, content_type, extension = EXPORTERS[fmt]
    return pb.ExportResponse(
        job_id=result.job_id, format=fmt, content_type=content_type,
        filename=f"speakerlink-{result.job_id}.{extension}", content=render(result).encode("utf-8"),
    )
