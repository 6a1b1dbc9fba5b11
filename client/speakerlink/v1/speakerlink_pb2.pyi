import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudioEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_ENCODING_UNSPECIFIED: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_PCM_S16LE: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_MULAW: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_ALAW: _ClassVar[AudioEncoding]
    AUDIO_ENCODING_CONTAINER: _ClassVar[AudioEncoding]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_JSON: _ClassVar[ExportFormat]
    EXPORT_FORMAT_CSV: _ClassVar[ExportFormat]
    EXPORT_FORMAT_TEXT: _ClassVar[ExportFormat]
    EXPORT_FORMAT_RTTM: _ClassVar[ExportFormat]
    EXPORT_FORMAT_SRT: _ClassVar[ExportFormat]
    EXPORT_FORMAT_VTT: _ClassVar[ExportFormat]
AUDIO_ENCODING_UNSPECIFIED: AudioEncoding
AUDIO_ENCODING_PCM_S16LE: AudioEncoding
AUDIO_ENCODING_MULAW: AudioEncoding
AUDIO_ENCODING_ALAW: AudioEncoding
AUDIO_ENCODING_CONTAINER: AudioEncoding
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_JSON: ExportFormat
EXPORT_FORMAT_CSV: ExportFormat
EXPORT_FORMAT_TEXT: ExportFormat
EXPORT_FORMAT_RTTM: ExportFormat
EXPORT_FORMAT_SRT: ExportFormat
EXPORT_FORMAT_VTT: ExportFormat

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EngineInfo(_message.Message):
    __slots__ = ("name", "kind", "available", "active", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    available: bool
    active: bool
    reason: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., available: _Optional[bool] = ..., active: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_clips", "max_file_bytes", "max_queued_jobs", "workers", "max_chunk_bytes", "job_ttl_seconds", "max_streams", "upload_idle_seconds", "max_clip_seconds", "max_job_seconds", "max_speakers")
    MAX_CLIPS_FIELD_NUMBER: _ClassVar[int]
    MAX_FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUED_JOBS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    JOB_TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_CLIP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_JOB_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    max_clips: int
    max_file_bytes: int
    max_queued_jobs: int
    workers: int
    max_chunk_bytes: int
    job_ttl_seconds: int
    max_streams: int
    upload_idle_seconds: float
    max_clip_seconds: float
    max_job_seconds: float
    max_speakers: int
    def __init__(self, max_clips: _Optional[int] = ..., max_file_bytes: _Optional[int] = ..., max_queued_jobs: _Optional[int] = ..., workers: _Optional[int] = ..., max_chunk_bytes: _Optional[int] = ..., job_ttl_seconds: _Optional[int] = ..., max_streams: _Optional[int] = ..., upload_idle_seconds: _Optional[float] = ..., max_clip_seconds: _Optional[float] = ..., max_job_seconds: _Optional[float] = ..., max_speakers: _Optional[int] = ...) -> None: ...

class Quota(_message.Message):
    __slots__ = ("tenant", "max_uploads", "max_queued_jobs", "audio_seconds_per_day", "audio_seconds_used")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    MAX_UPLOADS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUED_JOBS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_USED_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    max_uploads: int
    max_queued_jobs: int
    audio_seconds_per_day: float
    audio_seconds_used: float
    def __init__(self, tenant: _Optional[str] = ..., max_uploads: _Optional[int] = ..., max_queued_jobs: _Optional[int] = ..., audio_seconds_per_day: _Optional[float] = ..., audio_seconds_used: _Optional[float] = ...) -> None: ...

class ServiceInfo(_message.Message):
    __slots__ = ("version", "engines", "device", "limits", "formats", "default_link_threshold", "quota")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LINK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    version: str
    engines: _containers.RepeatedCompositeFieldContainer[EngineInfo]
    device: str
    limits: Limits
    formats: _containers.RepeatedScalarFieldContainer[str]
    default_link_threshold: float
    quota: Quota
    def __init__(self, version: _Optional[str] = ..., engines: _Optional[_Iterable[_Union[EngineInfo, _Mapping]]] = ..., device: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., formats: _Optional[_Iterable[str]] = ..., default_link_threshold: _Optional[float] = ..., quota: _Optional[_Union[Quota, _Mapping]] = ...) -> None: ...

class SpeakerCount(_message.Message):
    __slots__ = ("exact", "min", "max")
    EXACT_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    exact: int
    min: int
    max: int
    def __init__(self, exact: _Optional[int] = ..., min: _Optional[int] = ..., max: _Optional[int] = ...) -> None: ...

class DiarizeOptions(_message.Message):
    __slots__ = ("speakers", "link_threshold", "engine", "language", "transcribe", "recognize")
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    LINK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIBE_FIELD_NUMBER: _ClassVar[int]
    RECOGNIZE_FIELD_NUMBER: _ClassVar[int]
    speakers: SpeakerCount
    link_threshold: float
    engine: str
    language: str
    transcribe: bool
    recognize: bool
    def __init__(self, speakers: _Optional[_Union[SpeakerCount, _Mapping]] = ..., link_threshold: _Optional[float] = ..., engine: _Optional[str] = ..., language: _Optional[str] = ..., transcribe: _Optional[bool] = ..., recognize: _Optional[bool] = ...) -> None: ...

class ClipManifest(_message.Message):
    __slots__ = ("name", "size_bytes", "format", "sha256")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    name: str
    size_bytes: int
    format: str
    sha256: str
    def __init__(self, name: _Optional[str] = ..., size_bytes: _Optional[int] = ..., format: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class DiarizeConfig(_message.Message):
    __slots__ = ("options", "clips")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    options: DiarizeOptions
    clips: _containers.RepeatedCompositeFieldContainer[ClipManifest]
    def __init__(self, options: _Optional[_Union[DiarizeOptions, _Mapping]] = ..., clips: _Optional[_Iterable[_Union[ClipManifest, _Mapping]]] = ...) -> None: ...

class AudioChunk(_message.Message):
    __slots__ = ("clip_index", "data")
    CLIP_INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    clip_index: int
    data: bytes
    def __init__(self, clip_index: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class DiarizeRequest(_message.Message):
    __slots__ = ("config", "chunk")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    config: DiarizeConfig
    chunk: AudioChunk
    def __init__(self, config: _Optional[_Union[DiarizeConfig, _Mapping]] = ..., chunk: _Optional[_Union[AudioChunk, _Mapping]] = ...) -> None: ...

class StreamConfig(_message.Message):
    __slots__ = ("latency_seconds", "speakers", "recognize", "engine", "encoding", "sample_rate", "channels", "name")
    LATENCY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    RECOGNIZE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    latency_seconds: float
    speakers: SpeakerCount
    recognize: bool
    engine: str
    encoding: AudioEncoding
    sample_rate: int
    channels: int
    name: str
    def __init__(self, latency_seconds: _Optional[float] = ..., speakers: _Optional[_Union[SpeakerCount, _Mapping]] = ..., recognize: _Optional[bool] = ..., engine: _Optional[str] = ..., encoding: _Optional[_Union[AudioEncoding, str]] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: StreamConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[StreamConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class LiveTurn(_message.Message):
    __slots__ = ("start", "end", "speaker", "name")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    start: float
    end: float
    speaker: str
    name: str
    def __init__(self, start: _Optional[float] = ..., end: _Optional[float] = ..., speaker: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class StreamUpdate(_message.Message):
    __slots__ = ("decided_until", "heard_seconds", "final_turns", "provisional_turns")
    DECIDED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    HEARD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINAL_TURNS_FIELD_NUMBER: _ClassVar[int]
    PROVISIONAL_TURNS_FIELD_NUMBER: _ClassVar[int]
    decided_until: float
    heard_seconds: float
    final_turns: _containers.RepeatedCompositeFieldContainer[LiveTurn]
    provisional_turns: _containers.RepeatedCompositeFieldContainer[LiveTurn]
    def __init__(self, decided_until: _Optional[float] = ..., heard_seconds: _Optional[float] = ..., final_turns: _Optional[_Iterable[_Union[LiveTurn, _Mapping]]] = ..., provisional_turns: _Optional[_Iterable[_Union[LiveTurn, _Mapping]]] = ...) -> None: ...

class StreamEvent(_message.Message):
    __slots__ = ("job_id", "accepted", "update", "result")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    accepted: Accepted
    update: StreamUpdate
    result: DiarizationResult
    def __init__(self, job_id: _Optional[str] = ..., accepted: _Optional[_Union[Accepted, _Mapping]] = ..., update: _Optional[_Union[StreamUpdate, _Mapping]] = ..., result: _Optional[_Union[DiarizationResult, _Mapping]] = ...) -> None: ...

class Accepted(_message.Message):
    __slots__ = ("job_id", "queue_position")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    queue_position: int
    def __init__(self, job_id: _Optional[str] = ..., queue_position: _Optional[int] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("stage", "percent", "clip_index", "message")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    CLIP_INDEX_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    stage: str
    percent: float
    clip_index: int
    message: str
    def __init__(self, stage: _Optional[str] = ..., percent: _Optional[float] = ..., clip_index: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ErrorDetail(_message.Message):
    __slots__ = ("code", "message", "grpc_code", "troubleshooting", "recovery", "clip_index", "clip_name")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    GRPC_CODE_FIELD_NUMBER: _ClassVar[int]
    TROUBLESHOOTING_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_FIELD_NUMBER: _ClassVar[int]
    CLIP_INDEX_FIELD_NUMBER: _ClassVar[int]
    CLIP_NAME_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    grpc_code: int
    troubleshooting: _containers.RepeatedScalarFieldContainer[str]
    recovery: _containers.RepeatedScalarFieldContainer[str]
    clip_index: int
    clip_name: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., grpc_code: _Optional[int] = ..., troubleshooting: _Optional[_Iterable[str]] = ..., recovery: _Optional[_Iterable[str]] = ..., clip_index: _Optional[int] = ..., clip_name: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "accepted", "progress", "result", "error", "cancelled")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    accepted: Accepted
    progress: Progress
    result: DiarizationResult
    error: ErrorDetail
    cancelled: JobStatus
    def __init__(self, job_id: _Optional[str] = ..., accepted: _Optional[_Union[Accepted, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., result: _Optional[_Union[DiarizationResult, _Mapping]] = ..., error: _Optional[_Union[ErrorDetail, _Mapping]] = ..., cancelled: _Optional[_Union[JobStatus, _Mapping]] = ...) -> None: ...

class GlobalSpeaker(_message.Message):
    __slots__ = ("label", "name", "speech_seconds", "clip_indices", "name_score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEECH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CLIP_INDICES_FIELD_NUMBER: _ClassVar[int]
    NAME_SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    name: str
    speech_seconds: float
    clip_indices: _containers.RepeatedScalarFieldContainer[int]
    name_score: float
    def __init__(self, label: _Optional[str] = ..., name: _Optional[str] = ..., speech_seconds: _Optional[float] = ..., clip_indices: _Optional[_Iterable[int]] = ..., name_score: _Optional[float] = ...) -> None: ...

class SpeakerLink(_message.Message):
    __slots__ = ("local_label", "global_label", "confidence", "speech_seconds")
    LOCAL_LABEL_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SPEECH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    local_label: str
    global_label: str
    confidence: float
    speech_seconds: float
    def __init__(self, local_label: _Optional[str] = ..., global_label: _Optional[str] = ..., confidence: _Optional[float] = ..., speech_seconds: _Optional[float] = ...) -> None: ...

class Word(_message.Message):
    __slots__ = ("start", "end", "text", "speaker", "confidence")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    start: float
    end: float
    text: str
    speaker: str
    confidence: float
    def __init__(self, start: _Optional[float] = ..., end: _Optional[float] = ..., text: _Optional[str] = ..., speaker: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("start", "end", "speaker", "local_speaker", "text", "words")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    LOCAL_SPEAKER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    start: float
    end: float
    speaker: str
    local_speaker: str
    text: str
    words: _containers.RepeatedCompositeFieldContainer[Word]
    def __init__(self, start: _Optional[float] = ..., end: _Optional[float] = ..., speaker: _Optional[str] = ..., local_speaker: _Optional[str] = ..., text: _Optional[str] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ...) -> None: ...

class ClipResult(_message.Message):
    __slots__ = ("index", "name", "duration_seconds", "speech_seconds", "speakers", "segments")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    duration_seconds: float
    speech_seconds: float
    speakers: _containers.RepeatedCompositeFieldContainer[SpeakerLink]
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., speech_seconds: _Optional[float] = ..., speakers: _Optional[_Iterable[_Union[SpeakerLink, _Mapping]]] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ...) -> None: ...

class Summary(_message.Message):
    __slots__ = ("clips", "unique_speakers", "audio_seconds", "processing_seconds", "engines", "link_threshold", "warnings")
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    LINK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    clips: int
    unique_speakers: int
    audio_seconds: float
    processing_seconds: float
    engines: _containers.RepeatedScalarFieldContainer[str]
    link_threshold: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, clips: _Optional[int] = ..., unique_speakers: _Optional[int] = ..., audio_seconds: _Optional[float] = ..., processing_seconds: _Optional[float] = ..., engines: _Optional[_Iterable[str]] = ..., link_threshold: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class DiarizationResult(_message.Message):
    __slots__ = ("job_id", "speakers", "clips", "summary", "provenance")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    speakers: _containers.RepeatedCompositeFieldContainer[GlobalSpeaker]
    clips: _containers.RepeatedCompositeFieldContainer[ClipResult]
    summary: Summary
    provenance: Provenance
    def __init__(self, job_id: _Optional[str] = ..., speakers: _Optional[_Iterable[_Union[GlobalSpeaker, _Mapping]]] = ..., clips: _Optional[_Iterable[_Union[ClipResult, _Mapping]]] = ..., summary: _Optional[_Union[Summary, _Mapping]] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("request", "parameters")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    request: ResolvedRequest
    parameters: _struct_pb2.Struct
    def __init__(self, request: _Optional[_Union[ResolvedRequest, _Mapping]] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ResolvedRequest(_message.Message):
    __slots__ = ("engine", "transcriber", "recognize", "link_threshold", "min_speakers", "max_speakers", "language")
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIBER_FIELD_NUMBER: _ClassVar[int]
    RECOGNIZE_FIELD_NUMBER: _ClassVar[int]
    LINK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    MAX_SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    engine: str
    transcriber: str
    recognize: bool
    link_threshold: float
    min_speakers: int
    max_speakers: int
    language: str
    def __init__(self, engine: _Optional[str] = ..., transcriber: _Optional[str] = ..., recognize: _Optional[bool] = ..., link_threshold: _Optional[float] = ..., min_speakers: _Optional[int] = ..., max_speakers: _Optional[int] = ..., language: _Optional[str] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "state", "progress", "created_at", "expires_at", "error", "clip_names", "cancel_requested")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CLIP_NAMES_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    state: JobState
    progress: Progress
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    error: ErrorDetail
    clip_names: _containers.RepeatedScalarFieldContainer[str]
    cancel_requested: bool
    def __init__(self, job_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[_Union[ErrorDetail, _Mapping]] = ..., clip_names: _Optional[_Iterable[str]] = ..., cancel_requested: _Optional[bool] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobStatus]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobStatus, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetResultRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DeleteJobResponse(_message.Message):
    __slots__ = ("job_id", "deleted")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    deleted: bool
    def __init__(self, job_id: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ("job_id", "format", "clip_index")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CLIP_INDEX_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    format: ExportFormat
    clip_index: int
    def __init__(self, job_id: _Optional[str] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., clip_index: _Optional[int] = ...) -> None: ...

class ExportResponse(_message.Message):
    __slots__ = ("job_id", "format", "content_type", "filename", "content")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    format: ExportFormat
    content_type: str
    filename: str
    content: bytes
    def __init__(self, job_id: _Optional[str] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., content_type: _Optional[str] = ..., filename: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class Voice(_message.Message):
    __slots__ = ("name", "speech_seconds", "enrollments", "engines", "created_at", "updated_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEECH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ENROLLMENTS_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    speech_seconds: float
    enrollments: int
    engines: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., speech_seconds: _Optional[float] = ..., enrollments: _Optional[int] = ..., engines: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EnrollConfig(_message.Message):
    __slots__ = ("name", "clips")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    clips: _containers.RepeatedCompositeFieldContainer[ClipManifest]
    def __init__(self, name: _Optional[str] = ..., clips: _Optional[_Iterable[_Union[ClipManifest, _Mapping]]] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("config", "chunk")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    config: EnrollConfig
    chunk: AudioChunk
    def __init__(self, config: _Optional[_Union[EnrollConfig, _Mapping]] = ..., chunk: _Optional[_Union[AudioChunk, _Mapping]] = ...) -> None: ...

class EnrollFromJobRequest(_message.Message):
    __slots__ = ("name", "job_id", "speaker")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    name: str
    job_id: str
    speaker: str
    def __init__(self, name: _Optional[str] = ..., job_id: _Optional[str] = ..., speaker: _Optional[str] = ...) -> None: ...

class ListSpeakersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSpeakersResponse(_message.Message):
    __slots__ = ("speakers",)
    SPEAKERS_FIELD_NUMBER: _ClassVar[int]
    speakers: _containers.RepeatedCompositeFieldContainer[Voice]
    def __init__(self, speakers: _Optional[_Iterable[_Union[Voice, _Mapping]]] = ...) -> None: ...

class RenameSpeakerRequest(_message.Message):
    __slots__ = ("name", "new_name")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NEW_NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    new_name: str
    def __init__(self, name: _Optional[str] = ..., new_name: _Optional[str] = ...) -> None: ...

class DeleteSpeakerRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteSpeakerResponse(_message.Message):
    __slots__ = ("name", "deleted")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    name: str
    deleted: bool
    def __init__(self, name: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...
