"""AssemblyAI transcription (F5) through the real SDK, against AssemblyAI's API on loopback.

The fake API answers with utterances that match the project's own sample clips (their
reference RTTM and script), so linking is checked on real embeddings of those voices.
"""

from __future__ import annotations

import hashlib
import io
import logging
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sample_clips
from conftest import make_config, start_server
from fake_assemblyai import FakeAssemblyAI, labelled_utterances
from speakerlink import Client
from speakerlink.errors import FailedPreconditionError
from speakerlink.events import is_terminal
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink_server import errors
from speakerlink_server.engines.assemblyai import AssemblyAiTranscriber
from speakerlink_server.engines.base import TranscriptionRequest, noop_hook
from speakerlink_server.engines.retry import RetryPolicy
from speakerlink_server.main import RunningServer

KEY = "test-key-8c1f0e55d2a94b7f"
TRANSCRIBE_STAGES = ["transcribe-uploading", "transcribe-queued", "transcribe-processing", "transcribe-completed"]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAssemblyAI]:
    api = FakeAssemblyAI(KEY).start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def aai_server(fake: FakeAssemblyAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    config = make_config(
        tmp_path_factory.mktemp("aai-server"), assemblyai_api_key=KEY, assemblyai_base_url=fake.url,
        assemblyai_poll_seconds=0.05, assemblyai_concurrency=2, max_clips=4,
        chunk_seconds=30.0,  # the sample clips (35-38 s) are decoded for their voiceprints in two chunks
    )
    running = start_server(config)
    yield running
    running.stop(grace=1.0)


@pytest.fixture()
def aai(aai_server: RunningServer, fake: FakeAssemblyAI, samples: dict[str, Path]) -> Iterator[Client]:
    """A client of the transcribing server; the fake knows the sample clips' utterances."""
    fake.reset()
    for name, utterances in reference_utterances(samples).items():
        fake.utterances[hashlib.sha256(samples[name].read_bytes()).hexdigest()] = utterances
    with Client(aai_server.config.address, timeout=60) as c:
        yield c


def reference_utterances(samples: dict[str, Path]) -> dict[str, list[dict]]:
    """Per sample clip, its turns as AssemblyAI would label them: A, B, ... by first appearance."""
    turns: dict[str, list[tuple[float, float, str]]] = {}
    for line in samples["reference.rttm"].read_text().splitlines():
        f = line.split()
        turns.setdefault(f[1], []).append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    out = {}
    for name, script in sample_clips.SCRIPTS.items():
        rows = turns[Path(name).stem]
        assert [who for _, _, who in rows] == [who for who, _ in script]
        out[name] = labelled_utterances(rows, [text for _, text in script])
    return out


def people(result: pb.DiarizationResult, samples: dict[str, Path]) -> dict[str, set[str]]:
    """Reference person -> the global labels the result gave their turns."""
    found: dict[str, set[str]] = {}
    for clip in result.clips:
        script = sample_clips.SCRIPTS[clip.name]
        assert len(clip.segments) == len(script)
        for segment, (who, text) in zip(clip.segments, script, strict=True):
            assert segment.text == text
            found.setdefault(who, set()).add(segment.speaker)
    return found


def test_info_says_whether_transcription_is_available(aai: Client, client: Client) -> None:
    engine = next(e for e in aai.info().engines if e.kind == "transcriber")
    assert engine.name == "assemblyai" and engine.available and engine.active
    assert KEY not in engine.reason
    engine = next(e for e in client.info().engines if e.kind == "transcriber")
    assert not engine.available and "ASSEMBLYAI_API_KEY" in engine.reason


def test_transcribes_and_links_speakers_across_clips(
    aai: Client, fake: FakeAssemblyAI, samples: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clips = [samples["meeting.wav"], samples["call.mp3"], samples["interview.flac"]]
    events = list(aai.iter_diarize(clips))
    result = events[-1].result
    who = people(result, samples)
    assert all(len(labels) == 1 for labels in who.values()), who  # one label per person, in every clip
    assert len({next(iter(labels)) for labels in who.values()}) == 5  # and five different people
    assert result.summary.unique_speakers == 5 and list(result.summary.engines) == ["assemblyai", "campplus"]
    for clip in result.clips:
        for segment in clip.segments:
            assert segment.words and {w.speaker for w in segment.words} == {segment.speaker}
            assert " ".join(w.text for w in segment.words) == segment.text
            assert segment.start <= segment.words[0].start and segment.words[-1].end <= segment.end + 1e-3
    # Each clip went through AssemblyAI's stages in order, inside a percent that never goes back.
    progress = [e.progress for e in events if e.HasField("progress")]
    percents = [p.percent for p in progress]
    assert percents == sorted(percents) and percents[-1] == 100.0
    for index in range(3):
        stages = [p.stage for p in progress if p.clip_index == index and p.stage.startswith("transcribe-")]
        assert stages == TRANSCRIBE_STAGES
    requests = fake.transcript_requests()
    assert len(requests) == 3 and all(r["speaker_labels"] is True for r in requests)
    assert fake.undeleted() == []  # each transcript was deleted at AssemblyAI once read
    # The key went to AssemblyAI and nowhere else.
    assert all(r.headers["authorization"] == KEY for r in fake.requests)
    assert KEY not in caplog.text and KEY.encode() not in result.SerializeToString()


def test_exports_carry_the_text(aai: Client, samples: dict[str, Path]) -> None:
    result = aai.diarize([samples["meeting.wav"], samples["call.mp3"]])
    alice = next(s.speaker for s in result.clips[0].segments)
    srt = aai.export(result.job_id, "srt", clip_index=0).content.decode()
    first = sample_clips.SCRIPTS["meeting.wav"][0][1]
    assert srt.startswith("1\n00:00:00,") and f"{alice}: {first}" in srt
    vtt = aai.export(result.job_id, "vtt", clip_index=0).content.decode()
    assert vtt.startswith("WEBVTT\n\n") and f"<v {alice}>{first}" in vtt
    bundle = aai.export(result.job_id, "srt")
    assert bundle.content_type == "application/zip"
    assert sorted(zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()) == ["call.srt", "meeting.srt"]
    csv_text = aai.export(result.job_id, "csv").content.decode()
    assert f",{alice},,,L0," in csv_text and first.replace(",", "") in csv_text.replace('"', "").replace(",", "")
    assert f"{alice}  {first}" in aai.export(result.job_id, "text").content.decode()


def test_speaker_counts_reach_assemblyai(aai: Client, fake: FakeAssemblyAI, samples: dict[str, Path]) -> None:
    aai.diarize([samples["meeting.wav"]], num_speakers=3, language="en_us")
    aai.diarize([samples["call.mp3"]], min_speakers=2, max_speakers=4)
    exact, bounded = fake.transcript_requests()
    assert exact["speakers_expected"] == 3 and exact["language_code"] == "en_us" and "speaker_options" not in exact
    assert bounded["speaker_options"] == {"min_speakers_expected": 2, "max_speakers_expected": 4}


def test_transcription_can_be_turned_off_per_request(aai: Client, fake: FakeAssemblyAI, samples: dict[str, Path]) -> None:
    result = aai.diarize([samples["call.mp3"]], transcribe=False)
    assert not fake.requests
    assert list(result.summary.engines) == ["segmentation-3.0", "campplus"] and not any(s.text for s in result.clips[0].segments)


def test_transcription_needs_a_transcriber(client: Client, samples: dict[str, Path]) -> None:
    with pytest.raises(FailedPreconditionError) as info:
        client.diarize([samples["call.mp3"]], transcribe=True)
    assert info.value.code == "NO_TRANSCRIBER"


def test_rate_limits_are_retried_after_the_time_asked(aai: Client, fake: FakeAssemblyAI, samples: dict[str, Path]) -> None:
    fake.fail("POST /v2/upload", 429, times=2, headers={"Retry-After": "1"})
    result = aai.diarize([samples["call.mp3"]])
    assert result.clips[0].segments[0].text
    uploads = fake.seen("POST /v2/upload")
    assert [r.status for r in uploads] == [429, 429, 200]
    assert all(b.at - a.at >= 0.95 for a, b in zip(uploads, uploads[1:], strict=False))


def test_server_errors_are_retried(aai: Client, fake: FakeAssemblyAI, samples: dict[str, Path]) -> None:
    fake.fail("POST /v2/transcript", 503, times=1)
    fake.fail("GET /v2/transcript", 500, times=2)
    result = aai.diarize([samples["call.mp3"]])
    assert result.clips[0].segments[0].text
    assert [r.status for r in fake.seen("POST /v2/transcript")] == [503, 200]
    assert [r.status for r in fake.seen("GET /v2/transcript/")][:2] == [500, 500]


def test_a_failed_transcript_names_the_clip(aai: Client, fake: FakeAssemblyAI, samples: dict[str, Path]) -> None:
    fake.transcript_error = "Transcoding failed. File does not appear to contain audio."
    events = list(aai.iter_diarize([samples["call.mp3"]], transcribe=True))
    error = events[-1].error
    assert error.code == "TRANSCRIPTION_FAILED" and error.grpc_code == 3  # INVALID_ARGUMENT
    assert error.clip_index == 0 and error.clip_name == "call.mp3"
    assert "does not appear to contain audio" in error.message and error.troubleshooting and error.recovery
    assert fake.undeleted() == []


def test_cancelling_stops_polling(aai: Client, fake: FakeAssemblyAI, samples: dict[str, Path]) -> None:
    fake.polls_to_finish = 10**6  # AssemblyAI never finishes
    events = aai.iter_diarize([samples["call.mp3"]])
    job_id = next(events).job_id
    next(e for e in events if e.HasField("progress") and e.progress.stage == "transcribe-processing")
    aai.cancel(job_id)
    terminal = next(e for e in events if is_terminal(e))
    assert terminal.HasField("cancelled")
    polls = len(fake.seen("GET /v2/transcript/"))
    time.sleep(0.5)  # ten poll intervals
    assert len(fake.seen("GET /v2/transcript/")) == polls


def test_clips_are_transcribed_concurrently_up_to_the_bound(
    aai: Client, fake: FakeAssemblyAI, samples: dict[str, Path]
) -> None:
    fake.polls_to_finish = 8
    aai.diarize([samples["meeting.wav"], samples["call.mp3"], samples["interview.flac"]])
    assert fake.most_in_flight() == 2  # the server's --assemblyai-concurrency


# ---------------------------------------------------------------- the engine on its own


def transcriber(fake: FakeAssemblyAI, key: str = KEY, keep_transcripts: bool = False) -> AssemblyAiTranscriber:
    quick = RetryPolicy(attempts=4, base_seconds=0.01, cap_seconds=0.05, total_seconds=5.0)
    return AssemblyAiTranscriber(key, fake.url, poll_seconds=0.01, retry=quick, keep_transcripts=keep_transcripts)


def run(engine: AssemblyAiTranscriber, path: Path) -> list:
    return engine.transcribe(path, TranscriptionRequest(), noop_hook, time.sleep)


def test_persistent_server_errors_give_up_after_the_bounded_attempts(fake: FakeAssemblyAI, samples: dict[str, Path]) -> None:
    fake.reset()
    fake.fail("POST /v2/upload", 500, times=10)
    with pytest.raises(errors.ServiceError) as info:
        run(transcriber(fake), samples["call.mp3"])
    assert info.value.code == "TRANSCRIBER_UNAVAILABLE" and len(fake.seen("POST /v2/upload")) == 4


def test_persistent_rate_limits_say_so(fake: FakeAssemblyAI, samples: dict[str, Path]) -> None:
    fake.reset()
    fake.fail("POST /v2/upload", 429, times=10)
    with pytest.raises(errors.ServiceError) as info:
        run(transcriber(fake), samples["call.mp3"])
    assert info.value.code == "TRANSCRIBER_RATE_LIMITED" and info.value.status.name == "RESOURCE_EXHAUSTED"


def test_a_wrong_key_is_not_retried_and_not_shown(fake: FakeAssemblyAI, samples: dict[str, Path]) -> None:
    fake.reset()
    wrong = "wrong-key-0123456789"
    with pytest.raises(errors.ServiceError) as info:
        run(transcriber(fake, wrong), samples["call.mp3"])
    assert info.value.code == "TRANSCRIBER_AUTH_FAILED" and len(fake.requests) == 1
    assert wrong not in str(info.value) and wrong not in repr(info.value.detail())


def test_network_errors_are_retried_then_reported(samples: dict[str, Path]) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: connections are refused
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    engine = AssemblyAiTranscriber(KEY, url, retry=RetryPolicy(attempts=3, base_seconds=0.01, total_seconds=5.0))
    waits: list[float] = []
    lock = threading.Lock()

    def wait(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    with pytest.raises(errors.ServiceError) as info:
        engine.transcribe(samples["call.mp3"], TranscriptionRequest(), noop_hook, wait)
    assert info.value.code == "TRANSCRIBER_UNAVAILABLE" and len(waits) == 2


def test_a_transcript_that_cannot_be_deleted_still_gives_its_words(
    fake: FakeAssemblyAI, samples: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    fake.reset()
    fake.utterances[hashlib.sha256(samples["call.mp3"].read_bytes()).hexdigest()] = reference_utterances(samples)["call.mp3"]
    fake.fail("DELETE /v2/transcript", 503, times=10)
    utterances = run(transcriber(fake), samples["call.mp3"])
    assert utterances and utterances[0].words
    assert len(fake.seen("DELETE /v2/transcript")) == 4 and len(fake.undeleted()) == 1
    assert f"could not delete transcript {fake.undeleted()[0]}" in caplog.text


def test_transcripts_can_be_kept_at_assemblyai(fake: FakeAssemblyAI, samples: dict[str, Path]) -> None:
    fake.reset()
    run(transcriber(fake, keep_transcripts=True), samples["call.mp3"])
    assert not fake.seen("DELETE /v2/transcript") and len(fake.undeleted()) == 1


def test_a_create_whose_answer_was_lost_is_not_billed_twice(fake: FakeAssemblyAI, samples: dict[str, Path]) -> None:
    fake.reset()
    fake.lost_create_answers = 1  # AssemblyAI starts the transcript, but the answer is a 502
    run(transcriber(fake), samples["call.mp3"])
    assert [r.status for r in fake.seen("POST /v2/transcript")] == [502]  # the retry adopted it
    assert len(fake.transcript_requests()) == 1 and fake.undeleted() == []


def test_a_create_that_did_not_happen_is_made_again(fake: FakeAssemblyAI, samples: dict[str, Path]) -> None:
    fake.reset()
    fake.fail("POST /v2/transcript", 503, times=1)
    fake.fail("LIST /v2/transcript", 500, times=1)  # the look for an earlier transcript is retried too
    run(transcriber(fake), samples["call.mp3"])
    assert [r.status for r in fake.seen("POST /v2/transcript")] == [503, 200]
    assert [r.status for r in fake.seen("GET /v2/transcript?")] == [500, 200]
    assert len(fake.transcript_requests()) == 1 and fake.undeleted() == []
