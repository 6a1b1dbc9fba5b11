"""TLS, tokens and tenants (F15), with certificates the tests make themselves."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile as sf
from certs import Authority, Pem
from conftest import ROOT, make_config, start_server
from grpc_health.v1 import health_pb2, health_pb2_grpc
from speakerlink import (
    AsyncClient,
    AuthenticationError,
    Client,
    LimitExceededError,
    NotFoundError,
    TLSError,
    UnavailableError,
)
from speakerlink.cli import main as cli
from speakerlink.errors import error_from_rpc
from speakerlink.options import diarize_options
from speakerlink.upload import build_config, request_stream
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink_server.auth import ANONYMOUS, Tenants
from speakerlink_server.database import open_database
from speakerlink_server.errors import ServiceError
from speakerlink_server.main import RunningServer, StartupError
from speakerlink_server.quotas import Quota, Quotas
from speakerlink_server.store import Store
from test_contract import reflect


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path  # trusted by nobody here
    server: Pem
    client: Pem


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = Authority(folder, "ca")
    return Pki(ca.pem, Authority(folder, "other-ca").pem, ca.issue("server", server=True), ca.issue("client", server=False))


def write_tenants(path: Path, tokens: dict[str, list[str]]) -> Path:
    path.write_text("".join(
        f'[tenants.{name}]\ntokens = [{", ".join(repr(hashlib.sha256(t.encode()).hexdigest()) for t in ts)}]\n'
        for name, ts in tokens.items()
    ).replace("'", '"'))
    return path


TOKEN_A, TOKEN_B, TOKEN_B2 = (secrets.token_urlsafe(32) for _ in range(3))


@pytest.fixture(scope="module")
def secure(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    folder = tmp_path_factory.mktemp("secure")
    tenants = write_tenants(folder / "tenants.toml", {"acme": [TOKEN_A], "globex": [TOKEN_B, TOKEN_B2]})
    running = start_server(make_config(folder / "data", tls_cert=str(pki.server.cert), tls_key=str(pki.server.key),
                                       tenants_file=str(tenants)))
    yield running
    running.stop(grace=1.0)


def connect(server: RunningServer, pki: Pki, token: str | None, **kwargs) -> Client:
    return Client(f"localhost:{server.config.port}", tls=pki.ca, token=token or "", timeout=10, **kwargs)


def test_tls_with_a_token_diarizes(secure: RunningServer, pki: Pki, samples) -> None:
    with connect(secure, pki, TOKEN_A) as client:
        result = client.diarize([samples["call.mp3"]])
        assert result.summary.clips == 1 and client.get_result(result.job_id) == result


def test_the_async_client_speaks_tls_with_a_token(secure: RunningServer, pki: Pki) -> None:
    async def go() -> None:
        address = f"localhost:{secure.config.port}"
        async with AsyncClient(address, tls=pki.ca, token=lambda: TOKEN_B) as globex:
            assert (await globex.info()).quota.tenant == "globex"
        async with AsyncClient(address, tls=pki.ca, token="") as nobody:
            with pytest.raises(AuthenticationError):
                await nobody.list_jobs()

    asyncio.run(go())


def test_a_certificate_from_another_ca_is_refused(secure: RunningServer, pki: Pki) -> None:
    # By its IP (the certificate names it too): localhost is also ::1, where nothing listens, and
    # gRPC reports only the last of its addresses to fail, refused or untrusted.
    with Client(f"127.0.0.1:{secure.config.port}", tls=pki.other_ca, token=TOKEN_A, timeout=5) as client:
        with pytest.raises(TLSError) as caught:
            client.info()
    assert caught.value.code == "TLS_FAILED" and "CA" in caught.value.troubleshooting[0]


def test_calls_without_a_known_token_are_unauthenticated(secure: RunningServer, pki: Pki) -> None:
    with connect(secure, pki, None) as client, pytest.raises(AuthenticationError) as missing:
        client.info()
    assert missing.value.code == "AUTH_REQUIRED"
    with connect(secure, pki, "not-" + TOKEN_A) as client, pytest.raises(AuthenticationError) as wrong:
        client.list_jobs()
    assert wrong.value.code == "AUTH_INVALID"
    # Health checks need no token, so that a load balancer can probe the server.
    credentials = grpc.ssl_channel_credentials(pki.ca.read_bytes())
    with grpc.secure_channel(f"localhost:{secure.config.port}", credentials) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_a_token_never_travels_in_plaintext() -> None:
    with pytest.raises(ValueError, match="needs TLS"):
        Client("localhost:1", tls=False, token=TOKEN_A)


def test_another_tenants_job_is_not_found(secure: RunningServer, pki: Pki, samples) -> None:
    with connect(secure, pki, TOKEN_A) as acme, connect(secure, pki, TOKEN_B) as globex:
        job = acme.diarize([samples["call.mp3"]]).job_id
        attempts = {
            "result": lambda: globex.get_result(job),
            "export": lambda: globex.export(job, "rttm"),
            "watch": lambda: list(globex.watch(job, timeout=10)),
            "cancel": lambda: globex.cancel(job),
            "delete": lambda: globex.delete(job),
        }
        for name, attempt in attempts.items():
            with pytest.raises(NotFoundError) as caught:
                attempt()
            assert caught.value.code == "JOB_NOT_FOUND", name
        assert job not in {j.job_id for j in globex.list_jobs(limit=500)}
        assert job in {j.job_id for j in acme.list_jobs(limit=500)}
        assert acme.get_result(job).job_id == job  # untouched by the attempts


def test_mutual_tls_needs_a_client_certificate(pki: Pki, tmp_path: Path) -> None:
    running = start_server(make_config(tmp_path, tls_cert=str(pki.server.cert), tls_key=str(pki.server.key),
                                       tls_client_ca=str(pki.ca), tenants_file=str(write_tenants(
                                           tmp_path / "t.toml", {"acme": [TOKEN_A]})), anonymous_info=True))
    try:
        with connect(running, pki, TOKEN_A, cert=(pki.client.cert, pki.client.key)) as client:
            assert client.list_jobs() == []
        with connect(running, pki, None, cert=(pki.client.cert, pki.client.key)) as client:
            assert client.info().version  # anonymous_info: GetInfo answers without a token
            with pytest.raises(AuthenticationError):
                client.list_jobs()
        credentials = grpc.ssl_channel_credentials(pki.ca.read_bytes(), pki.client.key.read_bytes(),
                                                   pki.client.cert.read_bytes())
        with grpc.secure_channel(f"localhost:{running.config.port}", credentials) as channel:
            for package in ("grpc.reflection.v1", "grpc.reflection.v1alpha"):  # and so does reflection
                assert reflect(channel, package, list_services="").list_services_response.service
        with connect(running, pki, TOKEN_A) as client, pytest.raises(UnavailableError):
            client.info()
    finally:
        running.stop(grace=0)


def test_a_revoked_token_is_refused_after_a_reload(pki: Pki, tmp_path: Path) -> None:
    tenants = write_tenants(tmp_path / "tenants.toml", {"acme": [TOKEN_A], "globex": [TOKEN_B]})
    log = tmp_path / "server.log"
    served = subprocess.Popen(
        [sys.executable, "-m", "speakerlink_server", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--titanet-model", "", "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key),
         "--tenants-file", str(tenants)],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True, cwd=ROOT,
    )
    try:
        port = int(served.stdout.readline().rsplit(":", 1)[-1])
        address = f"localhost:{port}"
        with Client(address, tls=pki.ca, token=TOKEN_B, timeout=10) as globex:
            assert globex.list_jobs() == []
            write_tenants(tenants, {"acme": [TOKEN_A]})
            served.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while "tenants file reloaded" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            with pytest.raises(AuthenticationError) as caught:
                globex.list_jobs()
            assert caught.value.code == "AUTH_INVALID"
        with Client(address, tls=pki.ca, token=TOKEN_A, timeout=10) as acme:
            assert acme.list_jobs() == []
    finally:
        served.terminate()
        assert served.wait(60) == 0, log.read_text()


def test_the_token_appears_in_no_log_error_or_result(pki: Pki, tmp_path: Path, samples, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    running = start_server(make_config(tmp_path, tls_cert=str(pki.server.cert), tls_key=str(pki.server.key),
                                       tenants_file=str(write_tenants(tmp_path / "t.toml", {"acme": [TOKEN_A]}))))
    seen: list[str] = []
    try:
        with connect(running, pki, TOKEN_A) as client:
            result = client.diarize([samples["call.mp3"]], on_progress=lambda p: seen.append(str(p)))
            seen += [client.export(result.job_id, f).content.decode() for f in ("json", "rttm", "csv", "text")]
            seen.append(repr(client._channel))
        for token in (TOKEN_A[:-1] + "x", ""):
            with connect(running, pki, token) as client, pytest.raises(AuthenticationError) as caught:
                client.get_result(result.job_id)
            seen += [str(caught.value), caught.value.describe()]
    finally:
        running.stop(grace=0)
    assert result.job_id in caplog.text  # the whole job was logged
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "authentication" in r.getMessage()]
    assert any(re.fullmatch(r"authentication failed \(AUTH_INVALID\) from ipv[46]:\S+", m) for m in refusals), refusals
    assert any(re.fullmatch(r"authentication failed \(AUTH_REQUIRED\) from ipv[46]:\S+", m) for m in refusals), refusals
    for text in (caplog.text, result.SerializeToString().decode("latin-1"), *seen):
        assert TOKEN_A not in text and TOKEN_A[:-1] not in text


def test_exposed_addresses_need_tls_and_tokens(pki: Pki, tmp_path: Path, caplog) -> None:
    with pytest.raises(StartupError, match="not loopback"):
        start_server(make_config(tmp_path, host="0.0.0.0"))
    with pytest.raises(StartupError, match="not loopback"):
        start_server(make_config(tmp_path, host="0.0.0.0", tls_cert=str(pki.server.cert), tls_key=str(pki.server.key)))
    with pytest.raises(StartupError, match="needs TLS"):
        start_server(make_config(tmp_path, tenants_file=str(write_tenants(tmp_path / "t.toml", {"acme": [TOKEN_A]}))))
    running = start_server(make_config(tmp_path, host="0.0.0.0", insecure=True))
    running.stop(grace=0)
    assert "INSECURE" in caplog.text


def test_the_cli_speaks_tls_with_a_token_file(secure: RunningServer, pki: Pki, tmp_path: Path, capsys) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN_B + "\n")
    address = f"localhost:{secure.config.port}"
    assert cli(["jobs", "--server", address, "--tls-ca", str(pki.ca), "--token-file", str(token_file)]) == 0
    assert cli(["--server", address, "--tls-ca", str(pki.ca), "jobs"]) == 1
    assert "AUTH_REQUIRED" in capsys.readouterr().err


def test_a_token_that_cannot_travel_says_what_is_wrong_before_any_call(secure: RunningServer, pki: Pki,
                                                                        tmp_path: Path, capsys) -> None:
    address = f"localhost:{secure.config.port}"
    token_file = tmp_path / "token"
    for text, said in ((f"{TOKEN_A}\n{TOKEN_B}\n", "2 lines"), (f"{TOKEN_A}é", "a non-ASCII character at position 44")):
        token_file.write_text(text, encoding="utf-8")
        assert cli(["jobs", "--server", address, "--tls-ca", str(pki.ca), "--token-file", str(token_file)]) == 2
        err = capsys.readouterr().err
        assert said in err and "UNAVAILABLE" not in err and TOKEN_A not in err, err
    with pytest.raises(ValueError, match="a control character"):
        Client(address, tls=pki.ca, token=TOKEN_A + "\x7f")
    with Client(address, tls=pki.ca, token=lambda: TOKEN_A + "\n", timeout=10) as client, \
            pytest.raises(UnavailableError, match="printable ASCII"):  # a token source is checked at each call
        client.list_jobs()


def test_a_watch_ends_when_its_token_is_revoked(pki: Pki, tmp_path: Path, long_clip: Path) -> None:
    tenants = write_tenants(tmp_path / "tenants.toml", {"acme": [TOKEN_A], "globex": [TOKEN_B]})
    running = start_server(make_config(tmp_path / "data", tls_cert=str(pki.server.cert), tls_key=str(pki.server.key),
                                       tenants_file=str(tenants)))
    try:
        with connect(running, pki, TOKEN_B) as globex:
            events = globex.iter_diarize([long_clip], timeout=120)
            job_id = next(events).job_id
            watch = globex.watch(job_id, timeout=120)
            next(watch)
            write_tenants(tenants, {"acme": [TOKEN_A]})
            assert running.tenants.reload()  # what SIGHUP does
            revoked = time.monotonic()
            for stream in (events, watch):
                with pytest.raises(AuthenticationError) as caught:
                    for event in stream:
                        assert not event.HasField("result"), "the stream went on after its token was revoked"
                assert caught.value.code == "AUTH_INVALID"
            assert time.monotonic() - revoked < 5
            assert running.store.jobs.get(job_id).state == pb.JOB_STATE_RUNNING  # the job itself goes on
    finally:
        running.stop(grace=0)


def test_a_data_dir_from_before_tenants_opens(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, state INTEGER NOT NULL, created_at REAL NOT NULL,"
                   " updated_at REAL NOT NULL, expires_at REAL NOT NULL, config BLOB NOT NULL, progress BLOB NOT NULL,"
                   " result BLOB, error BLOB)")
        db.execute("INSERT INTO jobs VALUES ('a' , 3, 1.0, 1.0, 9e9, x'', x'', NULL, NULL)")
    store = Store.over(open_database("", tmp_path / "jobs.sqlite3"))
    try:
        assert [r.job_id for r in store.jobs.newest("", 10)] == ["a"] and store.jobs.newest("acme", 10) == []
    finally:
        store.close()


def test_a_tenants_daily_audio_is_enforced_end_to_end(pki: Pki, tmp_path: Path, samples) -> None:
    tenants = tmp_path / "tenants.toml"
    write_tenants(tenants, {"acme": [TOKEN_A], "globex": [TOKEN_B]})
    tenants.write_text(tenants.read_text().replace('[tenants.globex]', 'audio_seconds_per_day = 60\n[tenants.globex]'))
    running = start_server(make_config(tmp_path / "data", tls_cert=str(pki.server.cert), tls_key=str(pki.server.key),
                                       tenants_file=str(tenants)))
    try:
        with connect(running, pki, TOKEN_A) as acme, connect(running, pki, TOKEN_B) as globex:
            seconds = acme.diarize([samples["call.mp3"]]).summary.audio_seconds
            assert 30 < seconds < 60  # one clip fits the quota, two do not
            quota = acme.info().quota
            assert (quota.tenant, quota.audio_seconds_per_day, quota.max_queued_jobs) == ("acme", 60, 8)
            assert quota.audio_seconds_used == pytest.approx(seconds, abs=0.5)
            acme.delete(acme.list_jobs()[0].job_id)  # a deleted job's audio still counts
            with pytest.raises(LimitExceededError) as caught:
                acme.diarize([samples["call.mp3"]], timeout=60)
            assert caught.value.code == "AUDIO_QUOTA" and caught.value.retry_after > 3600
            assert globex.diarize([samples["call.mp3"]]).summary.clips == 1  # other tenants are not held back
            assert globex.info().quota.audio_seconds_per_day == 0  # the server's default: no limit
    finally:
        running.stop(grace=0)


def tenants_server(pki: Pki, folder: Path, settings: dict[str, str], **config) -> RunningServer:
    """A TLS server for acme (TOKEN_A) and globex (TOKEN_B), with each tenant's own settings
    (tenants file lines, e.g. {"acme": "max_uploads = 1"})."""
    tenants = write_tenants(folder / "tenants.toml", {"acme": [TOKEN_A], "globex": [TOKEN_B]})
    text = tenants.read_text()
    for name, lines in settings.items():
        text = text.replace(f"[tenants.{name}]\n", f"[tenants.{name}]\n{lines}\n")
    tenants.write_text(text)
    return start_server(make_config(folder / "data", tls_cert=str(pki.server.cert), tls_key=str(pki.server.key),
                                    tenants_file=str(tenants), **config))


def test_audio_that_declares_no_length_is_charged_its_decoded_length(pki: Pki, tmp_path: Path, samples) -> None:
    no_xing = tmp_path / "no-xing.mp3"  # a CBR MP3 without a Xing header declares no length
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(samples["call.mp3"]), "-c:a", "libmp3lame", "-b:a", "64k",
                    "-write_xing", "0", str(no_xing)], check=True)
    running = tenants_server(pki, tmp_path, {"acme": "audio_seconds_per_day = 60"})
    try:
        with connect(running, pki, TOKEN_A) as acme:
            seconds = acme.diarize([no_xing]).summary.audio_seconds
            assert 30 < seconds < 60
            assert acme.info().quota.audio_seconds_used == pytest.approx(seconds, abs=0.5)
            with pytest.raises(LimitExceededError) as caught:
                acme.diarize([no_xing], timeout=60)
            assert caught.value.code == "AUDIO_QUOTA"
    finally:
        running.stop(grace=0)


def test_enrollment_counts_its_audio_holds_its_upload_slot_and_waits_for_a_worker(pki: Pki, tmp_path: Path, samples,
                                                                                  long_clip: Path, voices) -> None:
    running = tenants_server(pki, tmp_path, {"acme": "max_uploads = 1\naudio_seconds_per_day = 3600"}, workers=1)
    ended: dict[str, float] = {}
    try:
        with connect(running, pki, TOKEN_A) as acme, connect(running, pki, TOKEN_B) as globex:
            def job() -> None:  # globex's job takes the one worker for a few seconds
                globex.diarize([long_clip], timeout=300)
                ended["job"] = time.monotonic()

            def enroll() -> None:
                acme.enroll("Alice", [voices["alice"]], timeout=300)
                ended["enrollment"] = time.monotonic()

            threads = [threading.Thread(target=job)]
            threads[0].start()
            deadline = time.monotonic() + 30
            while running.store.jobs.queued_total() or not running.store.jobs.unfinished_ids():
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.05)  # until the worker has taken the job
            threads.append(threading.Thread(target=enroll))
            threads[1].start()
            time.sleep(1.0)  # its upload is in; its embedding waits for the worker's slot
            with pytest.raises(LimitExceededError) as caught:
                acme.diarize([samples["call.mp3"]], timeout=3)
            assert caught.value.code == "TENANT_UPLOADS"  # the enrollment still holds acme's one upload
            for thread in threads:
                thread.join(300)
            assert ended["enrollment"] > ended["job"], "the enrollment ran beside the job, outside the workers"
            alice = sf.info(voices["alice"]).duration
            assert acme.info().quota.audio_seconds_used == pytest.approx(alice, abs=0.1)
    finally:
        running.stop(grace=0)


def test_streams_are_shared_between_tenants_and_watchers_leave_room_for_uploads(pki: Pki, tmp_path: Path,
                                                                              long_clip: Path, samples) -> None:
    longer = tmp_path / "longer.flac"  # keeps the one worker busy for the whole test
    sf.write(longer, np.tile(sf.read(long_clip, dtype="float32")[0], 3), 16000)
    # 10 streams; watchers may hold 7 of them; each tenant 3, but globex 8.
    running = tenants_server(pki, tmp_path, {"globex": "max_streams = 8"}, workers=1, max_streams=10,
                             tenant_max_streams=3)
    calls: list[grpc.Future] = []

    def diarize(client: Client, path: Path) -> str:
        call = client._stub.Diarize(request_stream([path], build_config([path], diarize_options()), None))
        calls.append(call)
        return next(call).job_id

    def watch(client: Client, job_id: str) -> str:
        call = client._stub.WatchJob(pb.WatchJobRequest(job_id=job_id))
        calls.append(call)
        try:
            next(call)
        except grpc.RpcError as err:
            return error_from_rpc(err).code
        return "watching"

    try:
        with connect(running, pki, TOKEN_A) as acme, connect(running, pki, TOKEN_B) as globex:
            job = diarize(acme, longer)
            assert [watch(acme, job) for _ in range(3)] == ["watching", "watching", "TENANT_STREAMS"]
            job = diarize(globex, long_clip)  # queued behind acme's
            assert [watch(globex, job) for _ in range(6)] == ["watching"] * 5 + ["TOO_MANY_STREAMS"]
            assert diarize(globex, samples["call.mp3"])  # 9 of 10 streams open, 7 of them watchers
    finally:
        for call in calls:
            call.cancel()
        running.stop(grace=0)


def test_uploads_and_waiting_jobs_are_bounded_per_tenant(tmp_path: Path) -> None:
    tenants_file = write_tenants(tmp_path / "tenants.toml", {"acme": [TOKEN_A], "globex": [TOKEN_B]})
    tenants_file.write_text(tenants_file.read_text().replace('[tenants.globex]', 'max_uploads = 1\n[tenants.globex]'))
    store = Store.over(open_database("", tmp_path / "jobs.sqlite3"))
    quotas = Quotas(store, Tenants(tenants_file), Quota(max_uploads=4, max_queued_jobs=2))
    try:
        with quotas.upload("acme"):
            with pytest.raises(ServiceError) as uploads:
                with quotas.upload("acme"):
                    pass
            assert uploads.value.code == "TENANT_UPLOADS" and uploads.value.retry_after > 0
            with quotas.upload("globex"), quotas.upload("globex"):  # the server's default: 4
                pass
        with quotas.upload("acme"):  # the slot came back
            pass
        for n in range(2):
            quotas.admit("acme", 1.0, lambda n=n: store.jobs.create(f"{n:032x}", pb.DiarizeConfig(), 60, "acme"))
        with pytest.raises(ServiceError) as queued:
            quotas.admit("acme", 1.0, lambda: pytest.fail("a third job was accepted"))
        assert queued.value.code == "TENANT_QUEUE_FULL" and queued.value.retry_after > 0
        with pytest.raises(ServiceError, match="2 jobs waiting"):
            quotas.precheck("acme")  # refused before its upload, too
        quotas.admit("globex", 1.0, lambda: store.jobs.create("f" * 32, pb.DiarizeConfig(), 60, "globex"))
        assert quotas.quota(ANONYMOUS) == Quota()  # a server without tenants: its own limits alone
    finally:
        store.close()


def test_a_broken_tenants_file_is_refused_and_keeps_the_tokens_in_force(pki: Pki, tmp_path: Path) -> None:
    tenants_file = write_tenants(tmp_path / "tenants.toml", {"acme": [TOKEN_A]})
    tenants = Tenants(tenants_file)
    tenants_file.write_text(f'[tenants.acme]\ntokens = ["{TOKEN_A}"]\n')  # the token itself, not its hash
    assert not tenants.reload()
    assert tenants.tenant((("authorization", f"Bearer {TOKEN_A}"),)) == "acme"
    with pytest.raises(StartupError, match="SHA-256 hex digests"):
        start_server(make_config(tmp_path / "data", tls_cert=str(pki.server.cert), tls_key=str(pki.server.key),
                                 tenants_file=str(tenants_file)))


def test_voices_belong_to_their_tenant(secure: RunningServer, pki: Pki, samples, voices) -> None:
    with connect(secure, pki, TOKEN_A) as acme, connect(secure, pki, TOKEN_B) as globex:
        acme.enroll("Alice", [voices["alice"]])
        assert [v.name for v in acme.list_speakers()] == ["Alice"] and globex.list_speakers() == []
        for attempt in (lambda: globex.delete_speaker("Alice"), lambda: globex.rename_speaker("Alice", "Eve")):
            with pytest.raises(NotFoundError) as caught:
                attempt()
            assert caught.value.code == "VOICE_NOT_FOUND"
        assert not any(s.name for s in globex.diarize([samples["meeting.wav"]]).speakers)
        job = acme.diarize([samples["meeting.wav"]])
        assert [s.name for s in job.speakers if s.name] == ["Alice"]
        with pytest.raises(NotFoundError) as foreign:
            globex.enroll_from_job("Alice", job.job_id, job.speakers[0].label)
        assert foreign.value.code == "JOB_NOT_FOUND"
        assert acme.delete_speaker("Alice")


def test_a_live_stream_is_a_tenants_upload_its_audio_counts_and_its_job_is_theirs(pki: Pki, tmp_path: Path,
                                                                                  samples) -> None:
    wav, _ = sf.read(samples["meeting.wav"], dtype="float32")
    pcm = (wav * 32767).astype("<i2").tobytes()
    frames = [pcm[i : i + 3200] for i in range(0, len(pcm), 3200)]  # 36.5 s in frames of 0.1 s
    running = tenants_server(pki, tmp_path, {"acme": "max_uploads = 1\naudio_seconds_per_day = 25"})
    try:
        with connect(running, pki, TOKEN_A) as acme, connect(running, pki, TOKEN_B) as globex:
            gate = threading.Event()

            def held() -> Iterator[bytes]:  # a stream that waits after its first frames
                yield from frames[:10]
                gate.wait(30)

            first = acme.live(held())
            assert next(first).HasField("accepted")
            with pytest.raises(LimitExceededError) as caught:  # the stream holds acme's one upload slot
                list(acme.live(frames[:10]))
            assert caught.value.code == "TENANT_UPLOADS"
            gate.set()
            assert list(first)[-1].HasField("result")

            events = []
            with pytest.raises(LimitExceededError) as caught:  # 1 s heard, 24 s left of the day's 25
                for event in acme.live(frames):
                    events.append(event)
            assert caught.value.code == "AUDIO_QUOTA"
            result = events[-1].result  # what was heard before the quota is a job all the same
            assert result.summary.audio_seconds == pytest.approx(24.0, abs=0.15)
            assert acme.info().quota.audio_seconds_used == pytest.approx(25.0, abs=0.15)
            assert acme.get_result(result.job_id) == result
            with pytest.raises(NotFoundError):
                globex.get_result(result.job_id)  # another tenant's job is not there for globex
            assert result.job_id not in {j.job_id for j in globex.list_jobs()}
    finally:
        running.stop(grace=0)
