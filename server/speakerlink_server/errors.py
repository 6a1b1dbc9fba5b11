"""Every error the service reports, with its gRPC status and the help that goes with it.

A ServiceError becomes either a failed call (a google.rpc.Status whose details hold our
ErrorDetail and a standard google.rpc.ErrorInfo, so grpcurl and other tools see the code, and
a google.rpc.RetryInfo where retrying later will do) or
a job's terminal error event; either way the client gets the same code, hints and recovery.
"""

from __future__ import annotations

import datetime

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server import metrics

DOMAIN = "speakerlink.v1"
# An error travels in gRPC's trailing metadata, whose size is limited (8 KiB by default): past
# it the status code is lost. Whatever a request sent is echoed at most this long.
MAX_ECHO_CHARS = 200
MAX_MESSAGE_CHARS = 1000
# Retry delays sent with refusals that pass (RetryInfo): a stream slot frees when an upload or a
# watcher ends, a queue place when a job starts, which takes longer.
STREAMS_RETRY_S = 1.0
QUEUE_RETRY_S = 5.0
DATABASE_RETRY_S = 5.0


def shorten(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """`text` with control characters escaped (a clip name with a newline must not forge a log
    line or a terminal's output), cut to `limit` characters and marked where it was cut."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


class ServiceError(Exception):
    def __init__(
        self,
        status: grpc.StatusCode,
        code: str,
        message: str,
        troubleshooting: tuple[str, ...] = (),
        recovery: tuple[str, ...] = (),
        clip_index: int = -1,
        clip_name: str = "",
        retry_after: float = 0.0,
    ) -> None:
        message = shorten(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.troubleshooting = troubleshooting
        self.recovery = recovery
        self.clip_index = clip_index
        self.clip_name = shorten(clip_name)
        self.retry_after = retry_after  # seconds; > 0: a refusal worth retrying (google.rpc.RetryInfo)

    def detail(self) -> pb.ErrorDetail:
        return pb.ErrorDetail(
            code=self.code,
            message=self.message,
            grpc_code=self.status.value[0],
            troubleshooting=self.troubleshooting,
            recovery=self.recovery,
            clip_index=self.clip_index,
            clip_name=self.clip_name,
        )

    def about_clip(self, index: int, name: str) -> ServiceError:
        """The same error, said of one clip (engines do not know which clip they work on)."""
        return ServiceError(self.status, self.code, self.message, self.troubleshooting, self.recovery, index, name,
                            self.retry_after)

    def rpc_status(self) -> status_pb2.Status:
        detail = any_pb2.Any()
        detail.Pack(self.detail())
        info = any_pb2.Any()
        metadata = {"clip_index": str(self.clip_index)} if self.clip_index >= 0 else {}
        if self.clip_name:
            metadata["clip_name"] = self.clip_name
        info.Pack(error_details_pb2.ErrorInfo(reason=self.code, domain=DOMAIN, metadata=metadata))
        details = [detail, info]
        if self.retry_after > 0:
            retry = any_pb2.Any()
            delay = duration_pb2.Duration()
            delay.FromTimedelta(datetime.timedelta(seconds=self.retry_after))
            retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
            details.append(retry)
        return status_pb2.Status(code=self.status.value[0], message=str(self), details=details)

    def __str__(self) -> str:
        return f"{self.clip_name}: {self.message}" if self.clip_name else self.message

    def abort(self, context: grpc.ServicerContext) -> None:
        """End the call with this error; raises, as context.abort does."""
        metrics.error(self.code)
        context.abort_with_status(rpc_status.to_status(self.rpc_status()))


def from_detail(detail: pb.ErrorDetail) -> ServiceError:
    """Rebuild a stored error so a failed job reports the same thing after a restart."""
    status = next((s for s in grpc.StatusCode if s.value[0] == detail.grpc_code), grpc.StatusCode.UNKNOWN)
    return ServiceError(
        status, detail.code, detail.message, tuple(detail.troubleshooting), tuple(detail.recovery),
        detail.clip_index, detail.clip_name,
    )


def _clip(index: int, name: str) -> dict:
    return {"clip_index": index, "clip_name": name}


# ------------------------------------------------------------------ request and upload


def invalid_config(message: str, index: int = -1, name: str = "") -> ServiceError:
    """A config (options and manifest of clips) this server does not take; `index` and `name`
    when it is about one clip of the manifest."""
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CONFIG", message,
        ("The config holds the options and a manifest of the clips; the .proto's comments give their rules, "
         "and GetInfo's limits their bounds.",),
        ("Fix the request; `speakerlink info` lists the limits and formats.",),
        **_clip(index, name),
    )


def option_out_of_range(option: str, flag: str, value: object, allowed: str) -> ServiceError:
    """An option of DiarizeOptions out of its range, named as the request and the CLI name it."""
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CONFIG", f"{option} is {value}; it must be {allowed}",
        (f"On the command line this is {flag}; in the SDK, {flag.lstrip('-').replace('-', '_')}=.",),
        (f"Give {flag} {allowed}, or leave it out.",),
    )


def out_of_order(message: str) -> ServiceError:
    """An upload stream (Diarize, EnrollSpeaker) whose messages break its order."""
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CONFIG", message,
        ("An upload sends the config first, then only audio chunks, each tagged with its clip's index.",),
        ("Fix the client: the .proto's comments on Diarize give the order.",),
    )


def invalid_request(message: str, troubleshooting: str, recovery: str) -> ServiceError:
    """A field of a request other than an upload's config that is out of its range."""
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CONFIG", message, (troubleshooting,), (recovery,))


def chunk_too_large(index: int, name: str, size: int, limit: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "CHUNK_TOO_LARGE", f"an audio chunk of {size} bytes is over the limit of {limit} bytes",
        (f"Each AudioChunk may carry at most max_chunk_bytes={limit} (GetInfo's limits); the SDK sends 256 KiB.",),
        ("Send the file in smaller chunks, in order; a clip may take as many chunks as it needs.",),
        **_clip(index, name),
    )


def too_many_clips(count: int, limit: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_CLIPS", f"{count} clips sent; this server takes at most {limit}",
        (f"The server is configured with max_clips={limit}.",),
        (f"Raise --max-clips on the server to at least {count}. Splitting the clips over several requests "
         "would leave their speakers unlinked: links are made within one request.",),
    )


def file_too_large(index: int, name: str, size: int, limit: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "FILE_TOO_LARGE", f"{size} bytes is over the limit of {limit} bytes per file",
        (f"The server is configured with max_file_bytes={limit} (MAX_CONTENT_LENGTH).",),
        ("Compress the audio (e.g. 16 kHz mono FLAC or MP3) or cut it into shorter clips.",
         "Or raise --max-file-bytes on the server."),
        **_clip(index, name),
    )


def unsupported_format(index: int, name: str, fmt: str, formats: tuple[str, ...]) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "UNSUPPORTED_FORMAT", f"format {fmt or '(none)'!r} is not supported",
        (f"Supported formats: {', '.join(formats)}. The format comes from the manifest's hint or the file extension.",),
        ("Convert the file, e.g. `ffmpeg -i in.xyz -ar 16000 -ac 1 out.wav`.",),
        **_clip(index, name),
    )


