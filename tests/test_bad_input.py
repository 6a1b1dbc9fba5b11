"""Bad input gets a clear, typed error with hints, and the server keeps serving."""

from __future__ import annotations

import contextlib
import re
import struct
import subprocess
import threading
import time
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
from conftest import make_config, start_server
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from speakerlink import Client, InvalidInputError, LimitExceededError, NotFoundError
from speakerlink.errors import error_from_rpc
from speakerlink.options import diarize_options
from speakerlink.upload import CHUNK_BYTES, build_config
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink.v1 import speakerlink_pb2_grpc as pb_grpc
from speakerlink_server.errors import ServiceError
from speakerlink_server.pipeline import audio
from speakerlink_server.uploads import MAX_CHUNK_BYTES


@pytest.fixture(autouse=True)
def server_still_serves(server):
    """After every bad request the same server must still answer and leave no upload behind."""
    yield
    with Client(server.config.address) as client:
        assert client.info().version
    wait_until_empty(server.config.jobs_dir)


def wait_until_empty(folder: Path, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while any(folder.iterdir()):
        assert time.monotonic() < deadline, f"left behind: {sorted(folder.rglob('*'))}"
        time.sleep(0.05)


def expect(error_type, code: str, client: Client, paths, **options):
    with pytest.raises(error_type) as info:
        client.diarize(paths, **options)
    err = info.value
    assert err.code == code, err.describe()
    assert err.troubleshooting and err.recovery, "errors must say why and what to do"
    assert not re.search(r"0x[0-9a-fA-F]{6}", err.message), "no heap addresses from ffmpeg"
    return err


def test_not_audio(client: Client, server, tmp_path: Path) -> None:
    fake = tmp_path / "notes.wav"
    fake.write_text("these are meeting notes, not a recording\n" * 50)
    err = expect(InvalidInputError, "NOT_AUDIO", client, [fake])
    assert err.clip_name == "notes.wav" and err.clip_index == 0
    assert "notes.wav" in err.message and str(server.config.data_dir) not in err.message  # no server paths


@pytest.mark.parametrize("name", ["meeting.wav", "interview.flac"])
def test_truncated_file(client: Client, samples, tmp_path: Path, name: str) -> None:
    data = samples[name].read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: len(data) // 2])
    err = expect(InvalidInputError, "AUDIO_TRUNCATED", client, [cut])
    assert "ends early" in err.message


def test_a_wav_cut_right_after_its_header_is_truncated(client: Client, tmp_path: Path) -> None:
    fmt = b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", 3600 * 32000)
    cut = tmp_path / "header-only.wav"  # declares an hour of audio and holds none
    cut.write_bytes(b"RIFF" + struct.pack("<I", len(fmt)) + fmt)
    err = expect(InvalidInputError, "AUDIO_TRUNCATED", client, [cut])
    assert "holds none" in err.message


ENCODINGS = {"opus": ["-c:a", "libopus"], "ogg": ["-c:a", "libvorbis"], "aac": ["-c:a", "aac", "-f", "adts"],
             "webm": ["-c:a", "libopus"]}


@pytest.mark.parametrize("extension", ENCODINGS)
def test_truncated_compressed_files_are_refused_and_whole_ones_decode(client: Client, samples, tmp_path: Path,
                                                                       extension: str) -> None:
    whole = tmp_path / f"whole.{extension}"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(samples["meeting.wav"]), *ENCODINGS[extension], str(whole)],
                   check=True)
    decoded = np.concatenate([wav for _, wav in audio.stream(whole, 0, whole.name, 600.0)])
    assert abs(decoded.size / 16000 - sf.info(samples["meeting.wav"]).duration) < 0.1
    data = whole.read_bytes()
    for fraction in (0.3, 0.6, 0.9):
        cut = tmp_path / f"cut{int(fraction * 10)}.{extension}"
        cut.write_bytes(data[: int(len(data) * fraction)])
        err = expect(InvalidInputError, "AUDIO_TRUNCATED", client, [cut])
        assert "ends early" in err.message


