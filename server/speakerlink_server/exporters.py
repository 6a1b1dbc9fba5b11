"""A finished result rendered as JSON, CSV, plain text, RTTM, SRT or WebVTT.

The server renders exports so that every client (CLI, SDK, grpcurl) gets identical files.
Subtitles belong to one media file each, so SRT and VTT of a job with several clips come as
a zip holding one subtitle file per clip.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath

from google.protobuf import json_format
from speakerlink.text import is_unsafe, plural, printable
from speakerlink.v1 import speakerlink_pb2 as pb

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MAX_FILE_ID_CHARS = 100


def to_json(result: pb.DiarizationResult) -> str:
    return json_format.MessageToJson(
        result, preserving_proto_field_name=True, always_print_fields_with_no_presence=True, indent=2
    ) + "\n"


def to_csv(result: pb.DiarizationResult) -> str:
    """Cells that callers wrote (clip names, transcripts) cannot start a spreadsheet formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["clip", "clip_index", "start", "end", "duration", "speaker", "name", "name_score", "local_speaker",
                     "link_confidence", "text"])
    named = {s.label: s for s in result.speakers}
    for clip in result.clips:
        confidence = {link.local_label: link.confidence for link in clip.speakers}
        for seg in clip.segments:
            who = named.get(seg.speaker, pb.GlobalSpeaker())
            writer.writerow([
                _cell(printable(clip.name)), clip.index, f"{seg.start:.3f}", f"{seg.end:.3f}", f"{seg.end - seg.start:.3f}",
                seg.speaker, _cell(who.name), f"{who.name_score:.3f}" if who.name else "", seg.local_speaker,
                f"{confidence.get(seg.local_speaker, 0.0):.3f}", _cell(seg.text),
            ])
    return out.getvalue()


def _cell(text: str) -> str:
    """A leading =, +, -, @, tab or carriage return makes spreadsheets run a cell as a formula
    (=HYPERLINK(...)); a quote in front keeps it text (OWASP's advice for CSV injection)."""
    return f"'{text}" if text[:1] in FORMULA_STARTS else text


def to_text(result: pb.DiarizationResult) -> str:
    """Names that callers wrote are shown escaped (speakerlink.text)."""
    s = result.summary
    lines = [
        f"{plural(s.clips, 'clip')}, {plural(s.unique_speakers, 'speaker')}, "
        f"{s.audio_seconds:.1f} s of audio, processed in {s.processing_seconds:.1f} s ({', '.join(s.engines)})",
        "",
    ]
    names = {clip.index: printable(clip.name) for clip in result.clips}
    labels = [f"{sp.label} ({printable(sp.name)}, {sp.name_score:.2f})" if sp.name else sp.label for sp in result.speakers]
    width = max(map(len, labels), default=0)
    lines.append("Speakers:" if labels else "Speakers: none (no speech found)")
    for speaker, label in zip(result.speakers, labels, strict=True):
        where = ", ".join(names.get(i, str(i)) for i in speaker.clip_indices)
        lines.append(f"  {label:<{width}} {speaker.speech_seconds:7.1f} s  in {where}")
    who = display_names(result)
    for clip in result.clips:
        links = ", ".join(f"{link.local_label}->{link.global_label} ({link.confidence:.2f})" for link in clip.speakers)
        lines += ["", f"== {names[clip.index]}  ({clip.duration_seconds:.1f} s; {links or 'no speech'})"]
        for seg in clip.segments:
            text = f"  {seg.text}" if seg.text else ""
            lines.append(f"[{_clock(seg.start)} - {_clock(seg.end)}] {who.get(seg.speaker, seg.speaker)}{text}")
    return "\n".join(lines) + "\n"


def to_rttm(result: pb.DiarizationResult) -> str:
    """One RTTM for all clips: file id is the clip name without extension, speaker the enrolled
    name (spaces as _) or the global label."""
    lines = []
    who = {label: re.sub(r"\s+", "_", name) for label, name in display_names(result).items()}
    for clip, file_id in zip(result.clips, _clip_ids(result), strict=True):
        for seg in clip.segments:
            speaker = who.get(seg.speaker, seg.speaker)
            lines.append(
                f"SPEAKER {file_id} 1 {seg.start:.3f} {seg.end - seg.start:.3f} <NA> <NA> {speaker} <NA> <NA>"
            )
    return "\n".join(lines) + ("\n" if lines else "")


# A cue is at most two lines of 42 characters and 7 s on screen (common broadcast practice).
CUE_CHARS = 84
CUE_SECONDS = 7.0


def to_srt(clip: pb.ClipResult, names: dict[str, str]) -> str:
    blocks = [
        f"{n}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{names[speaker]}{': ' + text if text else ''}"
        for n, (start, end, speaker, text) in enumerate(_cues(clip), 1)
    ]
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def to_vtt(clip: pb.ClipResult, names: dict[str, str]) -> str:
    blocks = ["WEBVTT"] + [
        f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n<v {_vtt_escape(names[speaker])}>{_vtt_escape(text or names[speaker])}"
        for start, end, speaker, text in _cues(clip)
    ]
    return "\n\n".join(blocks) + "\n"