def empty_file(index: int, name: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_FILE", "the manifest gives the file a size of 0 bytes",
        ("A zero-byte file has no audio to diarize; or the client left size_bytes unset, which every clip needs "
         "(its exact size).",),
        ("Check that the recording was saved completely, then send it again with its size.",),
        **_clip(index, name),
    )


def upload_mismatch(index: int, name: str, message: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "UPLOAD_MISMATCH", message,
        ("The bytes received differ from the manifest: the file changed while uploading, or the client sent it wrong.",),
        ("Send the file again.",),
        **_clip(index, name),
    )


def upload_stalled(seconds: float) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.DEADLINE_EXCEEDED, "UPLOAD_STALLED", f"the upload sent nothing for {seconds:g} s and was stopped",
        ("The client stopped sending mid-upload: its network stalled, or it hung or went away.",
         f"The server waits at most upload_idle_seconds={seconds:g} for each part of an upload."),
        ("Send the clips again; on a slow link the SDK's chunks still arrive well within the limit.",
         "Or raise --upload-idle-seconds on the server."),
    )


def storage_full(free: int, needed: int, reserve: int) -> ServiceError:
    mib = 1024 * 1024
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "STORAGE_FULL",
        f"the server's disk has {free / mib:.0f} MiB free; this upload needs {needed / mib:.1f} MiB "
        f"and {reserve / mib:.0f} MiB must stay free",
        ("The server keeps min_free_bytes of its data disk free so that running jobs can save their results.",),
        ("Retry later, after running jobs finish; delete finished jobs you no longer need (`speakerlink delete JOB`).",
         "The server's operator can free space, shorten --job-ttl-seconds or lower --min-free-bytes."),
    )


