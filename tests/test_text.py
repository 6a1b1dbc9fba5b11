"""How names and counts read: the text helper and the plain-text export built on it."""

from __future__ import annotations

from speakerlink.text import plural, printable
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink_server.exporters import to_text


def test_unsafe_characters_are_escaped_and_the_rest_kept() -> None:
    assert printable("a\x1b[2Jb\u202ec\u2066d\ne\u200df") == "a\\x1b[2Jb\\u202ec\\u2066d\\ne\\u200df"
    assert printable("Zoë 张伟 naïve.wav") == "Zoë 张伟 naïve.wav"
    assert [plural(n, "clip") for n in (0, 1, 2)] == ["0 clips", "1 clip", "2 clips"]


def test_the_speakers_table_lines_up_with_names_shown() -> None:
    result = pb.DiarizationResult(job_id="j")
    result.clips.add(index=0, name="a.wav", duration_seconds=60)
    result.speakers.add(label="S1", name="Ann Lee", name_score=0.97, speech_seconds=12.5, clip_indices=[0])
    result.speakers.add(label="S2", speech_seconds=3.0, clip_indices=[0])
    rows = to_text(result).split("Speakers:\n")[1].split("\n\n")[0].splitlines()
    assert len(rows) == 2 and len({row.index(" s  in ") for row in rows}) == 1, rows


def test_a_silent_result_says_so_under_no_empty_heading() -> None:
    result = pb.DiarizationResult(job_id="j")
    result.clips.add(index=0, name="quiet.wav", duration_seconds=8)
    result.summary.clips = 1
    text = to_text(result)
    assert text.startswith("1 clip, 0 speakers") and "Speakers: none (no speech found)" in text
    assert "Speakers:\n" not in text