def _cues(clip: pb.ClipResult) -> Iterator[tuple[float, float, str, str]]:
    """(start, end, speaker, text) cues: a segment's words split into readable pieces, or the
    whole segment when it has no words (then the cue just names the speaker)."""
    for seg in clip.segments:
        if not seg.words:
            yield seg.start, seg.end, seg.speaker, seg.text
            continue
        piece: list[pb.Word] = []
        for word in seg.words:
            text = " ".join(w.text for w in [*piece, word])
            if piece and (len(text) > CUE_CHARS or word.end - piece[0].start > CUE_SECONDS):
                yield piece[0].start, piece[-1].end, seg.speaker, " ".join(w.text for w in piece)
                piece = []
            piece.append(word)
        yield piece[0].start, piece[-1].end, seg.speaker, " ".join(w.text for w in piece)


def display_names(result: pb.DiarizationResult) -> dict[str, str]:
    """Each speaker's enrolled name (escaped), or its label. A name that reads as another
    speaker's label (a voice enrolled as "S2") keeps its own label, so no two speakers look alike."""
    labels = {s.label for s in result.speakers}
    return {s.label: printable(s.name) if s.name and s.name not in labels - {s.label} else s.label
            for s in result.speakers}


def _timestamp(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}{separator}{millis % 1000:03d}"


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes):02d}:{rest:05.2f}"


def _clip_ids(result: pb.DiarizationResult) -> list[str]:
    """A safe file name per clip, for RTTM file ids and zip entries: the base name without
    extension; with it where two clips' agree; with the clip index too where those still do.
    Clip names come from callers, so directories, separators, control and bidirectional
    characters and leading dots are taken out: no zip entry can point outside its folder, nor
    read as another name."""
    bases = [_safe_name(PurePosixPath(clip.name.replace("\\", "/")).name) for clip in result.clips]
    stems = [_safe_name(PurePosixPath(base).stem) for base in bases]
    ids = [stem if stems.count(stem) == 1 else base for stem, base in zip(stems, bases, strict=True)]
    return [(i or "clip") if ids.count(i) == 1 else f"{i or 'clip'}-{clip.index}"
            for i, clip in zip(ids, result.clips, strict=True)]


def _safe_name(name: str) -> str:
    visible = "".join(" " if is_unsafe(char) else char for char in name)  # then taken out with the spaces
    return re.sub(r'[\s/\\:*?"<>|]+', "_", visible).lstrip(".")[:MAX_FILE_ID_CHARS]


Subtitles = Callable[[pb.ClipResult, dict[str, str]], str]

# format -> (whole-result renderer, content type, file extension)
EXPORTERS: dict[int, tuple[Callable[[pb.DiarizationResult], str], str, str]] = {
    pb.EXPORT_FORMAT_JSON: (to_json, "application/json", "json"),
    pb.EXPORT_FORMAT_CSV: (to_csv, "text/csv", "csv"),
    pb.EXPORT_FORMAT_TEXT: (to_text, "text/plain", "txt"),
    pb.EXPORT_FORMAT_RTTM: (to_rttm, "text/x-rttm", "rttm"),
}
# format -> (per-clip renderer, content type, file extension)
SUBTITLES: dict[int, tuple[Subtitles, str, str]] = {
    pb.EXPORT_FORMAT_SRT: (to_srt, "application/x-subrip", "srt"),
    pb.EXPORT_FORMAT_VTT: (to_vtt, "text/vtt", "vtt"),
}


def export(result: pb.DiarizationResult, fmt: int, clip_index: int | None = None) -> pb.ExportResponse:
    """The result, or only one clip of it, in a format of speakerlink.options.EXPORT_FORMATS."""
    if clip_index is not None:
        result = only_clip(result, clip_index)
    response = pb.ExportResponse(job_id=result.job_id, format=fmt)
    if fmt in EXPORTERS:
        render, response.content_type, extension = EXPORTERS[fmt]
        response.filename = f"speakerlink-{result.job_id}.{extension}"
        response.content = render(result).encode("utf-8")
        return response
    render_clip, content_type, extension = SUBTITLES[fmt]
    names = display_names(result)
    files = {f"{clip_id}.{extension}": render_clip(clip, names).encode("utf-8")
             for clip, clip_id in zip(result.clips, _clip_ids(result), strict=True)}
    if len(files) == 1:
        (response.filename, response.content), = files.items()
        response.content_type = content_type
        return response
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    response.filename, response.content_type = f"speakerlink-{result.job_id}-{extension}.zip", "application/zip"
    response.content = buffer.getvalue()
    return response


def only_clip(result: pb.DiarizationResult, clip_index: int) -> pb.DiarizationResult:
    """The result restricted to one clip: its segments, and the global speakers heard in it."""
    clip = next(c for c in result.clips if c.index == clip_index)
    out = pb.DiarizationResult(job_id=result.job_id, summary=result.summary)
    out.clips.append(clip)
    heard = {link.global_label for link in clip.speakers}
    for speaker in result.speakers:  # as heard in this clip, not across the job
        if speaker.label in heard:
            speech = sum(link.speech_seconds for link in clip.speakers if link.global_label == speaker.label)
            out.speakers.add(label=speaker.label, name=speaker.name, name_score=speaker.name_score,
                             speech_seconds=speech, clip_indices=[clip.index])
    out.summary.clips = 1
    out.summary.unique_speakers = len(heard)
    out.summary.audio_seconds = clip.duration_seconds
    return out
