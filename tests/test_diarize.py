"""The main job through the real server and client, on the project's own speech."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

import grpc
import pytest
from conftest import make_config, start_server
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from speakerlink import Client, NotFoundError, conditions
from speakerlink.condition_spec import parse
from speakerlink.v1 import speakerlink_pb2 as pb

CLIPS = ("meeting.wav", "call.mp3", "interview.flac")


def reference_cast(samples: dict[str, Path]) -> dict[str, set[str]]:
    """clip stem -> the speaker names that talk in it, from the set's own reference RTTM."""
    cast: dict[str, set[str]] = defaultdict(set)
    for line in samples["reference.rttm"].read_text().splitlines():
        parts = line.split()
        cast[parts[1]].add(parts[7])
    return cast


@pytest.fixture(scope="module")
def finished(server, samples) -> tuple[pb.DiarizationResult, list[pb.JobEvent]]:
    with Client(server.config.address) as client:
        events = list(client.iter_diarize([samples[name] for name in CLIPS], timeout=300))
    return events[-1].result, events


def test_events_are_accepted_then_progress_then_one_result(finished) -> None:
    result, events = finished
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "accepted"
    assert kinds[-1] == "result" and kinds.count("result") == 1
    assert set(kinds[1:-1]) == {"progress"}
    percents = [e.progress.percent for e in events if e.HasField("progress")]
    assert percents == sorted(percents) and percents[-1] == pytest.approx(100.0)
    stages = {e.progress.stage for e in events if e.HasField("progress")}
    assert {"decode", "segment", "embed", "cluster", "link"} <= stages
    assert result.job_id == events[0].accepted.job_id


def test_speakers_are_found_and_linked_across_clips(finished, samples) -> None:
    result, _ = finished
    assert_linked_as_cast(result, samples)


def test_a_cast_heard_on_a_phone_line_in_one_clip_is_linked_to_its_full_band_voices(client: Client, samples, tmp_path) -> None:
    """The call through a GSM line, the other clips in full band: the job mixes bands, so its
    full-band voices are heard again through a phone line (pipeline.matched_band)."""
    phoned = conditions.condition_files(parse("phone-gsm"), [samples["call.mp3"]], tmp_path, seed=1)
    events = list(client.iter_diarize([samples["meeting.wav"], *phoned, samples["interview.flac"]], timeout=300))
    assert any("through a phone line" in e.progress.message for e in events if e.HasField("progress"))
    assert_linked_as_cast(events[-1].result, samples)


def assert_linked_as_cast(result: pb.DiarizationResult, samples: dict[str, Path]) -> None:
    """Each clip holds its cast, and each global label is one person of the cast, none twice."""
    cast = reference_cast(samples)
    people = set().union(*cast.values())
    assert result.summary.unique_speakers == len(people)
    # Map each global label to the reference person it overlaps most, clip by clip.
    truth_turns = defaultdict(list)
    for line in samples["reference.rttm"].read_text().splitlines():
        p = line.split()
        truth_turns[p[1]].append((float(p[3]), float(p[3]) + float(p[4]), p[7]))
    label_to_person: dict[str, set[str]] = defaultdict(set)
    for clip in result.clips:
        stem = Path(clip.name).stem
        assert len(clip.speakers) == len(cast[stem]), f"{clip.name}: wrong speaker count"
        for link in clip.speakers:
            overlap: dict[str, float] = defaultdict(float)
            for seg in clip.segments:
                if seg.local_speaker != link.local_label:
                    continue
                for start, end, who in truth_turns[stem]:
                    overlap[who] += max(0.0, min(end, seg.end) - max(start, seg.start))
            label_to_person[link.global_label].add(max(overlap, key=overlap.get))
            assert 0.0 <= link.confidence <= 1.0
    assert all(len(persons) == 1 for persons in label_to_person.values()), label_to_person
    assert len({next(iter(p)) for p in label_to_person.values()}) == len(people)


def test_result_shape(finished) -> None:
    result, _ = finished
    assert [c.name for c in result.clips] == list(CLIPS)
    labels = {s.label for s in result.speakers}
    for clip in result.clips:
        assert clip.duration_seconds > 10
        assert clip.segments
        for seg in clip.segments:
            assert 0 <= seg.start < seg.end <= clip.duration_seconds + 0.01
            assert seg.speaker in labels
    for speaker in result.speakers:
        assert speaker.speech_seconds > 0 and speaker.clip_indices
    assert result.summary.audio_seconds == pytest.approx(sum(c.duration_seconds for c in result.clips))
    assert result.summary.processing_seconds > 0
    assert list(result.summary.engines) == ["segmentation-3.0", "campplus"]


