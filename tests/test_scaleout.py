"""Scale-out on PostgreSQL (F16): two front ends and two workers, each its own process on
loopback, sharing one throwaway database. Workers are killed with SIGKILL, as a crash would."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import soundfile as sf
from conftest import ROOT
from postgres import Cluster
from speakerlink import Client
from speakerlink.errors import JobCancelledError, NotFoundError
from speakerlink.v1 import speakerlink_pb2 as pb

LEASE_S = 3.0


@dataclass
class Replica:
    role: str
    args: list[str]
    process: subprocess.Popen = field(init=False)
    address: str = field(init=False)
    log: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "speakerlink_server", *self.args], cwd=ROOT, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for line in self.process.stdout:
            self.log.append(line)
            if "ready on" in line:
                self.address = line.split()[-1]
                break
        else:
            raise AssertionError(f"{self.role} did not start:\n{''.join(self.log)}")
        threading.Thread(target=lambda: self.log.extend(self.process.stdout), daemon=True).start()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@dataclass
class Deployment:
    database: str
    apis: list[Replica]
    workers: list[Replica]

    @property
    def target(self) -> str:
        return ",".join(api.address for api in self.apis)

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.database) as db:
            return db.execute(sql, params).fetchall()

    def worker_of(self, job_id: str) -> Replica:
        """The worker whose lease the job is under (its owner names the process id)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            owner = self.rows("SELECT lease_owner FROM jobs WHERE id = %s AND state = %s", (job_id, pb.JOB_STATE_RUNNING))
            if owner and owner[0][0]:
                pid = int(owner[0][0].split("/")[1])
                return next(w for w in self.workers if w.process.pid == pid)
            time.sleep(0.05)
        raise AssertionError(f"no worker took job {job_id}")


