"""The gRPC face of the service: each RPC checks its input and hands off to jobs and store."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
from speakerlink.ids import JOB_ID, new_job_id
from speakerlink.options import EXPORT_FORMATS
from speakerlink.v1 import speakerlink_pb2 as pb
from speakerlink.v1 import speakerlink_pb2_grpc as pb_grpc

from speakerlink_server import __version__, errors
from speakerlink_server.audio_store import AudioStore
from speakerlink_server.auth import Tenants
from speakerlink_server.config import ServerConfig
from speakerlink_server.engines.registry import Engines
from speakerlink_server.enrollment import check_length, check_name, check_speech, voice_from_audio
from speakerlink_server.exporters import export
from speakerlink_server.jobs import JobManager
from speakerlink_server.live_stream import LiveStreams
from speakerlink_server.pipeline import audio
from speakerlink_server.pipeline.run import ClipInput
from speakerlink_server.quotas import Quotas
from speakerlink_server.store import Store
from speakerlink_server.store.jobs import JobRecord
from speakerlink_server.store.voices import NameTaken
from speakerlink_server.uploads import (
    MAX_CHUNK_BYTES,
    MAX_SPEAKERS,
    IdleLimitedStream,
    StoredClip,
    check_durations,
    receive_clips,
    validate_config,
    validate_manifest,
)

log = logging.getLogger(__name__)
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 500
# The part of max_streams that WatchJob calls may hold: the rest stays for uploads, so that
# watchers, which cost nothing to open, never starve the calls that bring work.
WATCHERS_SHARE = 0.75


class SpeakerlinkServicer(pb_grpc.SpeakerlinkServicer):
    def __init__(
        self, config: ServerConfig, store: Store, jobs: JobManager, audio: AudioStore, engines: Engines,
        tenants: Tenants, quotas: Quotas,
    ) -> None:
        self._config = config
        self._audio = audio
        self._tenants = tenants
        self._quotas = quotas
        self._store = store
        self._jobs = jobs
        self._engines = engines
        self._streams = threading.BoundedSemaphore(config.max_streams)
        self._watchers = threading.BoundedSemaphore(max(1, int(config.max_streams * WATCHERS_SHARE)))
        self._live = LiveStreams(config, store, engines, tenants, quotas)

    def GetInfo(self, request: pb.GetInfoRequest, context: grpc.ServicerContext) -> pb.ServiceInfo:
        c = self._config
        return pb.ServiceInfo(
            version=__version__,
            engines=self._engines.infos,
            device=self._engines.device,
            limits=pb.Limits(
                max_clips=c.max_clips, max_file_bytes=c.max_file_bytes, max_queued_jobs=c.max_queued_jobs,
                workers=c.workers, max_chunk_bytes=MAX_CHUNK_BYTES, job_ttl_seconds=c.job_ttl_seconds,
                max_streams=c.max_streams, upload_idle_seconds=c.upload_idle_seconds,
                max_clip_seconds=c.max_clip_seconds, max_job_seconds=c.max_job_seconds, max_speakers=MAX_SPEAKERS,
            ),
            formats=c.formats,
            default_link_threshold=self._engines.embedder("auto").default_parameters().linking.threshold,
            quota=self._quota(context),
        )

    def _quota(self, context: grpc.ServicerContext) -> pb.Quota | None:
        tenant = self._tenants.tenant(context.invocation_metadata())
        if tenant is None:  # a caller without a token, let in by --anonymous-info
            return None
        quota = self._quotas.quota(tenant)
        return pb.Quota(tenant=tenant, max_uploads=quota.max_uploads, max_queued_jobs=quota.max_queued_jobs,
                        audio_seconds_per_day=quota.audio_seconds_per_day,
                        audio_seconds_used=self._quotas.audio_today(tenant))

    def Diarize(self, request_iterator: Iterator[pb.DiarizeRequest], context: grpc.ServicerContext) -> Iterator[pb.JobEvent]:
        with self._stream_slot(context):
            yield from self._diarize(request_iterator, context)

    def _diarize(self, request_iterator: Iterator[pb.DiarizeRequest], context: grpc.ServicerContext) -> Iterator[pb.JobEvent]:
        tenant = self._tenants.of(context)
        job_id = new_job_id()
        try:
            self._quotas.precheck(tenant)
            with self._quotas.upload(tenant):
                config, clips, seconds = self._receive(
                    request_iterator, self._audio.folder(job_id),
                    lambda config: validate_config(config, self._config, self._engines),
                )
            self._jobs.check_room()
            self._audio.keep(job_id, [clip.path for clip in clips])

            def accept() -> int:
                self._jobs.check_room()
                self._store.jobs.create(job_id, config, self._config.job_ttl_seconds, tenant)
                return self._jobs.submitted(job_id)

            position = self._quotas.admit(tenant, sum(seconds), accept)
        except errors.ServiceError as exc:
            self._discard(job_id)
            log.info("diarize refused: %s %s", exc.code, exc)
            exc.abort(context)
        except grpc.RpcError:  # the client went away mid-upload
            self._discard(job_id)
            log.info("client left during upload; removed its partial files")
            return
        except BaseException:
            self._discard(job_id)
            raise
        log.info("job %s accepted: %d clips%s", job_id, len(clips), f" for tenant {tenant}" if tenant else "",
                 extra={"job_id": job_id, "tenant": tenant})
        yield pb.JobEvent(job_id=job_id, accepted=pb.Accepted(job_id=job_id, queue_position=position))
        yield from self._watch(job_id, context)

    def StreamDiarize(self, request_iterator: Iterator[pb.StreamRequest], context: grpc.ServicerContext) -> Iterator[pb.StreamEvent]:
        with self._stream_slot(context):
            yield from self._live.serve(request_iterator, context)

    # ------------------------------------------------------------------ voice library

    def EnrollSpeaker(self, request_iterator: Iterator[pb.EnrollRequest], context: grpc.ServicerContext) -> pb.Voice:
        with self._stream_slot(context), _answering(context):
            return self._enroll_audio(request_iterator, context)

    def _enroll_audio(self, request_iterator: Iterator[pb.EnrollRequest], context: grpc.ServicerContext) -> pb.Voice:
        tenant = self._tenants.of(context)
        # Beside the jobs' folders, so that a start after a crash sweeps what one leaves.
        audio_dir = self._config.jobs_dir / f"enroll-{uuid.uuid4().hex}"

        def check(config: pb.EnrollConfig) -> None:
            check_name(config.name)
            validate_manifest(config.clips, self._config)

        def stop_if_caller_left(step: str, artifact: object = None, **_: object) -> None:
            if not context.is_active():
                raise errors.caller_left()

        try:
            self._quotas.precheck(tenant, job=False)
            # The upload slot is held until the voice is embedded, and the embedding waits for
            # one of the workers' slots (capacity.py), so enrollments count as jobs do.
            with self._quotas.upload(tenant):
                config, clips, seconds = self._receive(request_iterator, audio_dir, check)
                name = config.name
                check_length(sum(seconds))
                embedder = self._engines.embedder("auto")
                with self._jobs.slots.slot(context.is_active):
                    self._quotas.charge(tenant, sum(seconds))
                    heard, lines = voice_from_audio(
                        [ClipInput(c.index, c.name, c.path, float(c.size)) for c in clips], self._engines.segmenter,
                        self._engines.speech, embedder, stop_if_caller_left, self._config.chunk_seconds)
            voice = self._store.voices.enroll(tenant, name, embedder.name, heard, lines)
        except grpc.RpcError:  # the caller went away mid-upload
            raise errors.caller_left() from None
        finally:
            shutil.rmtree(audio_dir, ignore_errors=True)
        log.info("voice %r%s enrolled from %d clips: %.1f s of speech", name, f" of tenant {tenant}" if tenant else "",
                 len(clips), heard.speech_seconds)
        return voice.message()

    def EnrollFromJob(self, request: pb.EnrollFromJobRequest, context: grpc.ServicerContext) -> pb.Voice:
        with _answering(context):
            name = check_name(request.name)
            record = self._owned(request.job_id, context)
            if record.state != pb.JOB_STATE_SUCCEEDED:
                raise errors.result_not_ready(request.job_id, record.state)
            found = self._store.prints.get(request.job_id, request.speaker)
            if found is None:
                labels = [s.label for s in pb.DiarizationResult.FromString(record.result).speakers]
                raise errors.job_speaker_not_found(request.job_id, request.speaker, labels)
            engine, heard = found
            check_speech(heard.speech_seconds)
            # A job speaker's phone print (a phone call's speaker, or one a job that mixed bands
            # heard through a phone line) is its one line print.
            lines = None if heard.phone is None else heard.phone[None]
            voice = self._store.voices.enroll(record.tenant, name, engine, heard, lines)
            log.info("voice %r enrolled from speaker %s of job %s", name, request.speaker, request.job_id)
            return voice.message()

    def ListSpeakers(self, request: pb.ListSpeakersRequest, context: grpc.ServicerContext) -> pb.ListSpeakersResponse:
        return pb.ListSpeakersResponse(speakers=[v.message() for v in self._store.voices.records(self._tenants.of(context))])

    def RenameSpeaker(self, request: pb.RenameSpeakerRequest, context: grpc.ServicerContext) -> pb.Voice:
        tenant = self._tenants.of(context)
        with _answering(context):
            new_name = check_name(request.new_name)
            try:
                renamed = self._store.voices.rename(tenant, request.name, new_name)
            except NameTaken:
                raise errors.voice_exists(new_name) from None
            if not renamed:
                raise errors.voice_not_found(request.name)
            return self._store.voices.get(tenant, new_name).message()

    def DeleteSpeaker(self, request: pb.DeleteSpeakerRequest, context: grpc.ServicerContext) -> pb.DeleteSpeakerResponse:
        if not self._store.voices.delete(self._tenants.of(context), request.name):
            errors.voice_not_found(request.name).abort(context)
        return pb.DeleteSpeakerResponse(name=request.name, deleted=True)

    def _receive(
        self, request_iterator: Iterator[pb.DiarizeRequest | pb.EnrollRequest], audio_dir: Path,
        check: Callable[[pb.DiarizeConfig | pb.EnrollConfig], None],
    ) -> tuple[pb.DiarizeConfig | pb.EnrollConfig, list[StoredClip], list[float]]:
        """The config (`check`ed before any audio), then the clips, written to `audio_dir`, and
        each clip's seconds, within the limits; the caller removes `audio_dir` if this raises."""
        with IdleLimitedStream(request_iterator, self._config.upload_idle_seconds) as requests:
            first = next(requests, None)
            if first is None or first.WhichOneof("payload") != "config":
                raise errors.out_of_order("the first message must be the config")
            check(first.config)
            clips = receive_clips(requests, first.config, audio_dir, self._config.max_file_bytes,
                                  self._config.min_free_bytes)
        seconds = [audio.length(c.path, c.index, c.name, audio.probe(c.path, c.index, c.name)) for c in clips]
        check_durations(clips, seconds, self._config)
        return first.config, clips, seconds

    def _discard(self, job_id: str) -> None:
        self._audio.drop(job_id)

    def WatchJob(self, request: pb.WatchJobRequest, context: grpc.ServicerContext) -> Iterator[pb.JobEvent]:
        with self._stream_slot(context, watcher=True):
            self._owned(request.job_id, context)
            yield from self._watch(request.job_id, context)

    @contextlib.contextmanager
    def _stream_slot(self, context: grpc.ServicerContext, watcher: bool = False) -> Iterator[None]:
        """One of max_streams slots for a call that holds its thread while it runs, within the
        caller's tenant's share (quotas.py); a watcher's within WATCHERS_SHARE of them."""
        with contextlib.ExitStack() as held:
            for slots in (self._watchers, self._streams) if watcher else (self._streams,):
                if not slots.acquire(blocking=False):
                    errors.too_many_streams(self._config.max_streams).abort(context)
                held.callback(slots.release)
            with _answering(context):
                held.enter_context(self._quotas.stream(self._tenants.of(context)))
            yield

    def _watch(self, job_id: str, context: grpc.ServicerContext) -> Iterator[pb.JobEvent]:
        """The job's events while the caller is there and its token holds: one revoked (a
        tenants file reloaded) ends the stream with UNAUTHENTICATED at the next event or tick."""
        metadata = context.invocation_metadata()

        def allowed() -> bool:
            return context.is_active() and self._tenants.tenant(metadata) is not None

        try:
            yield from self._jobs.events(job_id, allowed)
        except errors.ServiceError as exc:
            exc.abort(context)
        if context.is_active():
            self._tenants.of(context)

    def GetResult(self, request: pb.GetResultRequest, context: grpc.ServicerContext) -> pb.DiarizationResult:
        return self._result(request.job_id, context)

    def Export(self, request: pb.ExportRequest, context: grpc.ServicerContext) -> pb.ExportResponse:
        if request.format not in EXPORT_FORMATS.values():
            names = ", ".join(pb.ExportFormat.Name(f).removeprefix("EXPORT_FORMAT_") for f in EXPORT_FORMATS.values())
            errors.invalid_request(f"unknown export format {request.format}", f"ExportRequest.format is one of {names}.",
                                   "Choose one of them, e.g. `speakerlink export JOB --format rttm`.").abort(context)
        result = self._result(request.job_id, context)
        clip_index = request.clip_index if request.HasField("clip_index") else None
        if clip_index is not None and clip_index not in {clip.index for clip in result.clips}:
            errors.unknown_clip(request.job_id, clip_index, len(result.clips)).abort(context)
        return export(result, request.format, clip_index)

    def _owned(self, job_id: str, context: grpc.ServicerContext) -> JobRecord:
        """The caller's job `job_id`. Another tenant's job is NOT_FOUND, as a missing one is,
        so that an id tells nobody else that the job exists."""
        if not JOB_ID.fullmatch(job_id):
            errors.invalid_job_id(job_id).abort(context)
        record = self._store.jobs.get(job_id)
        if record is None or record.tenant != self._tenants.of(context):
            errors.job_not_found(job_id).abort(context)
        return record

    def _result(self, job_id: str, context: grpc.ServicerContext) -> pb.DiarizationResult:
        record = self._owned(job_id, context)
        if record.state != pb.JOB_STATE_SUCCEEDED:
            if record.state == pb.JOB_STATE_FAILED and record.error is not None:
                errors.from_detail(record.error).abort(context)
            errors.result_not_ready(job_id, record.state).abort(context)
        return pb.DiarizationResult.FromString(record.result)

    def CancelJob(self, request: pb.CancelJobRequest, context: grpc.ServicerContext) -> pb.JobStatus:
        self._owned(request.job_id, context)
        try:
            return self._jobs.cancel(request.job_id)
        except errors.ServiceError as exc:
            exc.abort(context)

    def ListJobs(self, request: pb.ListJobsRequest, context: grpc.ServicerContext) -> pb.ListJobsResponse:
        """Keyset pages over (created_at, job_id): a job created meanwhile shifts no page."""
        if not 0 <= request.page_size <= MAX_PAGE_SIZE:
            errors.invalid_request(f"page_size must be 0-{MAX_PAGE_SIZE}, got {request.page_size}",
                                   f"0 asks for the default page of {DEFAULT_PAGE_SIZE} jobs.",
                                   f"Give a page_size of at most {MAX_PAGE_SIZE}.").abort(context)
        size = request.page_size or DEFAULT_PAGE_SIZE
        before = None
        if request.page_token:
            created, _, job_id = request.page_token.partition("/")
            try:
                before = (float(created), job_id)
            except ValueError:
                before = None
            if before is None or not JOB_ID.fullmatch(job_id):
                errors.invalid_request("page_token is not one this server gave",
                                       "A page token is the previous answer's next_page_token, passed on unchanged.",
                                       "Start again from the newest jobs with an empty page_token.").abort(context)
        records = self._store.jobs.newest(self._tenants.of(context), size + 1, before)
        response = pb.ListJobsResponse(jobs=[r.status() for r in records[:size]])
        if len(records) > size:
            last = records[size - 1]
            response.next_page_token = f"{last.created_at!r}/{last.job_id}"
        return response

    def DeleteJob(self, request: pb.DeleteJobRequest, context: grpc.ServicerContext) -> pb.DeleteJobResponse:
        self._owned(request.job_id, context)
        if not self._jobs.delete(request.job_id):
            errors.job_not_found(request.job_id).abort(context)
        return pb.DeleteJobResponse(job_id=request.job_id, deleted=True)


@contextlib.contextmanager
def _answering(context: grpc.ServicerContext) -> Iterator[None]:
    """End the call with the ServiceError its body raises."""
    try:
        yield
    except errors.ServiceError as exc:
        exc.abort(context)