def test_ffmpeg_text_reaches_the_client_without_heap_addresses(client: Client, samples, tmp_path: Path) -> None:
    aac = tmp_path / "whole.aac"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(samples["meeting.wav"]), *ENCODINGS["aac"], str(aac)], check=True)
    cut = tmp_path / "cut.aac"
    cut.write_bytes(aac.read_bytes()[: aac.stat().st_size * 6 // 10])
    err = expect(InvalidInputError, "AUDIO_TRUNCATED", client, [cut])
    assert "ffmpeg: [aac] " in err.message  # what ffmpeg said stays, its memory layout goes


def test_random_bytes_named_mp3_are_not_audio(client: Client, tmp_path: Path) -> None:
    noise = tmp_path / "noise.mp3"  # ffprobe takes it for an MP3 stream of 0 Hz
    noise.write_bytes(np.random.default_rng(0).bytes(200_000))
    expect(InvalidInputError, "NOT_AUDIO", client, [noise])


def test_truncated_m4a_has_no_readable_audio(client: Client, samples, tmp_path: Path) -> None:
    m4a = tmp_path / "whole.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(samples["call.mp3"]), str(m4a)], check=True)
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(m4a.read_bytes()[: m4a.stat().st_size // 2])
    expect(InvalidInputError, "NOT_AUDIO", client, [cut])


def test_empty_file(client: Client, tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.touch()
    expect(InvalidInputError, "EMPTY_FILE", client, [empty])


def test_unsupported_format(client: Client, samples, tmp_path: Path) -> None:
    odd = tmp_path / "meeting.xyz"
    odd.write_bytes(samples["meeting.wav"].read_bytes())
    err = expect(InvalidInputError, "UNSUPPORTED_FORMAT", client, [odd])
    assert "wav" in " ".join(err.troubleshooting)


def test_too_many_clips(client: Client, server, samples) -> None:
    clips = [samples["call.mp3"]] * (server.config.max_clips + 1)
    err = expect(LimitExceededError, "TOO_MANY_CLIPS", client, clips)
    assert "--max-clips" in err.recovery[0] and "unlinked" in err.recovery[0]


def test_declared_size_over_the_limit_is_refused_before_upload(client: Client, server, tmp_path: Path) -> None:
    big = tmp_path / "big.wav"
    sf.write(big, np.zeros(server.config.max_file_bytes // 2 + 16000, dtype=np.int16), 16000)  # > limit in bytes
    expect(LimitExceededError, "FILE_TOO_LARGE", client, [big])


def test_oversized_upload_is_stopped_while_streaming(server) -> None:
    """A client that under-declares sizes is cut off within a chunk of the limit, not at the end."""
    limit = server.config.max_file_bytes
    sent = []

    def requests():
        manifest = pb.ClipManifest(name="huge.wav", size_bytes=limit)
        yield pb.DiarizeRequest(config=pb.DiarizeConfig(clips=[manifest]))
        chunk = b"\0" * CHUNK_BYTES
        for _ in range(4 * limit // CHUNK_BYTES):
            sent.append(len(chunk))
            yield pb.DiarizeRequest(chunk=pb.AudioChunk(clip_index=0, data=chunk))

    with grpc.insecure_channel(server.config.address) as channel:
        stub = pb_grpc.SpeakerlinkStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Diarize(requests(), timeout=60))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit" in info.value.details()
    # The server stopped reading close to the limit; what gRPC had buffered beyond it is small.
    assert sum(sent) < 2 * limit


def test_clip_without_speech_gives_zero_speakers(client: Client, samples, tmp_path: Path) -> None:
    quiet = tmp_path / "room-tone.wav"
    rng = np.random.default_rng(0)
    sf.write(quiet, (rng.standard_normal(16000 * 8) * 10 ** (-60 / 20)).astype(np.float32), 16000)
    result = client.diarize([quiet, samples["call.mp3"]])
    silent = result.clips[0]
    assert silent.name == "room-tone.wav"
    assert len(silent.speakers) == 0 and len(silent.segments) == 0 and silent.duration_seconds == pytest.approx(8.0, abs=0.05)
    assert len(result.clips[1].speakers) >= 1


def test_client_disconnect_mid_upload_removes_partial_files(server, samples) -> None:
    path = samples["meeting.wav"]
    config = build_config([path], diarize_options())
    release = threading.Event()

    def requests():
        yield pb.DiarizeRequest(config=config)
        with path.open("rb") as fh:
            yield pb.DiarizeRequest(chunk=pb.AudioChunk(clip_index=0, data=fh.read(CHUNK_BYTES // 4)))
        release.wait(10)  # hold the stream open with a partial file on the server

    with grpc.insecure_channel(server.config.address) as channel:
        call = pb_grpc.SpeakerlinkStub(channel).Diarize(requests())
        deadline = time.monotonic() + 10
        while not any(p.is_dir() and any((p / "audio").glob("*")) for p in server.config.jobs_dir.iterdir()):
            assert time.monotonic() < deadline, "the partial upload never reached the disk"
            time.sleep(0.05)
        call.cancel()
        release.set()
    wait_until_empty(server.config.jobs_dir)


JOB_CALLS = ("get_result", "cancel", "delete", "export", "watch")


def call_about_job(client: Client, name: str, job_id: str) -> None:
    method = getattr(client, name)
    if name == "export":
        method(job_id, "rttm")
    elif name == "watch":
        list(method(job_id))
    else:
        method(job_id)


@pytest.mark.parametrize("call", JOB_CALLS)
def test_unknown_job(client: Client, call: str) -> None:
    with pytest.raises(NotFoundError) as info:
        call_about_job(client, call, uuid.uuid4().hex)
    assert info.value.code == "JOB_NOT_FOUND"


@pytest.mark.parametrize("call", JOB_CALLS)
@pytest.mark.parametrize("job_id", ["no-such-job", "../" * 20, "a" * 1_000_000])
def test_malformed_job_ids_are_refused_with_a_short_typed_error(client: Client, call: str, job_id: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        call_about_job(client, call, job_id)
    assert info.value.code == "INVALID_JOB_ID" and len(info.value.message) < 300


def test_huge_strings_in_a_request_get_a_short_typed_error(client: Client, server, samples) -> None:
    err = expect(InvalidInputError, "INVALID_CONFIG", client, [samples["call.mp3"]], engine="x" * 1_000_000)
    assert len(err.message) < 300
    config = build_config([samples["call.mp3"]], pb.DiarizeOptions())
    config.clips[0].name = "n" * 1_000_000 + ".mp3"
    with grpc.insecure_channel(server.config.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            list(pb_grpc.SpeakerlinkStub(channel).Diarize(iter([pb.DiarizeRequest(config=config)]), timeout=10))
    err = error_from_rpc(info.value)
    assert isinstance(err, InvalidInputError) and err.code == "INVALID_CONFIG"
    assert "at most 255" in err.message and len(err.message) < 300


@pytest.mark.parametrize(
    "options",
    [dict(num_speakers=0), dict(min_speakers=3, max_speakers=2), dict(num_speakers=2, max_speakers=3)],
)
def test_bad_speaker_counts_are_refused_by_the_sdk(client: Client, samples, options) -> None:
    with pytest.raises(ValueError):
        client.diarize([samples["call.mp3"]], **options)


def test_bad_options_are_refused_by_the_server(server, samples) -> None:
    config = build_config([samples["call.mp3"]], pb.DiarizeOptions(speakers=pb.SpeakerCount(min=3, max=2)))
    with grpc.insecure_channel(server.config.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            list(pb_grpc.SpeakerlinkStub(channel).Diarize(iter([pb.DiarizeRequest(config=config)]), timeout=10))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("options", [{"num_speakers": 2147483647}, {"min_speakers": 101}])
def test_impossible_speaker_counts_are_refused(client: Client, samples, options) -> None:
    err = expect(InvalidInputError, "INVALID_CONFIG", client, [samples["call.mp3"]], **options)
    assert "1-100" in err.message
    assert client.info().limits.max_speakers == 100


def test_unknown_engine(client: Client, samples) -> None:
    expect(InvalidInputError, "UNKNOWN_ENGINE", client, [samples["call.mp3"]], engine="nonesuch")


def test_changed_bytes_fail_the_checksum(server, samples) -> None:
    path = samples["call.mp3"]
    config = build_config([path], diarize_options())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    requests = [pb.DiarizeRequest(config=config), pb.DiarizeRequest(chunk=pb.AudioChunk(clip_index=0, data=bytes(data)))]
    with grpc.insecure_channel(server.config.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            list(pb_grpc.SpeakerlinkStub(channel).Diarize(iter(requests), timeout=10))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "SHA-256" in info.value.details()


@pytest.mark.parametrize("size", [MAX_CHUNK_BYTES + 1, MAX_CHUNK_BYTES * 3 // 2])
def test_a_chunk_over_the_advertised_limit_gets_our_typed_error(client: Client, server, size: int) -> None:
    """Just over max_chunk_bytes, and well over it (past what the transport took before): the
    call ends with CHUNK_TOO_LARGE and its details, not the transport's bare refusal."""
    assert client.info().limits.max_chunk_bytes == MAX_CHUNK_BYTES
    manifest = pb.ClipManifest(name="big.wav", size_bytes=server.config.max_file_bytes)
    requests = [pb.DiarizeRequest(config=pb.DiarizeConfig(clips=[manifest])),
                pb.DiarizeRequest(chunk=pb.AudioChunk(clip_index=0, data=b"\0" * size))]
    with grpc.insecure_channel(server.config.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            list(pb_grpc.SpeakerlinkStub(channel).Diarize(iter(requests), timeout=30))
    err = error_from_rpc(info.value)
    assert isinstance(err, LimitExceededError) and err.code == "CHUNK_TOO_LARGE", err.describe()
    assert err.clip_index == 0 and err.clip_name == "big.wav" and str(MAX_CHUNK_BYTES) in err.message


def test_a_manifest_without_size_bytes_says_it_is_required(server) -> None:
    config = pb.DiarizeConfig(clips=[pb.ClipManifest(name="meeting.wav")])
    with grpc.insecure_channel(server.config.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            list(pb_grpc.SpeakerlinkStub(channel).Diarize(iter([pb.DiarizeRequest(config=config)]), timeout=10))
    err = error_from_rpc(info.value)
    assert err.code == "EMPTY_FILE" and "size_bytes" in " ".join(err.troubleshooting), err.describe()


def test_a_malformed_sha256_names_its_clip(server, samples) -> None:
    config = build_config([samples["call.mp3"], samples["meeting.wav"]], pb.DiarizeOptions())
    config.clips[1].sha256 = "not a digest"
    with grpc.insecure_channel(server.config.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            list(pb_grpc.SpeakerlinkStub(channel).Diarize(iter([pb.DiarizeRequest(config=config)]), timeout=10))
    err = error_from_rpc(info.value)
    assert err.code == "INVALID_CONFIG" and (err.clip_index, err.clip_name) == (1, "meeting.wav")
    assert "first message" not in err.describe()
    status = rpc_status.from_call(info.value)
    found = error_details_pb2.ErrorInfo()
    next(d for d in status.details if d.Is(found.DESCRIPTOR)).Unpack(found)
    assert found.metadata["clip_index"] == "1" and found.metadata["clip_name"] == "meeting.wav"


@pytest.fixture()
def own_server(tmp_path: Path):
    """A server with settings of the test's own; stopped, and its uploads checked gone, after."""
    running = []

    def start(**overrides):
        running.append(start_server(make_config(tmp_path / "data", **overrides)))
        return running[-1]

    yield start
    for server in running:
        wait_until_empty(server.config.jobs_dir)
        server.stop(grace=1.0)


def reader_threads() -> int:
    return sum(t.name.startswith("speakerlink-upload-reader") for t in threading.enumerate())


@pytest.mark.parametrize("chunks_before_stall", [0, 1])
def test_a_silent_upload_is_cut_off(own_server, samples, chunks_before_stall: int) -> None:
    """Silence before the config or mid-file ends the call with UPLOAD_STALLED; the partial file goes."""
    server = own_server(upload_idle_seconds=1.0)
    path = samples["meeting.wav"]
    release = threading.Event()

    def requests():
        if chunks_before_stall:
            yield pb.DiarizeRequest(config=build_config([path], diarize_options()))
            with path.open("rb") as fh:
                yield pb.DiarizeRequest(chunk=pb.AudioChunk(clip_index=0, data=fh.read(CHUNK_BYTES // 4)))
        release.wait(30)  # the client hangs, holding its stream open

    started = time.monotonic()
    with grpc.insecure_channel(server.config.address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            list(pb_grpc.SpeakerlinkStub(channel).Diarize(requests(), timeout=30))
        release.set()
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    err = error_from_rpc(info.value)
    assert err.code == "UPLOAD_STALLED" and err.troubleshooting and err.recovery
    assert 1.0 <= time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while reader_threads():
        assert time.monotonic() < deadline, "the upload's reader thread outlived its call"
        time.sleep(0.05)


def test_a_slow_upload_within_the_idle_limit_succeeds(own_server, samples) -> None:
    server = own_server(upload_idle_seconds=1.0)
    path = samples["call.mp3"]
    data = path.read_bytes()
    parts = [data[i : i + len(data) // 3 + 1] for i in range(0, len(data), len(data) // 3 + 1)]

    def requests():
        yield pb.DiarizeRequest(config=build_config([path], diarize_options()))
        for part in parts:
            time.sleep(0.5)
            yield pb.DiarizeRequest(chunk=pb.AudioChunk(clip_index=0, data=part))

    with grpc.insecure_channel(server.config.address) as channel:
        events = list(pb_grpc.SpeakerlinkStub(channel).Diarize(requests(), timeout=60))
    assert len(parts) >= 3 and events[-1].WhichOneof("event") == "result"


def test_an_upload_that_would_fill_the_disk_is_refused(own_server, samples) -> None:
    server = own_server(min_free_bytes=1 << 60)  # more than any disk has free
    with Client(server.config.address, timeout=30) as client:
        err = expect(LimitExceededError, "STORAGE_FULL", client, [samples["call.mp3"]])
        assert "must stay free" in err.message
        assert client.info().version  # still serving


@pytest.fixture()
def small_disk(tmp_path: Path):
    """A 4 MiB filesystem of its own (tmpfs), where mounting one is allowed."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def test_a_disk_that_fills_during_the_upload_gives_storage_full(small_disk: Path) -> None:
    server = start_server(make_config(small_disk / "data", min_free_bytes=0))
    try:
        data = np.random.default_rng(0).integers(0, 256, 2 * 1024 * 1024, dtype=np.uint8).tobytes()
        manifest = pb.ClipManifest(name="long.wav", size_bytes=len(data))
        first_chunk_sent = threading.Event()
        disk_filled = threading.Event()

        def requests():
            yield pb.DiarizeRequest(config=pb.DiarizeConfig(clips=[manifest]))
            yield pb.DiarizeRequest(chunk=pb.AudioChunk(clip_index=0, data=data[:CHUNK_BYTES]))
            first_chunk_sent.set()
            disk_filled.wait(10)
            for start in range(CHUNK_BYTES, len(data), CHUNK_BYTES):
                yield pb.DiarizeRequest(chunk=pb.AudioChunk(clip_index=0, data=data[start : start + CHUNK_BYTES]))

        def fill_disk() -> None:  # another writer takes the space after the upload was admitted
            first_chunk_sent.wait(10)
            with contextlib.suppress(OSError), (small_disk / "ballast").open("wb") as fh:  # closing may fail too
                while True:
                    fh.write(b"\0" * 65536)
                    fh.flush()
            disk_filled.set()

        filler = threading.Thread(target=fill_disk)
        filler.start()
        with grpc.insecure_channel(server.config.address) as channel:
            with pytest.raises(grpc.RpcError) as info:
                list(pb_grpc.SpeakerlinkStub(channel).Diarize(requests(), timeout=30))
        filler.join()
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_from_rpc(info.value).code == "STORAGE_FULL"
        (small_disk / "ballast").unlink()
        wait_until_empty(server.config.jobs_dir)
        with Client(server.config.address, timeout=10) as client:
            assert client.info().version  # the server lives on
    finally:
        server.stop(grace=1.0)


def test_streams_beyond_the_limit_are_refused_and_quick_calls_still_answer(own_server, samples) -> None:
    server = own_server(max_streams=2)
    config = build_config([samples["call.mp3"]], diarize_options())
    release = threading.Event()

    def hanging_upload():
        yield pb.DiarizeRequest(config=config)
        release.wait(30)

    with grpc.insecure_channel(server.config.address) as channel:
        stub = pb_grpc.SpeakerlinkStub(channel)
        held = [stub.Diarize(hanging_upload()) for _ in range(2)]
        deadline = time.monotonic() + 10
        while sum(p.is_dir() for p in server.config.jobs_dir.iterdir()) < 2:  # both uploads have begun
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for call in (lambda: list(stub.Diarize(iter([pb.DiarizeRequest(config=config)]), timeout=10)),
                     lambda: list(stub.WatchJob(pb.WatchJobRequest(job_id="any"), timeout=10))):
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error_from_rpc(info.value).code == "TOO_MANY_STREAMS"
            assert error_from_rpc(info.value).retry_after == 1.0  # google.rpc.RetryInfo
        with Client(server.config.address, timeout=5) as client:
            assert client.info().version
        for call in held:
            call.cancel()
        release.set()
    # The slots come back: a whole job runs on the same server.
    with Client(server.config.address, timeout=60) as client:
        deadline = time.monotonic() + 10
        while True:
            try:
                assert client.diarize([samples["call.mp3"]]).clips
                break
            except LimitExceededError:
                assert time.monotonic() < deadline, "the cancelled streams never gave their slots back"
                time.sleep(0.1)


def wav_declaring(path: Path, rate: int, data: bytes) -> Path:
    """An 8-bit mono WAV whose header says `rate` samples a second."""
    fmt = b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8) + b"data" + struct.pack("<I", len(data))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(fmt) + len(data)) + fmt + data)
    return path


def test_a_header_that_declares_hours_in_a_few_kilobytes_is_refused_at_once(client: Client, tmp_path: Path) -> None:
    bomb = wav_declaring(tmp_path / "bomb.wav", 1, bytes([128]) * 36000)  # ten hours at 1 Hz
    started = time.monotonic()
    err = expect(InvalidInputError, "UNSUPPORTED_SAMPLE_RATE", client, [bomb])
    assert time.monotonic() - started < 1.0
    assert "1 Hz" in err.message and err.clip_name == "bomb.wav"


def test_audio_over_the_clip_and_job_limits_is_refused_before_it_runs(own_server, samples) -> None:
    # The sample clips last 35.6-38.7 s.
    server = own_server(max_clip_seconds=37.0, max_job_seconds=60.0)
    with Client(server.config.address, timeout=30) as client:
        limits = client.info().limits
        assert (limits.max_clip_seconds, limits.max_job_seconds) == (37.0, 60.0)
        err = expect(LimitExceededError, "AUDIO_TOO_LONG", client, [samples["meeting.wav"], samples["interview.flac"]])
        assert err.clip_name == "interview.flac" and "37 s per clip" in err.message
        err = expect(LimitExceededError, "JOB_TOO_LONG", client, [samples["meeting.wav"], samples["call.mp3"]])
        assert "72 s of audio" in err.message and "60 s per job" in err.message
        assert client.diarize([samples["call.mp3"]]).summary.clips == 1


def test_decoding_stops_past_the_limit_whatever_the_header_says(samples) -> None:
    with pytest.raises(ServiceError) as info:
        for _ in audio.stream(samples["meeting.wav"], 0, "meeting.wav", chunk_seconds=5.0, max_seconds=12.0):
            pass
    assert info.value.code == "AUDIO_TOO_LONG" and "12 s per clip" in str(info.value)
