"""Long recordings (F14): a recording longer than a chunk is analysed in chunks, and each
speaker keeps one label across all of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import make_config, start_server
from speakerlink import Client
from speakerlink.evaluation import hypothesis_of, read_rttm, score
from speakerlink_server.main import RunningServer
from speakerlink_server.pipeline import audio


@pytest.fixture(scope="module")
def chunking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(make_config(tmp_path_factory.mktemp("chunks"), chunk_seconds=30.0))
    yield running
    running.stop(grace=1.0)


@pytest.fixture(scope="module")
def long_recording(samples: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The three sample clips end to end (about 110 s, five people), and its reference RTTM."""
    out = tmp_path_factory.mktemp("long")
    reference = read_rttm(samples["reference.rttm"])
    pieces, lines, offset = [], [], 0.0
    for name in ("meeting.wav", "call.mp3", "interview.flac"):
        wav = audio.decode(samples[name], 0, name)
        pieces.append(wav)
        lines += [f"SPEAKER all 1 {start + offset:.3f} {end - start:.3f} <NA> <NA> {who} <NA> <NA>"
                  for start, end, who in reference[Path(name).stem]]
        offset += wav.size / audio.SAMPLE_RATE
    soundfile.write(out / "all.wav", np.concatenate(pieces), audio.SAMPLE_RATE, subtype="PCM_16")
    (out / "all.rttm").write_text("\n".join(lines) + "\n")
    return out / "all.wav", out / "all.rttm"


def test_speakers_keep_one_label_across_chunks(chunking_server: RunningServer, long_recording) -> None:
    path, rttm = long_recording
    with Client(chunking_server.config.address, timeout=120) as client:
        events = list(client.iter_diarize([path]))
    result = events[-1].result
    clip = result.clips[0]
    report = score(read_rttm(rttm), hypothesis_of(result), {"all": (0.0, clip.duration_seconds)})
    assert report.hyp_speakers == report.ref_speakers == 5
    assert report.global_der <= 0.05
    assert [s.local_label for s in clip.speakers] == [f"L{i}" for i in range(5)]
    # Four chunks went through every stage, inside a percent that never goes back.
    progress = [e.progress for e in events if e.HasField("progress")]
    assert [p.message for p in progress if p.stage == "cluster"] == [
        f"clustering all.wav ({a}-{b} s)" for a, b in ((0, 30), (30, 60), (60, 90), (90, 111))
    ]
    percents = [p.percent for p in progress]
    assert percents == sorted(percents)
    # A turn cut by a chunk boundary is one turn again.
    assert not any(a.end == b.start and a.speaker == b.speaker for a, b in zip(clip.segments, clip.segments[1:], strict=False))


def test_decoding_streams_in_chunks(long_recording) -> None:
    path, _ = long_recording
    whole = audio.decode(path, 0, "all.wav")
    chunks = list(audio.stream(path, 0, "all.wav", chunk_seconds=30.0))
    assert [offset for offset, _ in chunks] == [0.0, 30.0, 60.0, 90.0]
    assert all(c.size == 30 * audio.SAMPLE_RATE for _, c in chunks[:-1])
    assert np.array_equal(np.concatenate([c for _, c in chunks]), whole)


def test_a_speaker_count_holds_for_the_whole_recording(chunking_server: RunningServer, long_recording) -> None:
    """Each 30 s chunk holds two or three of the five; the count is the recording's, not each chunk's."""
    path, rttm = long_recording
    with Client(chunking_server.config.address, timeout=120) as client:
        result = client.diarize([path], num_speakers=5)
        fewer = client.diarize([path], max_speakers=4)
    report = score(read_rttm(rttm), hypothesis_of(result), {"all": (0.0, result.clips[0].duration_seconds)})
    assert report.hyp_speakers == 5 and report.global_der <= 0.05
    assert fewer.summary.unique_speakers == 4


def test_a_minimum_and_an_exact_count_hold_across_chunks(chunking_server: RunningServer, long_recording) -> None:
    """Chunks are clustered with the maximum only; the minimum and the exact count are met
    when the chunks are joined, as in a short clip."""
    path, _ = long_recording
    with Client(chunking_server.config.address, timeout=120) as client:
        at_least = client.diarize([path], min_speakers=6)
        exactly = client.diarize([path], num_speakers=6)
    assert at_least.summary.unique_speakers == exactly.summary.unique_speakers == 6
    assert not at_least.summary.warnings and not exactly.summary.warnings


def test_a_count_the_recording_cannot_hold_is_warned_about(chunking_server: RunningServer, long_recording) -> None:
    path, _ = long_recording
    with Client(chunking_server.config.address, timeout=120) as client:
        result = client.diarize([path], num_speakers=30)
    found = result.summary.unique_speakers
    assert 5 <= found < 30
    assert list(result.summary.warnings) == [
        f"all.wav: 30 speakers were asked for, but the audio holds speech enough to tell apart only {found}"
    ]
