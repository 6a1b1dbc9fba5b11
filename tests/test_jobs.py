"""Jobs outlive connections and restarts; cancel, TTL and the queue bound behave."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import ROOT, excerpt, make_config, start_server
from speakerlink import (
    AsyncClient,
    Client,
    FailedPreconditionError,
    JobCancelledError,
    LimitExceededError,
    NotFoundError,
    UnavailableError,
)
from speakerlink.events import is_terminal, terminal_outcome
from speakerlink.upload import build_config
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink.v1 import speakerlink_pb2_grpc as pb_grpc


def test_reattach_and_result_survive_a_restart(tmp_path: Path, long_clip: Path) -> None:
    first = start_server(make_config(tmp_path))
    address = first.config.address
    port = first.config.port
    events: list[pb.JobEvent] = []
    failure: list[BaseException] = []

    retries: list[str] = []

    def run() -> None:
        try:
            with Client(address) as client:
                events.extend(client.iter_diarize([long_clip], timeout=300,
                                                  on_retry=lambda error, delay: retries.append(error.code)))
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
        assert retries, "the caller hears that the client waits to reattach"
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


def test_queue_is_bounded_and_a_busy_server_is_waited_on_within_the_deadline(tmp_path: Path, long_clip: Path, samples) -> None:
    running = start_server(make_config(tmp_path, workers=1, max_queued_jobs=1))
    try:
        with Client(running.config.address) as client:
            first = client.iter_diarize([long_clip])
            ids = [next(first).job_id]
            next(e for e in first if e.HasField("progress") and e.progress.stage != "queued")  # now running
            second = client.iter_diarize([long_clip])
            ids.append(next(second).job_id)  # waiting: the queue is full
            with pytest.raises(LimitExceededError) as info:
                client.diarize([samples["call.mp3"]], timeout=2)  # shorter than the wait the server asks for
            assert info.value.code == "QUEUE_FULL" and info.value.retry_after == 5.0
            waits = []

            def on_retry(error, delay: float) -> None:
                waits.append((error.code, delay))
                for job_id in ids:  # the queue frees before the retry
                    client.cancel(job_id)

            result = client.diarize([samples["call.mp3"]], on_retry=on_retry, timeout=120)
            assert result.summary.clips == 1
            assert waits[0][0] == "QUEUE_FULL" and 2.5 <= waits[0][1] <= 7.5  # the hint with jitter
    finally:
        running.stop(grace=0.5)


def test_results_expire_after_the_ttl(tmp_path: Path, samples) -> None:
    """The TTL counts from the job's end: a job that waits longer than it still runs, and its
    result stays for the TTL after its end, then goes with its files."""
    running = start_server(make_config(tmp_path, job_ttl_seconds=1, workers=1))  # the janitor looks every second
    try:
        with Client(running.config.address) as client:
            assert running.jobs.slots.try_take()  # the one worker is held: the job waits past its TTL
            events = client.iter_diarize([samples["call.mp3"]], timeout=300)
            job_id = next(events).job_id
            time.sleep(2.5)
            running.jobs.slots.give()
            result = terminal_outcome(next(event for event in events if is_terminal(event)))
            ended = time.monotonic()
            assert result.job_id == job_id
            status = next(s for s in client.list_jobs() if s.job_id == job_id)
            assert status.expires_at.ToNanoseconds() / 1e9 > time.time(), "the TTL counts from the end"
            while True:
                try:
                    client.get_result(job_id)
                except NotFoundError:
                    break
                assert time.monotonic() < ended + 30, "the result never expired"
                time.sleep(0.2)
            assert time.monotonic() - ended > 0.5
        assert not (running.config.jobs_dir / job_id).exists()
    finally:
        running.stop(grace=0.5)


def test_deadline(client: Client, long_clip: Path) -> None:
    from speakerlink import DeadlineExceededError

    with pytest.raises(DeadlineExceededError) as info:
        client.diarize([long_clip], timeout=0.5)
    if info.value.job_id:  # accepted before the deadline: cancelled, not left running on the shared server
        client.cancel(info.value.job_id)


def test_unreachable_server_is_unavailable() -> None:
    from speakerlink import UnavailableError

    with Client("127.0.0.1:1", timeout=2) as client:
        with pytest.raises(UnavailableError) as info:
            client.info()
    assert info.value.status == grpc.StatusCode.UNAVAILABLE and info.value.troubleshooting


def test_waiting_on_an_unreachable_server_fails_fast_and_says_where() -> None:
    from speakerlink import AsyncClient, UnavailableError

    job_id = uuid.uuid4().hex
    with Client("127.0.0.1:1") as client:
        started = time.monotonic()
        with pytest.raises(UnavailableError) as info:
            client.wait(job_id, timeout=3)
        assert time.monotonic() - started < 5
        assert info.value.code == "UNREACHABLE" and "127.0.0.1:1" in info.value.message
        with pytest.raises(UnavailableError):
            list(client.watch(job_id, timeout=600))  # the connect wait is bounded, not the job's deadline

    async def go() -> None:
        async with AsyncClient("127.0.0.1:1") as client:
            await client.wait(job_id, timeout=2)

    with pytest.raises(UnavailableError, match="cannot reach the server at 127.0.0.1:1"):
        asyncio.run(go())
    cli = subprocess.run([sys.executable, "-m", "speakerlink.cli", "--server", "127.0.0.1:1", "watch", job_id],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1 and "cannot reach the server at 127.0.0.1:1" in cli.stderr


def test_concurrent_jobs_share_the_embedder_and_agree(tmp_path: Path, samples) -> None:
    """Jobs running side by side share device batches; each still gets its own right answer."""
    running = start_server(make_config(tmp_path / "data", workers=3))
    clips = [excerpt(samples[name], 12.0, tmp_path / f"{Path(name).stem}.wav")  # two or more voices each
             for name in ("meeting.wav", "call.mp3", "interview.flac")]
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


def test_a_restart_removes_what_no_job_needs(tmp_path: Path, samples) -> None:
    first = start_server(make_config(tmp_path))
    with Client(first.config.address) as client:
        done = client.diarize([samples["call.mp3"]])
    first.stop(grace=0.5)
    jobs = first.config.jobs_dir
    leftovers = [
        jobs / uuid.uuid4().hex / "audio" / "000.mp3",  # an upload cut short: no record points at it
        jobs / done.job_id / "audio" / "000.mp3",  # the audio of a job that ended just before a crash
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\0" * 1000)
    (jobs / uuid.uuid4().hex).mkdir()  # a folder a delete had begun to remove
    second = start_server(make_config(tmp_path))
    try:
        assert list(jobs.iterdir()) == []
        with Client(second.config.address) as client:
            assert client.get_result(done.job_id) == done
    finally:
        second.stop(grace=0.5)


@contextlib.contextmanager
def served_apart(data_dir: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """The server in a process of its own, for a test to kill; yields it and its address."""
    served = subprocess.Popen(
        [sys.executable, "-m", "speakerlink_server", "--port", "0", "--data-dir", str(data_dir), "--titanet-model", ""],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    try:
        yield served, next(line for line in served.stdout if "ready on" in line).split()[-1]
    finally:
        served.kill()
        served.wait(30)


def test_a_server_killed_mid_upload_leaves_nothing_after_its_restart(tmp_path: Path, long_clip: Path) -> None:
    with served_apart(tmp_path) as (served, address):
        config = build_config([long_clip], pb.DiarizeOptions())
        data = long_clip.read_bytes()
        sent = threading.Event()

        def requests():
            yield pb.DiarizeRequest(config=config)
            yield pb.DiarizeRequest(chunk=pb.AudioChunk(clip_index=0, data=data[: len(data) // 2]))
            sent.set()
            time.sleep(60)  # the server dies before the rest is sent

        with grpc.insecure_channel(address) as channel:
            call = pb_grpc.SpeakerlinkStub(channel).Diarize(requests(), timeout=60)
            sent.wait(10)
            jobs = tmp_path / "jobs"
            deadline = time.monotonic() + 10
            while not any(p.is_file() and p.stat().st_size for p in jobs.rglob("*")):
                assert time.monotonic() < deadline, "the partial upload never reached the disk"
                time.sleep(0.05)
            served.send_signal(signal.SIGKILL)
            served.wait(10)
            call.cancel()
    restarted = start_server(make_config(tmp_path))
    try:
        assert list((tmp_path / "jobs").iterdir()) == []
    finally:
        restarted.stop(grace=0.5)


def test_a_client_of_several_addresses_spreads_its_calls(tmp_path: Path, samples) -> None:
    servers = [start_server(make_config(tmp_path / name)) for name in ("one", "two")]
    try:
        target = ",".join(f"127.0.0.1:{s.config.port}" for s in servers)
        with Client(target) as client:
            jobs = [client.diarize([samples["call.mp3"]]).job_id for _ in range(4)]
        held = []
        for server in servers:
            with Client(server.config.address) as direct:
                held.append({j.job_id for j in direct.list_jobs()})
        assert all(held) and held[0] | held[1] == set(jobs)  # round_robin: both front ends took jobs
        with pytest.raises(ValueError, match="not HOST:PORT"):
            Client("127.0.0.1:1,nowhere")
    finally:
        for server in servers:
            server.stop(grace=0)


RECONNECT_S = 3.0


def test_a_server_killed_mid_job_ends_the_cli_with_unreachable_and_how_to_reach_the_job(tmp_path: Path, long_clip: Path) -> None:
    with served_apart(tmp_path) as (served, address):
        cli = subprocess.Popen(
            [sys.executable, "-m", "speakerlink.cli", "--server", address, "diarize", str(long_clip),
             "--reconnect-seconds", str(RECONNECT_S)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )
        before = []
        for line in cli.stderr:
            before.append(line)
            if line.startswith(("segment ", "embed ")):  # mid-job
                break
        served.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        after = cli.communicate(timeout=120)[1]
        took = time.monotonic() - killed
    job_id = next(line.split()[1] for line in before if line.startswith("job ") and "accepted" in line)
    assert cli.returncode == 1, after
    assert took < RECONNECT_S + 6, after
    assert "server unreachable, retrying" in after and "UNREACHABLE" in after and f"job: {job_id}" in after
    assert f"speakerlink --server {address} watch {job_id}" in after
    assert f"speakerlink --server {address} cancel {job_id}" in after


def test_the_sdk_gives_up_on_a_killed_server_after_its_reconnect_window(tmp_path: Path, long_clip: Path) -> None:
    outcomes: dict[str, tuple[BaseException, float]] = {}
    attached = {"sync": threading.Event(), "async": threading.Event()}

    def wait_sync(job_id: str) -> None:
        with Client(address, reconnect_seconds=RECONNECT_S) as waiter:
            try:
                waiter.wait(job_id, on_progress=lambda progress: attached["sync"].set())
            except BaseException as exc:  # judged below
                outcomes["sync"] = exc, time.monotonic()

    async def wait_async(job_id: str) -> None:
        async with AsyncClient(address, reconnect_seconds=RECONNECT_S) as waiter:
            try:
                await waiter.wait(job_id, on_progress=lambda progress: attached["async"].set())
            except BaseException as exc:  # judged below
                outcomes["async"] = exc, time.monotonic()

    with served_apart(tmp_path) as (served, address), Client(address, reconnect_seconds=RECONNECT_S) as client:
        events = client.iter_diarize([long_clip])
        job_id = next(events).job_id
        waiters = [threading.Thread(target=wait_sync, args=(job_id,)),
                   threading.Thread(target=lambda: asyncio.run(wait_async(job_id)))]
        for thread in waiters:
            thread.start()
        assert all(event.wait(60) for event in attached.values()), "the waiters never heard the job"
        served.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        with pytest.raises(UnavailableError) as info:
            list(events)
        outcomes["diarize"] = info.value, time.monotonic()
        for thread in waiters:
            thread.join(60)
    assert set(outcomes) == {"sync", "async", "diarize"}
    for name, (error, when) in outcomes.items():
        assert isinstance(error, UnavailableError) and error.code == "UNREACHABLE", (name, error)
        assert error.job_id == job_id and when - killed < RECONNECT_S + 6, (name, when - killed)
