"""PostgreSQL under the store (F16), on a real throwaway cluster; SQLite must behave the same."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from conftest import make_config, start_server
from postgres import Cluster
from speakerlink import Client, SpeakerlinkError, UnavailableError
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink_server.audio_store import CHUNK_BYTES, DatabaseAudio
from speakerlink_server.auth import Tenants
from speakerlink_server.database import MIGRATIONS, open_database
from speakerlink_server.main import StartupError
from speakerlink_server.pipeline.linking import Voiceprint
from speakerlink_server.quotas import Quota, Quotas
from speakerlink_server.store import Store
from speakerlink_server.store.voices import NameTaken


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = request.getfixturevalue("postgres") if request.param == "postgresql" else ""
    opened = Store.over(open_database(url, tmp_path / "jobs.sqlite3"))
    yield opened
    opened.close()


def test_the_store_behaves_alike_on_both_databases(store: Store) -> None:
    jobs, leases, voices = store.jobs, store.leases, store.voices
    config = pb.DiarizeConfig(clips=[pb.ClipManifest(name="a.wav", size_bytes=3)])
    ids = [f"{n:032x}" for n in range(3)]
    for job_id in ids:
        jobs.create(job_id, config, 60, "acme")
    jobs.create("f" * 32, config, 60, "globex")
    assert jobs.get(ids[0]).config == config and jobs.get(ids[0]).tenant == "acme"
    first = jobs.newest("acme", 2)
    assert [r.job_id for r in first] == [ids[2], ids[1]]
    assert [r.job_id for r in jobs.newest("acme", 2, (first[-1].created_at, first[-1].job_id))] == [ids[0]]
    assert jobs.queue_position(ids[2]) == 2 and jobs.queued_total() == 4

    # Work under leases: the oldest job first; a lapsed lease is taken over, and only the
    # holder's writes land, once.
    vector = np.array([0.6, 0.8, 0.0])
    taken = leases.claim("w1", 60.0)
    assert taken.job_id == ids[0] and taken.state == pb.JOB_STATE_RUNNING and taken.attempts == 1
    assert leases.claim("w2", 0.0).job_id == ids[1]  # a lease of 0 s lapses at once
    assert leases.claim("w3", 60.0).job_id == ids[1] and jobs.get(ids[1]).attempts == 2
    assert not leases.save_progress(ids[1], "w2", pb.Progress(stage="embed", percent=50.0))
    done = pb.Progress(stage="done", percent=100.0)
    assert not leases.finish(ids[1], "w2", pb.DiarizationResult(job_id=ids[1]), done, "campplus", {"S1": Voiceprint(vector, 9.0)})
    assert store.prints.get(ids[1], "S1") is None  # a dropped result's speakers are not kept either
    assert leases.finish(ids[1], "w3", pb.DiarizationResult(job_id=ids[1]), done, "campplus", {"S1": Voiceprint(vector, 4.0, True, vector)})
    assert not leases.finish(ids[1], "w3", pb.DiarizationResult(job_id=ids[1]), done, "campplus", {})
    assert pb.DiarizationResult.FromString(jobs.get(ids[1]).result).job_id == ids[1]
    assert leases.renew("w1", 60.0) == ({ids[0]}, set())
    jobs.request_cancel(ids[0])  # from any server: w1 hears of it at its next renewal
    assert leases.renew("w1", 60.0) == ({ids[0]}, {ids[0]}) and leases.claim("w4", 60.0).job_id == ids[2]
    assert leases.cancel_running(ids[0], "w1") and jobs.get(ids[0]).state == pb.JOB_STATE_CANCELLED
    leases.release("w4")  # a server stopping hands its jobs back
    assert jobs.get(ids[2]).state == pb.JOB_STATE_QUEUED and jobs.cancel_queued(ids[2])
    assert not jobs.cancel_queued(ids[2]) and jobs.queued("acme") == 0 and jobs.unfinished_ids() == ["f" * 32]
    # A job's TTL counts from its end: the three that ended go 60 s after it, the queued one never.
    assert jobs.expired(time.time() + 50) == [] and sorted(jobs.expired(time.time() + 61)) == ids

    store.ledger.count("acme", 30.0)
    store.ledger.count("acme", 20.0)
    assert store.ledger.seconds_since("acme", 0.0) == 50.0 and store.ledger.seconds_since("globex", 0.0) == 0.0

    engine, kept = store.prints.get(ids[1], "S1")
    assert (engine, kept.speech_seconds) == ("campplus", 4.0) and np.allclose(kept.embedding, vector)
    assert np.allclose(kept.phone, vector)  # a speaker heard through a phone line keeps its phone print
    voices.enroll("acme", "Ann", "campplus", Voiceprint(vector, 5.0))
    lines = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    voices.enroll("acme", "Ann", "campplus", Voiceprint(np.array([0.0, 0.6, 0.8]), 5.0), lines)
    voices.enroll("acme", "Bob", "titanet", Voiceprint(np.array([1.0, 0.0, 0.0]), 3.0))
    ann = voices.get("acme", "Ann")
    assert (ann.enrollments, ann.speech_seconds, ann.engines) == (2, 10.0, ("campplus",))
    [voice] = voices.voiceprints("acme", "campplus")
    assert voice.name == "Ann" and np.allclose(voice.embedding, np.array([0.6, 1.4, 0.8]) / np.linalg.norm([0.6, 1.4, 0.8]))
    assert np.allclose(voice.lines, lines)  # from the one enrollment that took line prints
    with pytest.raises(NameTaken):
        voices.rename("acme", "Ann", "Bob")
    assert voices.rename("acme", "Ann", "Ann Lee") and not voices.rename("acme", "Ann", "X")
    assert voices.get("acme", "Ann Lee").enrollments == 2  # the embeddings followed the name
    assert voices.delete("acme", "Ann Lee") and voices.voiceprints("acme", "campplus") == []
    assert voices.records("globex") == []
    assert jobs.delete(ids[1]) and store.prints.get(ids[1], "S1") is None  # a job's prints go with it


def test_an_admission_stores_its_job_and_counts_its_audio_together_or_not_at_all(store: Store) -> None:
    """The quota ledger and the jobs are separate aggregates over one database: a job stored
    by an admission that then fails is rolled back with it, and its audio is not counted."""
    quotas = Quotas(store, Tenants(None), Quota(max_queued_jobs=1, audio_seconds_per_day=100.0))

    def accept_then_fail() -> None:
        store.jobs.create("a" * 32, pb.DiarizeConfig(), 60, "acme")
        raise RuntimeError("the wake-up after the insert failed")

    with pytest.raises(RuntimeError):
        quotas.admit("acme", 10.0, accept_then_fail)
    assert store.jobs.get("a" * 32) is None and store.ledger.seconds_since("acme", 0.0) == 0.0
    quotas.admit("acme", 10.0, lambda: store.jobs.create("b" * 32, pb.DiarizeConfig(), 60, "acme"))
    assert store.jobs.queued("acme") == 1 and quotas.audio_today("acme") == 10.0


def test_a_server_on_postgres_keeps_jobs_and_voices_beyond_its_data_dir(postgres: str, tmp_path: Path, samples,
                                                                         voices) -> None:
    first = start_server(make_config(tmp_path / "one", database=postgres))
    try:
        with Client(first.config.address) as client:
            result = client.diarize([samples["call.mp3"]])
            client.enroll("Alice", [voices["alice"]])
    finally:
        first.stop(grace=0)
    second = start_server(make_config(tmp_path / "two", database=postgres))  # another data dir, one database
    try:
        with Client(second.config.address) as client:
            assert client.get_result(result.job_id) == result
            assert [v.name for v in client.list_speakers()] == ["Alice"]
    finally:
        second.stop(grace=0)
    with psycopg.connect(postgres) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))  # each migration ran once


def test_a_database_migrated_further_or_unreachable_is_refused(postgres: str, tmp_path: Path) -> None:
    with psycopg.connect(postgres, autocommit=True) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (99)")
    with pytest.raises(StartupError, match="schema version 99"):
        start_server(make_config(tmp_path / "a", database=postgres))
    unreachable = postgres.rsplit("/", 1)[0].rsplit(":", 1)[0] + ":1/postgres"
    with pytest.raises(StartupError, match="cannot open the database at 127.0.0.1:1/postgres"):
        start_server(make_config(tmp_path / "b", database=unreachable))


def test_the_store_waits_out_a_database_restart(cluster: Cluster, postgres: str, tmp_path: Path) -> None:
    store = Store.over(open_database(postgres, tmp_path / "unused.sqlite3"))
    try:
        store.jobs.create("a" * 32, pb.DiarizeConfig(), 60, "")
        store.leases.claim("w", 60.0)
        cluster.stop()  # as a crash would: the store's connection breaks
        comeback = threading.Timer(1.5, cluster.start)
        comeback.start()
        started = time.monotonic()
        assert store.leases.save_progress("a" * 32, "w", pb.Progress(stage="embed", percent=50.0))  # waits for the database
        comeback.join()
        assert time.monotonic() - started >= 1.0
        assert store.jobs.get("a" * 32).progress.percent == 50.0
    finally:
        store.close()


def test_a_database_outage_hands_the_job_back_and_calls_fail_fast(cluster: Cluster, postgres: str, tmp_path: Path,
                                                                    long_clip: Path, samples) -> None:
    """Down for longer than the worker waits: the job goes back to the queue and runs again once
    the database is back; meanwhile calls answer UNAVAILABLE at once, with a retry delay and
    nothing of the database's address or driver."""
    window = 2.0
    running = start_server(make_config(tmp_path, database=postgres, database_reconnect_seconds=window))
    try:
        with Client(running.config.address, timeout=10) as client, psycopg.connect(postgres, autocommit=True) as db:
            events = client.iter_diarize([long_clip])
            job_id = next(events).job_id
            events.close()  # the job runs on without a watcher
            deadline = time.monotonic() + 60
            while pb.Progress.FromString(db.execute("SELECT progress FROM jobs WHERE id = %s", (job_id,))
                                         .fetchone()[0]).percent == 0:  # the worker is at it
                assert time.monotonic() < deadline
                time.sleep(0.05)
            cluster.stop()
            down = time.monotonic()
            refusals: list[SpeakerlinkError] = []
            with pytest.raises(UnavailableError) as caught:
                client.get_result(job_id)
            assert time.monotonic() - down < 2, "answered at once, not at the client's deadline"
            refusals.append(caught.value)
            with pytest.raises(UnavailableError) as caught:
                client.diarize([samples["call.mp3"]], timeout=3)
            refusals.append(caught.value)
            time.sleep(max(0.0, down + window + 2 - time.monotonic()))  # the worker gives the job up
            cluster.start()
            result = client.wait(job_id, timeout=120)
        with psycopg.connect(postgres) as db:
            attempts = db.execute("SELECT attempts FROM jobs WHERE id = %s", (job_id,)).fetchone()[0]
    finally:
        running.stop(grace=0)
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.start()  # for the tests after this one, whatever happened here
    for refusal in refusals:
        assert refusal.code == "DATABASE_UNAVAILABLE" and refusal.retry_after > 0, refusal
        told = " ".join((str(refusal), *refusal.troubleshooting, *refusal.recovery))
        assert not any(leak in told for leak in ("127.0.0.1", postgres.rsplit(":", 1)[-1].split("/")[0], "psycopg",
                                                 "OperationalError", "connection to server")), told
    assert attempts == 2, "handed back to the queue and run again"
    assert result.job_id == job_id and result.clips[0].segments


def test_uploaded_audio_goes_through_the_database_a_chunk_at_a_time(postgres: str, tmp_path: Path) -> None:
    database = open_database(postgres, tmp_path / "unused.sqlite3")
    try:
        received = DatabaseAudio(tmp_path / "front-end", database)
        job_id = "a" * 32
        data = os.urandom(2 * CHUNK_BYTES + 5)
        upload = received.folder(job_id) / "000.wav"
        upload.parent.mkdir(parents=True)
        upload.write_bytes(data)
        received.keep(job_id, [upload])
        assert not upload.exists()  # a front end keeps no copy
        chunks = database.execute("SELECT seq, LENGTH(data) FROM audio_chunks WHERE job_id = ? ORDER BY seq",
                                  (job_id,)).fetchall()
        assert chunks == [(0, CHUNK_BYTES), (1, CHUNK_BYTES), (2, 5)]
        worker = DatabaseAudio(tmp_path / "worker", database)  # another server's data dir
        copy = worker.folder(job_id) / "000.wav"
        assert worker.fetch(job_id, [copy]) and copy.read_bytes() == data
        worker.drop(job_id)
        assert not copy.exists() and not worker.fetch(job_id, [copy])
    finally:
        database.close()