@pytest.fixture(scope="module")
def deployment(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    import uuid

    name = f"s{uuid.uuid4().hex[:12]}"
    with psycopg.connect(cluster.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    database = cluster.dsn.rsplit("/", 1)[0] + f"/{name}"
    env_free = ["--titanet-model", "", "--lease-seconds", str(LEASE_S), "--max-queued-jobs", "64", "--port", "0"]

    def replica(role: str, n: int) -> Replica:
        folder = tmp_path_factory.mktemp(f"{role}{n}")
        return Replica(role, ["--role", role, "--database", database, "--data-dir", str(folder), "--torch-threads", "1",
                              *env_free])

    apis, workers = [replica("api", n) for n in range(2)], [replica("worker", n) for n in range(2)]
    everyone = apis + workers
    with ThreadPoolExecutor(len(everyone)) as pool:
        list(pool.map(Replica.start, everyone))
    try:
        yield Deployment(database, apis, workers)
    finally:
        for one in everyone:
            one.process.terminate()
        for one in everyone:
            try:
                one.process.wait(15)
            except subprocess.TimeoutExpired:
                one.process.kill()


def submit(client: Client, path: Path) -> str:
    """Upload and return the job's id without waiting for it."""
    events = client.iter_diarize([path])
    job_id = next(events).job_id
    events.close()
    return job_id


def same(a: pb.DiarizationResult, b: pb.DiarizationResult) -> bool:
    a, b = pb.DiarizationResult.FromString(a.SerializeToString()), pb.DiarizationResult.FromString(b.SerializeToString())
    a.job_id = b.job_id = ""
    a.summary.processing_seconds = b.summary.processing_seconds = 0.0
    return a == b


def test_a_job_sent_to_one_front_end_is_watched_cancelled_and_deleted_through_the_other(deployment: Deployment,
                                                                                          samples, long_clip) -> None:
    one, two = (Client(api.address, timeout=120) for api in deployment.apis)
    with one, two:
        job_id = submit(one, samples["call.mp3"])
        events = list(two.watch(job_id))
        assert events[-1].HasField("result") and two.get_result(job_id) == one.get_result(job_id)

        running = submit(one, long_clip)
        deployment.worker_of(running)
        answer = two.cancel(running)  # asked here, landing at the worker's next lease renewal
        assert answer.job_id == running and answer.state == pb.JOB_STATE_RUNNING and answer.cancel_requested
        with pytest.raises(JobCancelledError):
            one.wait(running, timeout=60)
        assert one.list_jobs()[0].state == pb.JOB_STATE_CANCELLED

        assert two.delete(job_id)
        with pytest.raises(NotFoundError):
            one.get_result(job_id)
        assert deployment.rows("SELECT COUNT(*) FROM audio_chunks WHERE job_id IN (%s, %s)", (job_id, running)) == [(0,)]


def test_a_worker_killed_mid_job_is_replaced_and_the_result_equals_a_lone_run(deployment: Deployment, long_clip) -> None:
    with Client(deployment.apis[0].address, timeout=180) as client:
        job_id = submit(client, long_clip)
        victim = deployment.worker_of(job_id)
        while client.list_jobs()[0].progress.percent < 20:  # well into the work
            time.sleep(0.1)
        victim.kill()
        started = time.monotonic()
        result = client.wait(job_id, timeout=120)
        taken_over = time.monotonic() - started
        victim.start()  # for the tests after this one
        [(owner, attempts)] = deployment.rows("SELECT lease_owner, attempts FROM jobs WHERE id = %s", (job_id,))
        assert attempts == 2 and int(owner.split("/")[1]) != victim.process.pid
        assert taken_over >= LEASE_S - 1.0  # not before the dead worker's lease ran out
        lone = client.diarize([long_clip])
        assert same(result, lone)


def test_clients_watching_through_a_front_end_that_is_killed_finish_through_the_other(deployment: Deployment,
                                                                                        long_clip) -> None:
    with Client(deployment.target, timeout=180) as client:
        job_ids = [submit(client, long_clip) for _ in range(2)]
        progress: dict[str, list[float]] = {job_id: [] for job_id in job_ids}
        with ThreadPoolExecutor(2) as pool:
            waits = [pool.submit(client.wait, job_id, on_progress=lambda p, j=job_id: progress[j].append(p.percent))
                     for job_id in job_ids]
            while not all(progress.values()):
                time.sleep(0.05)
            deployment.apis[0].kill()
            results = [w.result(timeout=150) for w in waits]
        deployment.apis[0].start()
    assert [r.job_id for r in results] == job_ids and all(r.clips for r in results)


def test_fifty_concurrent_jobs_are_spread_none_lost_none_run_twice(deployment: Deployment, samples, tmp_path: Path) -> None:
    wav, rate = sf.read(samples["meeting.wav"], dtype="float32")
    short = tmp_path / "short.wav"
    sf.write(short, wav[: 4 * rate], rate)
    with Client(deployment.target, timeout=300) as client, ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: client.diarize([short]), range(50)))
    ids = [r.job_id for r in results]
    assert len(set(ids)) == 50
    rows = deployment.rows("SELECT lease_owner, attempts, state FROM jobs WHERE id = ANY(%s)", (ids,))
    assert len(rows) == 50 and {(attempts, state) for _, attempts, state in rows} == {(1, pb.JOB_STATE_SUCCEEDED)}
    by_worker = {owner.split("/")[1] for owner, _, _ in rows}
    assert by_worker == {str(w.process.pid) for w in deployment.workers}  # both workers took a share


def test_jobs_resume_across_a_database_restart(deployment: Deployment, cluster: Cluster, long_clip) -> None:
    with Client(deployment.target, timeout=180) as client:
        job_id = submit(client, long_clip)
        deployment.worker_of(job_id)
        cluster.stop()  # as a crash would: every server's connection breaks
        time.sleep(1.5)
        cluster.start()
        result = client.wait(job_id, timeout=150)
    assert result.job_id == job_id and result.clips