def test_exports(client: Client, finished) -> None:
    result, _ = finished
    job = result.job_id
    as_json = json.loads(client.export(job, "json").content)
    assert as_json["job_id"] == job and len(as_json["clips"]) == 3
    rows = list(csv.DictReader(io.StringIO(client.export(job, "csv").content.decode())))
    assert len(rows) == sum(len(c.segments) for c in result.clips)
    assert {r["speaker"] for r in rows} == {s.label for s in result.speakers}
    rttm = client.export(job, "rttm").content.decode().splitlines()
    assert len(rttm) == len(rows)
    assert {line.split()[1] for line in rttm} == {"meeting", "call", "interview"}
    assert all(line.split()[0] == "SPEAKER" and len(line.split()) == 10 for line in rttm)
    text = client.export(job, "text").content.decode()
    assert "== meeting.wav" in text and "S1" in text


def test_one_clips_text_export_holds_that_clip_only_and_json_times_are_milliseconds(client: Client, finished) -> None:
    result, _ = finished
    text = client.export(result.job_id, "text", clip_index=0).content.decode()
    first = result.clips[0]
    assert f"== {first.name}" in text and not any(f"== {c.name}" in text for c in result.clips[1:])
    assert not any(c.name in text for c in result.clips[1:]), "no other clip is named"
    exported = json.loads(client.export(result.job_id, "json").content)
    times = [exported["summary"]["audio_seconds"], exported["summary"]["processing_seconds"]]
    times += [v for c in exported["clips"] for v in (c["duration_seconds"], c["speech_seconds"])]
    times += [s["speech_seconds"] for s in exported["speakers"]]
    assert all(round(t, 3) == t for t in times)