def not_audio(index: int, name: str, reason: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "NOT_AUDIO", f"the file holds no decodable audio ({reason})",
        ("ffmpeg found no audio stream it can decode: the file may not be audio, or may be damaged.",),
        ("Check that it plays, e.g. `ffprobe FILE`; re-export it as WAV, FLAC or MP3.",),
        **_clip(index, name),
    )


def truncated_audio(index: int, name: str, how: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "AUDIO_TRUNCATED", f"the file ends early: {how}",
        ("The file was cut off, e.g. by an interrupted download or copy.",),
        ("Get a complete copy of the file and send it again.",),
        **_clip(index, name),
    )


def audio_too_long(index: int, name: str, seconds: float, limit: float) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "AUDIO_TOO_LONG",
        f"{seconds:.0f} s of audio is over the limit of {limit:.0f} s per clip",
        (f"The server is configured with max_clip_seconds={limit:g}; the length is checked from the file's header "
         "on upload, and again while decoding.",),
        ("Cut the recording into shorter clips, or raise --max-clip-seconds on the server.",),
        **_clip(index, name),
    )


def job_too_long(seconds: float, limit: float) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "JOB_TOO_LONG",
        f"the clips hold {seconds:.0f} s of audio together, over the limit of {limit:.0f} s per job",
        (f"The server is configured with max_job_seconds={limit:g}.",),
        ("Send fewer or shorter clips, or raise --max-job-seconds on the server.",),
    )


def unsupported_sample_rate(index: int, name: str, rate: int, lowest: int, highest: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "UNSUPPORTED_SAMPLE_RATE",
        f"the file declares a sample rate of {rate} Hz; recordings use {lowest}-{highest} Hz",
        ("A header with an impossible sample rate is a damaged or crafted file.",),
        ("Re-export the audio at a usual rate, e.g. `ffmpeg -i in.wav -ar 16000 -ac 1 out.wav`.",),
        **_clip(index, name),
    )


def queue_full(limit: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "QUEUE_FULL", f"the job queue is full ({limit} jobs waiting)",
        ("The server takes new jobs only while fewer than max_queued_jobs are waiting.",),
        ("Retry in a little while (the SDK does, within its deadline); or run more workers (--workers).",),
        retry_after=QUEUE_RETRY_S,
    )


def too_many_streams(limit: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_STREAMS", f"the server is already serving {limit} uploads and job watchers",
        (f"Each Diarize or WatchJob call holds one of max_streams={limit} slots while it runs.",),
        ("Retry in a little while (the SDK does, within its deadline); a job goes on running while nobody "
         "watches it, and `speakerlink watch JOB` reattaches later.", "Or raise --max-streams on the server."),
        retry_after=STREAMS_RETRY_S,
    )


def unknown_engine(name: str, available: list[str]) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_ENGINE", f"engine {name!r} is not loaded on this server",
        (f"Loaded engines: {', '.join(available)}.",),
        ("Leave the engine unset (auto), or choose one that `speakerlink info` lists as available.",),
    )


def no_transcriber() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION, "NO_TRANSCRIBER", "transcription was asked for, but this server has no transcriber",
        ("AssemblyAI transcription is available only when the server has an API key.",),
        ("Start the server with ASSEMBLYAI_API_KEY set, or diarize without transcription (--no-transcribe).",),
    )


# ------------------------------------------------------------------ transcription (per clip)


def transcription_failed(transcript_id: str, reason: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "TRANSCRIPTION_FAILED", f"AssemblyAI could not transcribe the clip: {reason}",
        (f"AssemblyAI transcript {transcript_id} ended in error.",
         "Usual causes: the file holds no audible speech, its format is not one AssemblyAI decodes, "
         "or the language code is not supported with speaker labels."),
        ("Check that the clip plays and holds speech; convert it to WAV or FLAC and send it again.",
         "Or diarize it without transcription (--no-transcribe)."),
    )


def transcription_rejected(status: int, reason: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "TRANSCRIPTION_REJECTED", f"AssemblyAI refused the request (HTTP {status}): {reason}",
        ("AssemblyAI found the request invalid, e.g. an unsupported language code or speaker count.",),
        ("Fix the option AssemblyAI names (e.g. --language), or diarize without transcription (--no-transcribe).",),
    )


