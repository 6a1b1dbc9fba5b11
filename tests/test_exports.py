"""Exporters on a result built here: RTTM, CSV, text, subtitles, names, and hostile clip names."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink_server import errors
from speakerlink_server.exporters import export, to_csv, to_rttm, to_srt, to_text, to_vtt


@pytest.fixture()
def result() -> pb.DiarizationResult:
    r = pb.DiarizationResult(job_id="j1")
    r.speakers.add(label="S1", speech_seconds=3.0, clip_indices=[0, 1])
    r.speakers.add(label="S2", speech_seconds=1.0, clip_indices=[1])
    c0 = r.clips.add(index=0, name="my call.wav", duration_seconds=5.0)
    c0.speakers.add(local_label="L0", global_label="S1", confidence=0.9, speech_seconds=2.0)
    c0.segments.add(start=0.5, end=2.5, speaker="S1", local_speaker="L0")
    c1 = r.clips.add(index=1, name="b.mp3", duration_seconds=4.0)
    c1.speakers.add(local_label="L0", global_label="S2", confidence=0.8, speech_seconds=1.0)
    c1.speakers.add(local_label="L1", global_label="S1", confidence=0.95, speech_seconds=1.0)
    c1.segments.add(start=0.0, end=1.0, speaker="S2", local_speaker="L0")
    c1.segments.add(start=1.0, end=2.0, speaker="S1", local_speaker="L1")
    r.summary.clips, r.summary.unique_speakers = 2, 2
    return r


def test_rttm(result: pb.DiarizationResult) -> None:
    assert to_rttm(result).splitlines() == [
        "SPEAKER my_call 1 0.500 2.000 <NA> <NA> S1 <NA> <NA>",
        "SPEAKER b 1 0.000 1.000 <NA> <NA> S2 <NA> <NA>",
        "SPEAKER b 1 1.000 1.000 <NA> <NA> S1 <NA> <NA>",
    ]


def test_csv_and_text(result: pb.DiarizationResult) -> None:
    rows = to_csv(result).splitlines()
    assert rows[0].startswith("clip,clip_index,start,end,duration,speaker,name,name_score,local_speaker,link_confidence")
    assert rows[1] == "my call.wav,0,0.500,2.500,2.000,S1,,,L0,0.900,"
    text = to_text(result)
    assert "S1" in text and "== b.mp3" in text and "[00:01.00 - 00:02.00] S1" in text


def test_enrolled_names_replace_labels_in_exports(result: pb.DiarizationResult) -> None:
    named = pb.DiarizationResult()
    named.CopyFrom(result)
    named.speakers[0].name, named.speakers[0].name_score = "Ann Lee", 0.97
    assert "S1 (Ann Lee, 0.97)" in to_text(named) and "] Ann Lee" in to_text(named)
    assert " Ann_Lee <NA>" in to_rttm(named) and "S1,Ann Lee,0.970," in to_csv(named)
    named.speakers[0].name = "S2"  # a name that reads as another speaker's label keeps its own
    assert to_rttm(named).splitlines()[0].endswith("<NA> <NA> S1 <NA> <NA>")


def test_hostile_clip_names_make_safe_file_names_and_inert_csv_cells() -> None:
    r = pb.DiarizationResult(job_id="j2")
    r.speakers.add(label="S1", speech_seconds=1.0, clip_indices=list(range(5)))
    names = ["../../evil.wav", "/etc/cron.d/job.wav", "a\0b\nc.wav", "day1/meeting.wav", "day2/meeting.wav"]
    for index, name in enumerate(names):
        clip = r.clips.add(index=index, name=name, duration_seconds=2.0)
        clip.speakers.add(local_label="L0", global_label="S1", confidence=1.0, speech_seconds=1.0)
        clip.segments.add(start=0.0, end=1.0, speaker="S1", local_speaker="L0", text="=HYPERLINK(\"http://x\")")
    response = export(r, pb.EXPORT_FORMAT_SRT)
    entries = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert entries == ["evil.srt", "job.srt", "a_b_c.srt", "meeting.wav-3.srt", "meeting.wav-4.srt"]
    assert [line.split()[1] for line in to_rttm(r).splitlines()] == ["evil", "job", "a_b_c", "meeting.wav-3", "meeting.wav-4"]
    rows = list(csv.reader(io.StringIO(to_csv(r))))
    assert rows[1][0] == "../../evil.wav"  # a cell, not a path: kept as sent
    assert all(row[-1].startswith("'=") for row in rows[1:])
    r.clips[0].name = "@SUM(A1)"
    assert list(csv.reader(io.StringIO(to_csv(r))))[1][0] == "'@SUM(A1)"
    forged = errors.not_audio(0, "x.wav\n2026-01-01 INFO job accepted", "bad")
    assert "\n" not in str(forged) and "\n" not in forged.clip_name  # no forged log lines


def test_subtitles(result: pb.DiarizationResult) -> None:
    seg = result.clips[1].segments[1]
    seg.text = "hello there & welcome"
    for k, token in enumerate(seg.text.split()):
        seg.words.add(start=1.5 + k, end=2.0 + k, text=token, speaker=seg.speaker)
    names = {s.label: s.name or s.label for s in result.speakers}
    srt = to_srt(result.clips[1], names)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,000\nS2\n\n2\n00:00:01,500 --> 00:00:05,000\nS1: hello there")
    vtt = to_vtt(result.clips[1], names)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n<v S2>S2\n\n")
    assert "<v S1>hello there &amp; welcome" in vtt
    one = export(result, pb.EXPORT_FORMAT_SRT, clip_index=1)
    assert one.filename == "b.srt" and one.content.decode() == srt
    both = export(result, pb.EXPORT_FORMAT_VTT)
    assert both.content_type == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(both.content)).read("b.vtt").decode() == vtt


def test_long_turns_split_into_readable_cues() -> None:
    clip = pb.ClipResult(index=0, name="a.wav")
    seg = clip.segments.add(start=0.0, end=30.0, speaker="S1", text="word " * 60)
    for k in range(60):
        seg.words.add(start=0.5 * k, end=0.5 * k + 0.4, text="word", speaker="S1")
    cues = to_srt(clip, {"S1": "S1"}).split("\n\n")
    assert len(cues) >= 5 and all(len(c.splitlines()[2]) <= 84 + len("S1: ") for c in cues)


def test_one_clip_of_a_result(result: pb.DiarizationResult) -> None:
    text = export(result, pb.EXPORT_FORMAT_TEXT, clip_index=0).content.decode()
    assert "my call.wav" in text and "b.mp3" not in text and "S2" not in text