def test_files_of_one_name_in_two_folders_keep_distinct_names(client: Client, samples, tmp_path) -> None:
    for folder in ("day1", "day2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "call.mp3").write_bytes(samples["call.mp3"].read_bytes())
    result = client.diarize([tmp_path / "day1" / "call.mp3", tmp_path / "day2" / "call.mp3"], language="de")
    assert [c.name for c in result.clips] == ["day1/call.mp3", "day2/call.mp3"]
    assert len(result.speakers) == 2  # the same two voices in both
    assert any("language 'de' was not used" in w for w in result.summary.warnings)


def test_get_result_and_watch_after_the_end(client: Client, finished) -> None:
    result, _ = finished
    assert client.get_result(result.job_id) == result
    events = list(client.watch(result.job_id))
    assert len(events) == 1 and events[0].result == result


def test_the_result_says_what_produced_it(client: Client, finished) -> None:
    result, _ = finished
    asked = result.provenance.request
    assert (asked.engine, asked.transcriber, asked.recognize, asked.language) == ("campplus", "", True, "")
    assert asked.link_threshold == pytest.approx(0.52) and (asked.min_speakers, asked.max_speakers) == (0, 0)
    params = json_format.MessageToDict(result.provenance.parameters)
    assert params["clustering"] == {"threshold": 0.35, "fold_similarity": 0.1, "group_fold_similarity": 0.34,
                                     "min_cluster_windows": 3}
    assert params["linking"]["threshold"] == 0.52 and params["segmentation"] == {"step_seconds": 5.0}
    assert params["missed_speech"] == {"min_seconds": 0.5, "within_db": 12.0}
    assert params["spread"] == {"reference": 0.7, "slope": 1.5, "lowest": 0.25}
    assert set(params) == {"segmentation", "missed_speech", "windows", "clustering", "slots", "turns", "linking",
                           "recognition", "spread", "live"}
    exported = json.loads(client.export(result.job_id, "json").content)["provenance"]
    assert exported["request"]["engine"] == "campplus" and exported["parameters"] == params


def test_speaker_count_options(client: Client, samples) -> None:
    result = client.diarize([samples["meeting.wav"]], num_speakers=2, link_threshold=0.5)
    assert len(result.clips[0].speakers) == 2
    asked = result.provenance.request
    assert (asked.min_speakers, asked.max_speakers) == (2, 2) and asked.link_threshold == pytest.approx(0.5)
    assert json_format.MessageToDict(result.provenance.parameters)["linking"]["threshold"] == pytest.approx(0.5)
    result = client.diarize([samples["meeting.wav"]], max_speakers=1)
    assert len(result.clips[0].speakers) == 1
    result = client.diarize([samples["call.mp3"]], min_speakers=3)
    assert len(result.clips[0].speakers) >= 3 and not result.summary.warnings


def test_a_count_the_clip_cannot_hold_comes_back_as_a_warning(client: Client, samples, tmp_path) -> None:
    import soundfile as sf

    wav, rate = sf.read(samples["meeting.wav"], dtype="float32")
    short = tmp_path / "short.wav"
    sf.write(short, wav[: 2 * rate], rate)  # one voice, two seconds
    result = client.diarize([short], num_speakers=4)
    assert len(result.clips[0].speakers) < 4
    assert len(result.summary.warnings) == 1 and "4 speakers were asked for" in result.summary.warnings[0]
    assert result.summary.warnings[0].startswith("short.wav: ")


def test_link_threshold_override_keeps_cannot_link(client: Client, samples) -> None:
    # A threshold of -1 links everything it may; speakers of one clip must still stay apart.
    result = client.diarize([samples[name] for name in CLIPS], link_threshold=-1.0)
    for clip in result.clips:
        globals_ = [link.global_label for link in clip.speakers]
        assert len(set(globals_)) == len(globals_)
    assert result.summary.link_threshold == pytest.approx(-1.0)
    result = client.diarize([samples[name] for name in CLIPS], link_threshold=1.0)
    assert result.summary.unique_speakers == sum(len(c.speakers) for c in result.clips)


def test_voices_heard_in_many_clips_keep_one_label(samples, tmp_path: Path) -> None:
    """Episodes of one show: the cast recurs in more clips than the AS-norm cohort is large."""
    episodes = []
    for k in range(3):
        for name in ("meeting.wav", "call.mp3", "interview.flac"):
            episodes.append(tmp_path / f"{k}-{name}")
            episodes[-1].write_bytes(samples[name].read_bytes())
    running = start_server(make_config(tmp_path / "data", max_clips=9))
    try:
        with Client(running.config.address, timeout=120) as client:
            result = client.diarize(episodes)
    finally:
        running.stop(grace=1.0)
    assert result.summary.unique_speakers == 5
    first = [tuple(link.global_label for link in clip.speakers) for clip in result.clips[:3]]
    assert [tuple(link.global_label for link in clip.speakers) for clip in result.clips] == first * 3


def test_m4a_is_accepted(client: Client, samples, tmp_path: Path) -> None:
    import subprocess

    m4a = tmp_path / "call.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(samples["call.mp3"]), str(m4a)], check=True)
    result = client.diarize([m4a])
    assert result.clips[0].name == "call.m4a" and len(result.clips[0].speakers) >= 1


def test_delete_removes_result_and_files(client: Client, server, samples) -> None:
    result = client.diarize([samples["call.mp3"]])
    job_dir = server.config.jobs_dir / result.job_id
    assert client.delete(result.job_id)
    assert not job_dir.exists()
    with pytest.raises(NotFoundError) as info:
        client.get_result(result.job_id)
    assert info.value.code == "JOB_NOT_FOUND" and info.value.recovery


def test_info(client: Client) -> None:
    info = client.info()
    embedders = [e for e in info.engines if e.kind == "embedder"]
    assert any(e.name == "campplus" and e.active and "sha256 checked" in e.reason for e in embedders)
    assert any(e.kind == "segmenter" and e.name == "segmentation-3.0" and e.active for e in info.engines)
    assert any(e.kind == "speech detector" and e.name == "silero-vad" and e.active for e in info.engines)
    assert {"wav", "mp3", "m4a", "flac"} <= set(info.formats)
    assert info.limits.max_clips == 4 and info.device.startswith(("cpu", "cuda"))
    assert info.limits.max_streams == 32 and info.limits.upload_idle_seconds == 60.0


def test_health_and_reflection(server) -> None:
    with grpc.insecure_channel(server.config.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "speakerlink.v1.Speakerlink"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for r in replies for s in r.list_services_response.service}
        assert "speakerlink.v1.Speakerlink" in names and "grpc.health.v1.Health" in names


def test_async_client(server, samples) -> None:
    import asyncio

    from speakerlink import AsyncClient

    async def go() -> pb.DiarizationResult:
        async with AsyncClient(server.config.address) as client:
            seen = []
            result = await client.diarize([samples["call.mp3"]], on_progress=seen.append)
            assert seen and (await client.get_result(result.job_id)) == result
            assert (await client.list_jobs(limit=1))[0].job_id == result.job_id
            assert (await client.wait(result.job_id)) == result
            return result

    assert asyncio.run(go()).summary.clips == 1