def transcriber_auth_failed(status: int, reason: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION, "TRANSCRIBER_AUTH_FAILED", f"AssemblyAI refused the server's API key (HTTP {status}): {reason}",
        ("The server's ASSEMBLYAI_API_KEY is wrong, revoked, or its account cannot use this feature.",),
        ("The server's operator must set a valid key and restart it; meanwhile diarize without transcription.",),
    )


def transcriber_rate_limited(reason: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "TRANSCRIBER_RATE_LIMITED", f"AssemblyAI kept answering 429 Too Many Requests: {reason}",
        ("The account's rate or concurrency limit was reached and retries with backoff did not get through.",),
        ("Retry later, send fewer clips at once, or lower the server's --assemblyai-concurrency.",),
    )


def transcriber_unreachable(base_url: str, reason: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.UNAVAILABLE, "TRANSCRIBER_UNAVAILABLE", f"AssemblyAI at {base_url} failed after retries: {reason}",
        ("Server errors (5xx) or network errors persisted through every retry.",
         "Check the server's network access and its --assemblyai-base-url."),
        ("Retry later; or diarize without transcription (--no-transcribe).",),
    )


def transcription_timeout(transcript_id: str, seconds: float) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.DEADLINE_EXCEEDED, "TRANSCRIPTION_TIMEOUT",
        f"AssemblyAI transcript {transcript_id} was not ready after {seconds:.0f} s",
        ("AssemblyAI is slower than usual, or the clip is very long.",),
        ("Retry later, or raise --assemblyai-timeout-seconds on the server.",),
    )


# ------------------------------------------------------------------ jobs


def auth_required() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.UNAUTHENTICATED, "AUTH_REQUIRED", "this server needs a token: the call carried none",
        ("The server maps bearer tokens to tenants; every call but the health check needs one.",),
        ("Set SPEAKERLINK_TOKEN, or pass token= to the client (--token-file on the command line).",),
    )


def auth_invalid() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.UNAUTHENTICATED, "AUTH_INVALID", "the token is not one this server accepts",
        ("The token is mistyped, was revoked, or belongs to another server.",
         "The header must read `authorization: Bearer <token>`."),
        ("Ask the server's operator for a current token.",),
    )


def tenant_uploads(limit: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "TENANT_UPLOADS", f"your tenant already has {limit} uploads running",
        ("Each tenant may upload this many jobs at once (GetInfo's quota.max_uploads).",),
        ("Retry when an upload ends (the SDK does, within its deadline), or put more clips in one job.",),
        retry_after=STREAMS_RETRY_S,
    )


def tenant_streams(limit: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "TENANT_STREAMS", f"your tenant already has {limit} uploads and job watchers open",
        ("Each tenant may hold this many of the server's Diarize and WatchJob streams at once.",),
        ("Retry when one ends (the SDK does, within its deadline); watch fewer jobs at once.",),
        retry_after=STREAMS_RETRY_S,
    )


def tenant_queue_full(limit: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "TENANT_QUEUE_FULL", f"your tenant already has {limit} jobs waiting",
        ("Each tenant may have this many jobs waiting for a worker (GetInfo's quota.max_queued_jobs).",),
        ("Retry when one of them starts (the SDK does, within its deadline).",),
        retry_after=QUEUE_RETRY_S,
    )


def tenant_audio_quota(seconds: float, used: float, limit: float, wait: float) -> ServiceError:
    alone = seconds > limit
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "AUDIO_QUOTA",
        (f"this job's {seconds:.0f} s of audio would pass your tenant's {limit:.0f} s a day " if seconds else
         f"your tenant has used its {limit:.0f} s of audio a day ") + f"({used:.0f} s in the last 24 hours)",
        ("Each tenant may send this much audio in any 24 hours (GetInfo's quota.audio_seconds_per_day);"
         " deleting jobs does not give it back.",),
        ("Split the recording across days, or ask the operator for a larger quota.",) if alone else
        (f"Retry in {wait / 3600:.1f} h, when enough of the last day's audio has aged out.",),
        retry_after=0.0 if alone else max(wait, 1.0),
    )


def invalid_voice_name(reason: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_VOICE_NAME", f"a voice name {reason}",
        ("Names are 1-100 printable characters, without spaces at either end.",),
        ("Give the person's name, e.g. 'Alice Smith'.",),
    )


def voice_not_found(name: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.NOT_FOUND, "VOICE_NOT_FOUND", f"no enrolled voice {shorten(name)!r}",
        ("The name is spelt differently, or the voice was deleted.",),
        ("List the voices with `speakerlink speakers list`.",),
    )


