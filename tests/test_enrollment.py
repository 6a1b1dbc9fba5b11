"""The voice library (F13): enroll, list, rename, delete, per tenant, through the real server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import make_config, start_server
from speakerlink import AlreadyExistsError, Client, InvalidInputError, NotFoundError
from speakerlink.cli import main as cli
from speakerlink_server.main import RunningServer


@pytest.fixture()
def library(tmp_path: Path) -> RunningServer:
    running = start_server(make_config(tmp_path))
    yield running
    running.stop(grace=0)


def test_enroll_list_add_rename_and_delete(library: RunningServer, voices: dict[str, Path]) -> None:
    with Client(library.config.address) as client:
        alice = client.enroll("Alice", [voices["alice"]])
        assert (alice.name, alice.enrollments) == ("Alice", 1) and alice.speech_seconds > 8
        assert alice.engines == ["campplus"]
        more = client.enroll("Alice", [voices["alice"]])  # more audio for the same name
        assert more.enrollments == 2 and more.speech_seconds == pytest.approx(2 * alice.speech_seconds)
        client.enroll("Bob", [voices["bob"]])
        assert [v.name for v in client.list_speakers()] == ["Alice", "Bob"]
        with pytest.raises(AlreadyExistsError) as taken:
            client.rename_speaker("Alice", "Bob")
        assert taken.value.code == "VOICE_EXISTS"
        assert client.rename_speaker("Alice", "Alice Smith").enrollments == 2
        assert client.delete_speaker("Bob")
        with pytest.raises(NotFoundError) as gone:
            client.delete_speaker("Bob")
        assert gone.value.code == "VOICE_NOT_FOUND"
        assert [v.name for v in client.list_speakers()] == ["Alice Smith"]
    assert list((library.config.jobs_dir).iterdir()) == []  # the enrollment audio is gone


def test_enrollment_audio_must_hold_one_voice_with_enough_speech(library: RunningServer, voices: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    with Client(library.config.address) as client:
        for audio, code in (("silence", "NO_SPEECH"), ("short", "TOO_LITTLE_SPEECH"), ("both", "SEVERAL_VOICES")):
            with pytest.raises(InvalidInputError) as caught:
                client.enroll("Alice", [voices[audio]])
            assert caught.value.code == code, audio
        long = tmp_path / "ten-minutes.wav"
        sf.write(long, np.zeros(8000 * 601, dtype=np.float32), 8000, subtype="PCM_U8")
        with pytest.raises(InvalidInputError) as too_long:
            client.enroll("Alice", [long])
        assert too_long.value.code == "ENROLLMENT_TOO_LONG"
        for name in ("", " Alice", "A\nlice", "x" * 101):
            with pytest.raises(InvalidInputError) as bad_name:
                client.enroll(name, [voices["alice"]])
            assert bad_name.value.code == "INVALID_VOICE_NAME"
        assert client.list_speakers() == []


def test_enroll_a_speaker_of_a_finished_job(library: RunningServer, voices: dict[str, Path], samples) -> None:
    with Client(library.config.address) as client:
        result = client.diarize([samples["call.mp3"]])
        speaker = max(result.speakers, key=lambda s: s.speech_seconds)
        voice = client.enroll_from_job("Dave", result.job_id, speaker.label)
        assert voice.speech_seconds == pytest.approx(speaker.speech_seconds, abs=0.01)
        with pytest.raises(NotFoundError) as missing:
            client.enroll_from_job("Dave", result.job_id, "S99")
        assert missing.value.code == "SPEAKER_NOT_FOUND" and speaker.label in missing.value.troubleshooting[0]
        client.delete(result.job_id)
        with pytest.raises(NotFoundError):  # a deleted job's speakers go with it
            client.enroll_from_job("Dave", result.job_id, speaker.label)
        assert [v.name for v in client.list_speakers()] == ["Dave"]


def test_the_library_survives_a_restart(tmp_path: Path, voices: dict[str, Path]) -> None:
    first = start_server(make_config(tmp_path))
    with Client(first.config.address) as client:
        enrolled = client.enroll("Alice", [voices["alice"]])
    first.stop(grace=0)
    second = start_server(make_config(tmp_path))
    try:
        with Client(second.config.address) as client:
            assert list(client.list_speakers()) == [enrolled]
    finally:
        second.stop(grace=0)


def test_the_cli_manages_the_library(library: RunningServer, voices: dict[str, Path], capsys) -> None:
    server = ["--server", library.config.address]
    assert cli(["speakers", "enroll", "Alice", str(voices["alice"]), *server]) == 0
    assert cli(["speakers", "list", *server]) == 0
    assert cli(["speakers", "rename", "Alice", "Alice Smith", *server]) == 0
    assert cli(["speakers", "delete", "Alice Smith", *server]) == 0
    out = capsys.readouterr().out
    assert "Alice: " in out and "enrolled once (campplus)" in out and "Alice Smith: deleted" in out
    assert cli(["speakers", "enroll", "Alice", "--from-job", "0" * 32, *server]) == 2  # no --speaker
    assert cli(["speakers", "delete", "Nobody", *server]) == 1
    assert "VOICE_NOT_FOUND" in capsys.readouterr().err


def test_an_enrolled_voice_is_named_in_the_result_and_every_export(library: RunningServer, voices: dict[str, Path],
                                                                     samples) -> None:
    with Client(library.config.address) as client:
        client.enroll("Alice Smith", [voices["alice"]])
        client.enroll("Alice again", [voices["alice"]])  # one person under two names: only one may be given
        result = client.diarize([samples["meeting.wav"], samples["interview.flac"]])
        named = {s.label: (s.name, s.name_score) for s in result.speakers if s.name}
        assert len(named) == 1, named  # alice; bob, carol and dave are not enrolled
        (label, (name, score)), = named.items()
        assert name in ("Alice Smith", "Alice again") and score > 0.9
        alice = next(s for s in result.speakers if s.label == label)
        assert alice.clip_indices == [0, 1]  # alice speaks in both clips
        exports = {f: client.export(result.job_id, f).content for f in ("rttm", "csv", "text")}
        exports["vtt"] = client.export(result.job_id, "vtt", clip_index=0).content
        assert f" {name.replace(' ', '_')} <NA>".encode() in exports["rttm"]
        assert f"{label},{name},".encode() in exports["csv"]
        assert f"{label} ({name}, ".encode() in exports["text"] and f"] {name}".encode() in exports["text"]
        assert f"<v {name}>".encode() in exports["vtt"]
        plain = client.diarize([samples["meeting.wav"]], recognize=False)
        assert not any(s.name for s in plain.speakers)
        client.delete_speaker("Alice Smith")
        client.delete_speaker("Alice again")
        assert not any(s.name for s in client.diarize([samples["meeting.wav"]]).speakers)


def test_a_voice_enrolled_in_full_band_is_known_through_a_phone_line(library: RunningServer, voices: dict[str, Path],
                                                                     samples, tmp_path: Path) -> None:
    """Enrollment keeps the voice as G.711, GSM and Opus carry it (enrollment.line_prints;
    tests/test_recognition.py shows them naming a voice the plain score would not); the
    meeting heard through a GSM line names alice, and no one else."""
    from speakerlink import codecs

    audio, rate = sf.read(samples["meeting.wav"], dtype="float32")
    assert rate == codecs.RATE
    call = tmp_path / "call.wav"
    sf.write(call, codecs.phone_line(audio, "libgsm", "gsm"), rate)
    with Client(library.config.address) as client:
        client.enroll("Alice", [voices["alice"]])
        [voice] = library.store.voices.voiceprints("", "campplus")
        assert voice.lines.shape == (3, 192) and np.allclose(np.linalg.norm(voice.lines, axis=1), 1.0)
        result = client.diarize([call])
    assert [s.name for s in result.speakers if s.name] == ["Alice"]
    heard = library.store.prints.get(result.job_id, next(s.label for s in result.speakers if s.name))[1]
    assert heard.phone is not None  # a phone call's speaker keeps its phone print, to be enrolled from


def test_the_async_client_manages_the_library_too(library: RunningServer, voices: dict[str, Path], samples) -> None:
    import asyncio

    from speakerlink import AsyncClient

    async def go() -> None:
        async with AsyncClient(library.config.address) as client:
            assert (await client.enroll("Alice", [voices["alice"]])).enrollments == 1
            job = await client.diarize([samples["call.mp3"]], recognize=False)
            await client.enroll_from_job("Dave", job.job_id, max(job.speakers, key=lambda s: s.speech_seconds).label)
            assert (await client.rename_speaker("Dave", "Dave Jones")).name == "Dave Jones"
            assert await client.delete_speaker("Alice")
            assert [v.name for v in await client.list_speakers()] == ["Dave Jones"]

    asyncio.run(go())
