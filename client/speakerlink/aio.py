"""The asyncio SDK: the same calls as Client, awaited."""

from __future__ import annotations

import asyncio
import copy
import itertools
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence

import grpc
import grpc.aio

from speakerlink.channel import Cert, Tls, Token, TokenStub, channel_credentials, channel_target
from speakerlink.client import CHANNEL_OPTIONS, DEFAULT_TARGET, ProgressCallback
from speakerlink.errors import SpeakerlinkError, error_from_rpc
from speakerlink.events import (
    REATTACH_CODES,
    RECONNECT_SECONDS,
    Deadline,
    Reconnect,
    RetryCallback,
    busy_delay,
    connect_seconds,
    is_terminal,
    stream_lost,
    terminal_outcome,
    unreachable,
)
from speakerlink.live import live_requests_async
from speakerlink.options import diarize_options, export_request, live_config
from speakerlink.upload import UploadCallback, build_config, manifest, request_stream
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink.v1 import speakerlink_pb2_grpc as pb_grpc


class AsyncClient:
    """Async counterpart of speakerlink.Client; use as `async with AsyncClient(target) as c:`.

    `timeout` is the default deadline in seconds for the short calls (info, result, export,
    cancel, delete); diarize() and watch() take their own, covering the whole job. When a
    job's stream breaks, they try to reach the server again for `reconnect_seconds`, then raise
    UnavailableError (UNREACHABLE) with the job's id. `tls`, `cert` and `token` secure the
    channel (speakerlink.channel); `credentials` takes ready-made grpc.ChannelCredentials
    instead of tls and cert.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = 30.0,
        reconnect_seconds: float = RECONNECT_SECONDS,
        tls: Tls = None,
        cert: Cert = None,
        token: Token = None,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.reconnect_seconds = reconnect_seconds
        secure = channel_credentials(tls, cert, token, credentials)
        if secure is None:
            self._channel = grpc.aio.insecure_channel(channel_target(target), options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.secure_channel(channel_target(target), secure, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.SpeakerlinkStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    def with_token(self, token: str) -> AsyncClient:
        """This client over the same channel, sending `token` on every call: one channel serves
        many people, each with their own token (the web page). Make the client with token="" so
        that no other goes too. Needs a TLS channel; closing the client it came from closes both."""
        view = copy.copy(self)
        view._stub = TokenStub(self._stub, token)
        return view

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def diarize(
        self,
        paths: Sequence[os.PathLike | str],
        *,
        on_progress: ProgressCallback | None = None,
        on_upload: UploadCallback | None = None,
        timeout: float | None = None,
        **options,
    ) -> pb.DiarizationResult:
        async for event in self.iter_diarize(paths, on_upload=on_upload, timeout=timeout, **options):
            if event.HasField("progress") and on_progress is not None:
                on_progress(event.progress)
            if is_terminal(event):
                return terminal_outcome(event)
        raise AssertionError("iter_diarize ended without a terminal event")  # pragma: no cover

    async def iter_diarize(
        self,
        paths: Sequence[os.PathLike | str],
        *,
        on_upload: UploadCallback | None = None,
        on_retry: RetryCallback | None = None,
        timeout: float | None = None,
        **options,
    ) -> AsyncIterator[pb.JobEvent]:
        """As Client.iter_diarize: busy refusals retried within the deadline, drops reattached."""
        deadline = Deadline(timeout)
        config = await asyncio.to_thread(build_config, paths, diarize_options(**options))  # hashes the files
        job_id = ""
        dropped: SpeakerlinkError | None = None
        for attempt in itertools.count():
            try:
                call = self._stub.Diarize(request_stream(paths, config, on_upload), timeout=deadline.remaining())
                async for event in call:
                    if event.HasField("accepted"):
                        job_id = event.job_id
                    yield event
                    if is_terminal(event):
                        return
                break
            except grpc.aio.AioRpcError as err:
                error = error_from_rpc(err, job_id)
                delay = None if job_id else busy_delay(error, attempt, deadline)
                if delay is not None:
                    if on_retry is not None:
                        on_retry(error, delay)
                    await asyncio.sleep(delay)
                    continue
                if not job_id or err.code() not in REATTACH_CODES:
                    raise error from err
                dropped = error
                break
        if not job_id:
            raise stream_lost("")
        async for event in self._reattach(job_id, deadline, on_retry, dropped or stream_lost(job_id)):
            yield event

    # ------------------------------------------------------------------ live

    async def live(
        self,
        frames: Iterable[bytes] | AsyncIterable[bytes],
        *,
        encoding: str = "pcm_s16le",
        sample_rate: int = 16000,
        channels: int = 1,
        latency: float = 2.0,
        max_speakers: int | None = None,
        recognize: bool = True,
        engine: str = "",
        name: str = "",
        timeout: float | None = None,
    ) -> AsyncIterator[pb.StreamEvent]:
        """As Client.live; `frames` may also be an async iterable (a web socket's messages, a
        telephony bridge's media), read as the server takes them."""
        config = live_config(encoding=encoding, sample_rate=sample_rate, channels=channels, latency=latency,
                             max_speakers=max_speakers, recognize=recognize, engine=engine, name=name)
        job_id = ""
        try:
            async for event in self._stub.StreamDiarize(live_requests_async(config, frames), timeout=timeout):
                job_id = event.job_id
                yield event
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err, job_id) from err

    async def watch(
        self, job_id: str, *, timeout: float | None = None, on_retry: RetryCallback | None = None
    ) -> AsyncIterator[pb.JobEvent]:
        """Yield a job's events from where it is now until its terminal event, reattaching on
        drops. Raises UnavailableError (UNREACHABLE) when the server does not answer at first."""
        deadline = Deadline(timeout)
        seconds = connect_seconds(deadline, self.reconnect_seconds)
        if not await self._ready(seconds):
            raise unreachable(self.target, seconds, job_id)
        async for event in self._reattach(job_id, deadline, on_retry):
            yield event

    async def wait(
        self, job_id: str, *, on_progress: ProgressCallback | None = None, timeout: float | None = None,
        on_retry: RetryCallback | None = None,
    ) -> pb.DiarizationResult:
        """Wait until the job ends; return its result or raise its error."""
        async for event in self.watch(job_id, timeout=timeout, on_retry=on_retry):
            if event.HasField("progress") and on_progress is not None:
                on_progress(event.progress)
            if is_terminal(event):
                return terminal_outcome(event)
        raise stream_lost(job_id)

    async def _reattach(
        self, job_id: str, deadline: Deadline, on_retry: RetryCallback | None, error: SpeakerlinkError | None = None
    ) -> AsyncIterator[pb.JobEvent]:
        """Follow the job through WatchJob until its terminal event, trying again (after `error`, the
        drop that brought the caller here, if any) as events.Reconnect says."""
        reconnect = Reconnect(self.target, job_id, self.reconnect_seconds, deadline)
        busy = 0
        while True:
            if error is not None:
                delay = reconnect.failed(error)
                if on_retry is not None:
                    on_retry(error, delay)
                await asyncio.sleep(delay)
            try:
                if await self._ready(reconnect.connect_seconds()):
                    call = self._stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=deadline.remaining())
                    async for event in call:
                        reconnect.heard()
                        yield event
                        if is_terminal(event):
                            return
                    error = stream_lost(job_id)
                else:
                    error = reconnect.no_answer()
            except grpc.aio.AioRpcError as err:
                error = error_from_rpc(err, job_id)
                delay = busy_delay(error, busy, deadline)
                if delay is not None:  # too many watchers: wait as the server asks
                    busy += 1
                    if on_retry is not None:
                        on_retry(error, delay)
                    await asyncio.sleep(delay)
                    error = None
                    continue
                if err.code() not in REATTACH_CODES:
                    raise error from err

    async def _ready(self, seconds: float) -> bool:
        """Whether the channel connects within `seconds`."""
        try:
            await asyncio.wait_for(self._channel.channel_ready(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def info(self) -> pb.ServiceInfo:
        return await self._unary(self._stub.GetInfo, pb.GetInfoRequest())

    async def get_result(self, job_id: str) -> pb.DiarizationResult:
        return await self._unary(self._stub.GetResult, pb.GetResultRequest(job_id=job_id), job_id)

    async def export(self, job_id: str, format: str = "json", clip_index: int | None = None) -> pb.ExportResponse:
        request = export_request(job_id, format, clip_index)
        return await self._unary(self._stub.Export, request, job_id)

    async def cancel(self, job_id: str) -> pb.JobStatus:
        return await self._unary(self._stub.CancelJob, pb.CancelJobRequest(job_id=job_id), job_id)

    async def list_jobs(self, limit: int = 50) -> list[pb.JobStatus]:
        """The newest `limit` jobs on the server, newest first, with their state and clip names."""
        jobs: list[pb.JobStatus] = []
        token = ""
        while len(jobs) < limit:
            page = await self._unary(self._stub.ListJobs, pb.ListJobsRequest(page_size=min(limit - len(jobs), 500),
                                                                              page_token=token))
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token:
                break
        return jobs

    async def delete(self, job_id: str) -> bool:
        response = await self._unary(self._stub.DeleteJob, pb.DeleteJobRequest(job_id=job_id), job_id)
        return response.deleted

    # ------------------------------------------------------------------ voice library

    async def enroll(self, name: str, paths: Sequence[os.PathLike | str], *, timeout: float | None = None) -> pb.Voice:
        """Enroll `name` from audio of that person alone; a name enrolled before gains the audio.
        Refused when the audio holds no speech (NO_SPEECH), too little (TOO_LITTLE_SPEECH) or
        more than one voice (SEVERAL_VOICES)."""
        config = pb.EnrollConfig(name=name, clips=await asyncio.to_thread(manifest, paths))
        try:
            return await self._stub.EnrollSpeaker(request_stream(paths, config), timeout=timeout)
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err) from err

    async def enroll_from_job(self, name: str, job_id: str, speaker: str) -> pb.Voice:
        """Enroll `name` from a speaker (global label, e.g. "S3") of a finished job."""
        request = pb.EnrollFromJobRequest(name=name, job_id=job_id, speaker=speaker)
        return await self._unary(self._stub.EnrollFromJob, request, job_id)

    async def list_speakers(self) -> list[pb.Voice]:
        """The enrolled voices, by name."""
        return list((await self._unary(self._stub.ListSpeakers, pb.ListSpeakersRequest())).speakers)

    async def rename_speaker(self, name: str, new_name: str) -> pb.Voice:
        return await self._unary(self._stub.RenameSpeaker, pb.RenameSpeakerRequest(name=name, new_name=new_name))

    async def delete_speaker(self, name: str) -> bool:
        """Remove the voice and every embedding of it."""
        return (await self._unary(self._stub.DeleteSpeaker, pb.DeleteSpeakerRequest(name=name))).deleted

    async def _unary(self, method, request, job_id: str = ""):
        try:
            return await method(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err, job_id) from err