def voice_exists(name: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.ALREADY_EXISTS, "VOICE_EXISTS", f"a voice is already called {shorten(name)!r}",
        ("Two voices cannot share a name.",),
        ("Choose another name, or delete or rename the other voice first.",),
    )


def no_speech_to_enroll() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "NO_SPEECH", "the enrollment audio holds no speech",
        ("The files are silent, or hold music or noise only.",),
        ("Enroll from a recording of the person talking.",),
    )


def too_little_speech(seconds: float, least: float) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "TOO_LITTLE_SPEECH",
        f"the enrollment rests on {seconds:.1f} s of speech; a voice needs at least {least:g} s",
        ("Shorter speech gives an embedding too unsteady to recognise the person by.",),
        (f"Enroll from more audio of the person ({least:g} s of speech or more, 30 s is better).",),
    )


def several_voices(seconds: list[float]) -> ServiceError:
    heard = ", ".join(f"{s:.1f} s" for s in seconds)
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "SEVERAL_VOICES",
        f"the enrollment audio holds {len(seconds)} voices ({heard} of speech), not one",
        ("A voice is enrolled from audio of that person alone, so that the name never goes to someone else.",),
        ("Cut the audio to the person's own speech, or diarize it and enroll their speaker with --from-job.",),
    )


def enrollment_too_long(seconds: float, limit: float) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "ENROLLMENT_TOO_LONG",
        f"the enrollment audio lasts {seconds:.0f} s; a voice is enrolled from at most {limit:.0f} s",
        ("A voice steadies within a minute of speech; longer audio only holds the server longer.",),
        ("Enroll from a few minutes of the person at most, or diarize a long recording and use --from-job.",),
    )


def job_speaker_not_found(job_id: str, speaker: str, labels: list[str]) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.NOT_FOUND, "SPEAKER_NOT_FOUND", f"job {job_id} has no speaker {shorten(speaker)!r}",
        (f"Its speakers are {', '.join(labels) or 'none'}.",),
        (f"See them with `speakerlink export {job_id} --format text`.",),
    )


def caller_left() -> ServiceError:
    return ServiceError(grpc.StatusCode.CANCELLED, "CANCELLED", "the caller went away; the work was stopped")


def invalid_job_id(job_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_JOB_ID", f"{shorten(job_id)!r} is not a job id",
        ("Job ids are the 32 hexadecimal characters the server gave when it accepted the job.",),
        ("Check the id; `speakerlink diarize` prints it as it starts.",),
    )


def job_not_found(job_id: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND", f"no job {job_id!r}",
        ("The id is wrong, or the job was deleted, or its results expired (job TTL).",),
        ("`speakerlink jobs` lists your jobs; if it is gone, submit the clips again.",),
    )


def result_not_ready(job_id: str, state: int) -> ServiceError:
    """A job without a result: one still to run can be waited for; a cancelled one never will have one."""
    name = pb.JobState.Name(state).removeprefix("JOB_STATE_").lower()
    waits = state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)
    return ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION, "RESULT_NOT_READY", f"job {job_id} has no result: it is {name}",
        ("Results exist only for jobs that succeeded.",),
        (f"Wait for it with `speakerlink watch {job_id}`.",) if waits else
        ("It was cancelled and will never have one: submit the clips again.",) if state == pb.JOB_STATE_CANCELLED else
        ("Submit the clips again.",),
    )


def unknown_clip(job_id: str, index: int, count: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_CLIP", f"job {job_id} has no clip {index}",
        (f"The job has {count} clip{'s' if count != 1 else ''}, indexed from 0 in the order they were sent.",),
        ("Leave the clip out to export every clip, or give an index the result lists.",),
    )


def job_interrupted() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.ABORTED, "JOB_INTERRUPTED", "the server stopped while the job ran and its audio is gone",
        ("The job's files were removed while the server was down.",),
        ("Submit the clips again.",),
    )


def database_unavailable() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE", "the server cannot reach its database just now",
        ("The database is restarting or out of reach; jobs wait in it and go on once it is back.",),
        ("Retry in a little while (the delay comes with this error); a running job goes on, and "
         "`speakerlink watch JOB` follows it again.",),
        retry_after=DATABASE_RETRY_S,
    )


def internal(message: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.INTERNAL, "INTERNAL", message,
        ("An unexpected failure inside the server; its log has the traceback.",),
        ("Retry once; if it fails again, report it with the job id and the server log.",),
    )
