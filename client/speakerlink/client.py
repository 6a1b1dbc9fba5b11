"""The synchronous SDK: one Client per server, safe to share between threads."""

from __future__ import annotations

import copy
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import grpc

from speakerlink.channel import ROUND_ROBIN, Cert, Tls, Token, TokenStub, channel_credentials, channel_target
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
from speakerlink.live import live_requests
from speakerlink.options import diarize_options, export_request, live_config
from speakerlink.upload import UploadCallback, build_config, manifest, request_stream
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink.v1 import speakerlink_pb2_grpc as pb_grpc

DEFAULT_TARGET = os.environ.get("SPEAKERLINK_SERVER", "localhost:50051")
ProgressCallback = Callable[[pb.Progress], None]
# Results of many long clips can pass gRPC's default 4 MiB receive limit; uploads never do.
CHANNEL_OPTIONS = (("grpc.max_receive_message_length", 256 * 1024 * 1024), ROUND_ROBIN)


class Client:
    """Talks to a speakerlink server.

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
            self._channel = grpc.insecure_channel(channel_target(target), options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.secure_channel(channel_target(target), secure, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.SpeakerlinkStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def with_token(self, token: str) -> Client:
        """This client over the same channel, sending `token` on every call: one channel serves
        many people, each with their own token (the web page). Make the client with token="" so
        that no other goes too. Needs a TLS channel; closing the client it came from closes both."""
        view = copy.copy(self)
        view._stub = TokenStub(self._stub, token)
        return view

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ diarize

    def diarize(
        self,
        paths: Sequence[os.PathLike | str],
        *,
        on_progress: ProgressCallback | None = None,
        on_upload: UploadCallback | None = None,
        timeout: float | None = None,
        **options,
    ) -> pb.DiarizationResult:
        """Upload the clips, wait for the job and return its result.

        Options: num_speakers, min_speakers, max_speakers, link_threshold, engine.
        Raises a SpeakerlinkError subclass for bad input, limits, failed or cancelled jobs.
        """
        for event in self.iter_diarize(paths, on_upload=on_upload, timeout=timeout, **options):
            if event.HasField("progress") and on_progress is not None:
                on_progress(event.progress)
            if is_terminal(event):
                return terminal_outcome(event)
        raise AssertionError("iter_diarize ended without a terminal event")  # pragma: no cover

    def iter_diarize(
        self,
        paths: Sequence[os.PathLike | str],
        *,
        on_upload: UploadCallback | None = None,
        on_retry: RetryCallback | None = None,
        timeout: float | None = None,
        **options,
    ) -> Iterator[pb.JobEvent]:
        """Yield the job's events: accepted, progress..., then one terminal event.

        A busy server's refusal (TOO_MANY_STREAMS, QUEUE_FULL) is retried after the delay it
        asks for, with backoff and jitter, within the deadline; on_retry hears of each wait.
        If the stream breaks after the job was accepted, this reattaches through WatchJob and
        goes on yielding, so a caller sees one uninterrupted stream.
        """
        deadline = Deadline(timeout)
        config = build_config(paths, diarize_options(**options))
        job_id = ""
        dropped: SpeakerlinkError | None = None
        for attempt in itertools.count():
            try:
                call = self._stub.Diarize(request_stream(paths, config, on_upload), timeout=deadline.remaining())
                for event in call:
                    if event.HasField("accepted"):
                        job_id = event.job_id
                    yield event
                    if is_terminal(event):
                        return
                break
            except grpc.RpcError as err:
                error = error_from_rpc(err, job_id)
                delay = None if job_id else busy_delay(error, attempt, deadline)
                if delay is not None:
                    if on_retry is not None:
                        on_retry(error, delay)
                    time.sleep(delay)
                    continue
                if not job_id or err.code() not in REATTACH_CODES:
                    raise error from err
                dropped = error
                break
        if not job_id:
            raise stream_lost("")
        yield from self._reattach(job_id, deadline, on_retry, dropped or stream_lost(job_id))

    # ------------------------------------------------------------------ live

    def live(
        self,
        frames: Iterable[bytes],
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
    ) -> Iterator[pb.StreamEvent]:
        """Stream audio `frames` (bytes) as they are captured and yield the server's events:
        accepted, an update per step of audio (final turns and provisional ones), then the
        result, stored as a job. End `frames` to end the stream. `encoding`: "pcm_s16le"
        (16-bit PCM, channels interleaved), "mulaw" or "alaw" (G.711, a telephony bridge's),
        or "container" (the bytes of an Ogg or WebM Opus, MP3, FLAC or WAV stream as it is
        written; its header gives rate and channels).
        A limit that ends the stream (AUDIO_TOO_LONG, AUDIO_QUOTA, UPLOAD_STALLED) raises after
        the result; the job keeps what was heard."""
        config = live_config(encoding=encoding, sample_rate=sample_rate, channels=channels, latency=latency,
                             max_speakers=max_speakers, recognize=recognize, engine=engine, name=name)
        job_id = ""
        try:
            for event in self._stub.StreamDiarize(live_requests(config, frames), timeout=timeout):
                job_id = event.job_id
                yield event
        except grpc.RpcError as err:
            raise error_from_rpc(err, job_id) from err

    # ------------------------------------------------------------------ jobs

    def watch(
        self, job_id: str, *, timeout: float | None = None, on_retry: RetryCallback | None = None
    ) -> Iterator[pb.JobEvent]:
        """Yield a job's events from where it is now until its terminal event, reattaching on
        drops. Raises UnavailableError (UNREACHABLE) when the server does not answer at first."""
        deadline = Deadline(timeout)
        seconds = connect_seconds(deadline, self.reconnect_seconds)
        if not self._ready(seconds):
            raise unreachable(self.target, seconds, job_id)
        yield from self._reattach(job_id, deadline, on_retry)

    def wait(
        self, job_id: str, *, on_progress: ProgressCallback | None = None, timeout: float | None = None,
        on_retry: RetryCallback | None = None,
    ) -> pb.DiarizationResult:
        """Block until the job ends; return its result or raise its error."""
        for event in self.watch(job_id, timeout=timeout, on_retry=on_retry):
            if event.HasField("progress") and on_progress is not None:
                on_progress(event.progress)
            if is_terminal(event):
                return terminal_outcome(event)
        raise stream_lost(job_id)

    def _reattach(
        self, job_id: str, deadline: Deadline, on_retry: RetryCallback | None, error: SpeakerlinkError | None = None
    ) -> Iterator[pb.JobEvent]:
        """Follow the job through WatchJob until its terminal event, trying again (after `error`, the
        drop that brought the caller here, if any) as events.Reconnect says."""
        reconnect = Reconnect(self.target, job_id, self.reconnect_seconds, deadline)
        busy = 0
        while True:
            if error is not None:
                delay = reconnect.failed(error)
                if on_retry is not None:
                    on_retry(error, delay)
                time.sleep(delay)
            try:
                if self._ready(reconnect.connect_seconds()):
                    call = self._stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=deadline.remaining())
                    for event in call:
                        reconnect.heard()
                        yield event
                        if is_terminal(event):
                            return
                    error = stream_lost(job_id)
                else:
                    error = reconnect.no_answer()
            except grpc.RpcError as err:
                error = error_from_rpc(err, job_id)
                delay = busy_delay(error, busy, deadline)
                if delay is not None:  # too many watchers: wait as the server asks
                    busy += 1
                    if on_retry is not None:
                        on_retry(error, delay)
                    time.sleep(delay)
                    error = None
                    continue
                if err.code() not in REATTACH_CODES:
                    raise error from err

    def _ready(self, seconds: float) -> bool:
        """Whether the channel connects within `seconds`."""
        ready = grpc.channel_ready_future(self._channel)
        try:
            ready.result(timeout=seconds)
        except grpc.FutureTimeoutError:
            ready.cancel()
            return False
        return True

    def info(self) -> pb.ServiceInfo:
        return self._unary(self._stub.GetInfo, pb.GetInfoRequest())

    def get_result(self, job_id: str) -> pb.DiarizationResult:
        return self._unary(self._stub.GetResult, pb.GetResultRequest(job_id=job_id), job_id)

    def export(self, job_id: str, format: str = "json", clip_index: int | None = None) -> pb.ExportResponse:
        """The job's result rendered by the server: json, csv, text, rttm, srt or vtt; all
        clips, or only one. Subtitles of several clips come as one zip."""
        request = export_request(job_id, format, clip_index)
        return self._unary(self._stub.Export, request, job_id)

    def cancel(self, job_id: str) -> pb.JobStatus:
        return self._unary(self._stub.CancelJob, pb.CancelJobRequest(job_id=job_id), job_id)

    def list_jobs(self, limit: int = 50) -> list[pb.JobStatus]:
        """The newest `limit` jobs on the server, newest first, with their state and clip names."""
        jobs: list[pb.JobStatus] = []
        token = ""
        while len(jobs) < limit:
            page = self._unary(self._stub.ListJobs, pb.ListJobsRequest(page_size=min(limit - len(jobs), 500),
                                                                        page_token=token))
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token:
                break
        return jobs

    def delete(self, job_id: str) -> bool:
        return self._unary(self._stub.DeleteJob, pb.DeleteJobRequest(job_id=job_id), job_id).deleted

    # ------------------------------------------------------------------ voice library

    def enroll(self, name: str, paths: Sequence[os.PathLike | str], *, timeout: float | None = None) -> pb.Voice:
        """Enroll `name` from audio of that person alone; a name enrolled before gains the audio.
        Refused when the audio holds no speech (NO_SPEECH), too little (TOO_LITTLE_SPEECH) or
        more than one voice (SEVERAL_VOICES)."""
        config = pb.EnrollConfig(name=name, clips=manifest(paths))
        try:
            return self._stub.EnrollSpeaker(request_stream(paths, config), timeout=timeout)
        except grpc.RpcError as err:
            raise error_from_rpc(err) from err

    def enroll_from_job(self, name: str, job_id: str, speaker: str) -> pb.Voice:
        """Enroll `name` from a speaker (global label, e.g. "S3") of a finished job."""
        request = pb.EnrollFromJobRequest(name=name, job_id=job_id, speaker=speaker)
        return self._unary(self._stub.EnrollFromJob, request, job_id)

    def list_speakers(self) -> list[pb.Voice]:
        """The enrolled voices, by name."""
        return list(self._unary(self._stub.ListSpeakers, pb.ListSpeakersRequest()).speakers)

    def rename_speaker(self, name: str, new_name: str) -> pb.Voice:
        return self._unary(self._stub.RenameSpeaker, pb.RenameSpeakerRequest(name=name, new_name=new_name))

    def delete_speaker(self, name: str) -> bool:
        """Remove the voice and every embedding of it."""
        return self._unary(self._stub.DeleteSpeaker, pb.DeleteSpeakerRequest(name=name)).deleted

    def _unary(self, method, request, job_id: str = ""):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as err:
            raise error_from_rpc(err, job_id) from err
