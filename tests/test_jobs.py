"""Jobs outlive connections and restarts; cancel, TTL and the queue bound behave."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
from conftest import make_config
from speakerlink import Client, FailedPreconditionError, JobCancelledError, LimitExceededError, NotFoundError
from speakerlink.events import is_terminal, terminal_outcome
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink_server.main import start_server


@pytest.fixture(scope="module")
def long_clip(samples, tmp_path_factory) -> Path:
    """About two minutes of the sample conversation: a job that takes a few seconds."""
    wav, rate = sf.read(samples["meeting.wav"], dtype="float32")
    path = tmp_path_factory.mktemp("long") / "long.flac"
    sf.write(path, np.tile(wav, 4), rate)
    return path


def test_reattach_and_result_survive_a_restart(tmp_path: Path, long_clip: Path) -> None:
    first = start_server(make_config(tmp_path))
    address = first.config.address
    port = first.config.port
    events: list[pb.JobEvent] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            with Client(address) as client:
                events.extend(client.iter_diarize([long_clip], timeout=300))
        except BaseException as exc:  # surfaced below
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not any(e.HasField("progress") and e.progress.stage in ("segment", "embed") for e in events):
        assert time.monotonic() < deadline and not failure, failure
        time.sleep(0.02)
    first.stop(grace=0.5)  # the stream drops mid-job; the job stays 'running' on disk
    second = start_server(make_config(tmp_path, port=port))
    try:
        thread.join(300)
        assert not failure, failure
        kinds = [e.WhichOneof("event") for e in events]
        assert kinds[0] == "accepted" and kinds[-1] == "result" and kinds.count("result") == 1
        job_id = events[0].job_id
        assert events[-1].result.job_id == job_id
    finally:
        second.stop(grace=0.5)
    third = start_server(make_config(tmp_path))  # a finished result survives another restart
    try:
        with Client(third.config.address) as client:
            assert client.get_result(job_id) == events[-1].result
    finally:
        third.stop(grace=0.5)


def test_cancel_a_running_job(client: Client, long_clip: Path) -> None:
    events = client.iter_diarize([long_clip])
    job_id = next(events).job_id
    client.cancel(job_id)
    terminal = [e for e in events if is_terminal(e)]
    assert len(terminal) == 1 and terminal[0].HasField("cancelled")
    with pytest.raises(JobCancelledError):
        terminal_outcome(terminal[0])
    with pytest.raises(FailedPreconditionError) as info:
        client.get_result(job_id)
    assert info.value.code == "RESULT_NOT_READY"
    assert client.cancel(job_id).state == pb.JOB_STATE_CANCELLED


def test_queue_is_bounded(tmp_path: Path, long_clip: Path, samples) -> None:
    running = start_server(make_config(tmp_path, workers=1, max_queued_jobs=1))
    try:
        with Client(running.config.address) as client:
            first = client.iter_diarize([long_clip])
            ids = [next(first).job_id]
            next(e for e in first if e.HasField("progress") and e.progress.stage != "queued")  # now running
            second = client.iter_diarize([long_clip])
            ids.append(next(second).job_id)  # waiting: the queue is full
            with pytest.raises(LimitExceededError) as info:
                client.diarize([samples["call.mp3"]])
            assert info.value.code == "QUEUE_FULL"
            for job_id in ids:
                client.cancel(job_id)
    finally:
        running.stop(grace=0.5)


def test_results_expire_after_the_ttl(tmp_path: Path, samples) -> None:
    running = start_server(make_config(tmp_path, job_ttl_seconds=2))
    try:
        with Client(running.config.address) as client:
            result = client.diarize([samples["call.mp3"]])
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get_result(result.job_id)
                except NotFoundError:
                    break
                assert time.monotonic() < deadline, "the result never expired"
                time.sleep(0.5)
        assert not running.jobs.job_dir(result.job_id).exists()
    finally:
        running.stop(grace=0.5)


def test_deadline(client: Client, long_clip: Path) -> None:
    from speakerlink import DeadlineExceededError

    with pytest.raises(DeadlineExceededError):
        client.diarize([long_clip], timeout=0.5)


def test_unreachable_server_is_unavailable() -> None:
    from speakerlink import UnavailableError

    with Client("127.0.0.1:1", timeout=2) as client:
        with pytest.raises(UnavailableError) as info:
            client.info()
    assert info.value.status == grpc.StatusCode.UNAVAILABLE and info.value.troubleshooting


def test_concurrent_jobs_share_the_embedder_and_agree(tmp_path: Path, samples) -> None:
    """Jobs running side by side share device batches; each still gets its own right answer."""
    running = start_server(make_config(tmp_path, workers=3))
    clips = [samples[name] for name in ("meeting.wav", "call.mp3", "interview.flac")]
    try:
        with Client(running.config.address) as client:
            reference = client.diarize(clips)
            results: list[pb.DiarizationResult] = []
            errors: list[BaseException] = []

            def one() -> None:
                try:
                    results.append(client.diarize(clips, timeout=300))
                except BaseException as exc:
                    errors.append(exc)

            workers = [threading.Thread(target=one) for _ in range(6)]
            for thread in workers:
                thread.start()
            for thread in workers:
                thread.join(300)
        assert not errors and len(results) == 6
        for result in results:
            assert result.summary.unique_speakers == reference.summary.unique_speakers
            assert [len(c.speakers) for c in result.clips] == [len(c.speakers) for c in reference.clips]
            assert [[(s.local_label, s.global_label) for s in c.speakers] for c in result.clips] == [
                [(s.local_label, s.global_label) for s in c.speakers] for c in reference.clips
            ]
        assert not [t.name for t in threading.enumerate() if t.name.startswith("speakerlink-clip")]
    finally:
        running.stop(grace=0.5)
