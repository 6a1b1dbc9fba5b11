"""Checking a Diarize request's config and writing its audio to disk as it arrives.

Limits are enforced twice: on the manifest (declared sizes, count, formats) before a byte is
written, and on the bytes themselves while they stream, so a client that lies about sizes is
stopped within one chunk of the limit. Files are stored under server-chosen names; the
client's names are only labels. A client that falls silent mid-upload is cut off after the
configured idle time, and an upload that would fill the data disk is refused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import queue
import re
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server import errors
from speakerlink_server.config import ServerConfig
from speakerlink_server.engines.base import CountBounds
from speakerlink_server.engines.registry import Engines
from speakerlink_server.pipeline.request import JobRequest

# The largest audio chunk a client may send: gRPC's default message limit. The SDK sends 256 KiB.
MAX_CHUNK_BYTES = 4 * 1024 * 1024
# The largest message the transport takes: room above the chunk limit, so that a client whose
# chunks are too large gets CHUNK_TOO_LARGE with its details rather than the transport's bare
# RESOURCE_EXHAUSTED (which it still gets past this).
MAX_MESSAGE_BYTES = 2 * MAX_CHUNK_BYTES
# Speaker counts above this are mistakes (e.g. 2147483647), not meetings: a count asks the
# clustering to find that many voices, and a too-large one only splits people into pieces.
MAX_SPEAKERS = 100
# Longest strings a request may carry: a file name (most file systems stop at 255), an engine
# name, a language code (BCP 47 tags in use are far shorter) and a format hint.
MAX_NAME_CHARS = 255
MAX_ENGINE_CHARS = 64
MAX_LANGUAGE_CHARS = 35
MAX_FORMAT_CHARS = 16
SHA256 = re.compile(r"[0-9a-fA-F]{64}")


_END = object()


class IdleLimitedStream:
    """The client's request stream, read on a thread of its own so a silent client can be timed out.

    gRPC's synchronous request iterator blocks with no timeout of its own. Use as a context
    manager: leaving it lets the reader thread go, which ends as soon as the call does.
    """

    def __init__(self, requests: Iterator[pb.DiarizeRequest], idle_seconds: float) -> None:
        self._requests = requests
        self._idle_seconds = idle_seconds
        self._box: queue.Queue = queue.Queue(maxsize=1)  # one message ahead: no unbounded buffering
        self._done = threading.Event()
        self._reader = threading.Thread(target=self._read, name="speakerlink-upload-reader", daemon=True)

    def __enter__(self) -> IdleLimitedStream:
        self._reader.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()

    def __iter__(self) -> Iterator[pb.DiarizeRequest]:
        return self

    def __next__(self) -> pb.DiarizeRequest:
        try:
            item = self._box.get(timeout=self._idle_seconds)
        except queue.Empty:
            raise errors.upload_stalled(self._idle_seconds) from None
        if item is _END:
            self._box.put(_END)  # later reads end too
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def _read(self) -> None:
        try:
            for request in self._requests:
                if not self._hand_over(request):
                    return
            self._hand_over(_END)
        except Exception as exc:  # grpc.RpcError when the client goes away
            self._hand_over(exc)

    def _hand_over(self, item: object) -> bool:
        while not self._done.is_set():
            try:
                self._box.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False


@dataclass(frozen=True)
class StoredClip:
    index: int
    name: str
    path: Path
    size: int


def clip_format(clip: pb.ClipManifest) -> str:
    return (clip.format or Path(clip.name).suffix.lstrip(".")).lower()


def stored_path(audio_dir: Path, index: int, clip: pb.ClipManifest) -> Path:
    return audio_dir / f"{index:03d}.{clip_format(clip) or 'bin'}"


def validate_config(config: pb.DiarizeConfig, limits: ServerConfig, engines: Engines) -> JobRequest:
    """Everything that can be refused before any audio arrives."""
    validate_manifest(config.clips, limits)
    return job_request(config.options, engines)


def job_request(options: pb.DiarizeOptions, engines: Engines) -> JobRequest:
    """The one reading of a request's options: checked, its engines chosen, its count resolved.

    Admission calls it to refuse a bad request before its audio; the worker that claims the job
    calls it again on the config stored in the job row. That config is the durable record (it
    outlives a restart and moves with a job taken over by another worker), and the request is
    a function of it and the server's engines alone, so a second stored copy could only ever
    disagree with it."""
    _validate_options(options)
    embedder = engines.embedder(options.engine)
    transcriber = engines.transcriber_for(options)
    count = options.speakers
    return JobRequest(
        engine=embedder.name,
        link_threshold=(options.link_threshold if options.HasField("link_threshold")
                        else embedder.default_parameters().linking.threshold),
        speakers=CountBounds(min_speakers=count.exact or count.min, max_speakers=count.exact or count.max),
        transcriber=transcriber.name if transcriber else "",
        recognize=not options.HasField("recognize") or options.recognize,
        language=options.language,
    )


def validate_manifest(clips: Sequence[pb.ClipManifest], limits: ServerConfig) -> None:
    """The clips of a job or an enrollment: names, formats and sizes."""
    if not clips:
        raise errors.invalid_config("the manifest lists no clips")
    if len(clips) > limits.max_clips:
        raise errors.too_many_clips(len(clips), limits.max_clips)
    seen: set[str] = set()
    for index, clip in enumerate(clips):
        if not clip.name.strip():
            raise errors.invalid_config(f"clip {index} has no name; every clip needs one", index)
        if len(clip.name) > MAX_NAME_CHARS:
            raise errors.invalid_config(f"clip {index}'s name has {len(clip.name)} characters; at most {MAX_NAME_CHARS}",
                                        index, clip.name)
        if len(clip.format) > MAX_FORMAT_CHARS:
            raise errors.invalid_config(f"clip {index}'s format hint is longer than {MAX_FORMAT_CHARS} characters",
                                        index, clip.name)
        if clip.sha256 and not SHA256.fullmatch(clip.sha256):
            raise errors.invalid_config(f"clip {index}'s sha256 is not 64 hexadecimal characters", index, clip.name)
        if clip.name in seen:
            raise errors.invalid_config(f"clip {index}'s name is another clip's; names are unique within a request",
                                        index, clip.name)
        seen.add(clip.name)
    for index, clip in enumerate(clips):
        fmt = clip_format(clip)
        if fmt not in limits.formats:
            raise errors.unsupported_format(index, clip.name, fmt, limits.formats)
        if clip.size_bytes == 0:
            raise errors.empty_file(index, clip.name)
        if clip.size_bytes < 0:
            raise errors.invalid_config(f"clip {index}'s size_bytes is negative", index, clip.name)
        if clip.size_bytes > limits.max_file_bytes:
            raise errors.file_too_large(index, clip.name, clip.size_bytes, limits.max_file_bytes)


def _validate_options(options: pb.DiarizeOptions) -> None:
    if len(options.engine) > MAX_ENGINE_CHARS:
        raise errors.invalid_config(f"the engine name is longer than {MAX_ENGINE_CHARS} characters")
    if len(options.language) > MAX_LANGUAGE_CHARS:
        raise errors.invalid_config(f"the language code is longer than {MAX_LANGUAGE_CHARS} characters")
    count = options.speakers
    for field, flag, value, highest in (("exact", "--num-speakers", count.exact, MAX_SPEAKERS),
                                        ("min", "--min-speakers", count.min, MAX_SPEAKERS),
                                        ("max", "--max-speakers", count.max, None)):
        if value < 0 or (highest is not None and value > highest):
            allowed = f"1-{highest}" if highest else "1 or more"
            raise errors.option_out_of_range(f"speakers.{field}", flag, value, allowed)
    if count.exact and (count.min or count.max):
        raise errors.invalid_config("give either an exact speaker count or min/max, not both")
    if count.min and count.max and count.min > count.max:
        raise errors.invalid_config(f"min speakers ({count.min}) is greater than max speakers ({count.max})")
    if options.HasField("link_threshold") and not (
        math.isfinite(options.link_threshold) and -1.0 <= options.link_threshold <= 1.0
    ):
        raise errors.option_out_of_range("link_threshold", "--link-threshold", f"{options.link_threshold:g}",
                                         "a cosine similarity in [-1, 1]")


def check_durations(clips: list[StoredClip], seconds: list[float], limits: ServerConfig) -> None:
    """Refuse the job when a clip's or all clips' audio (audio.length) is over the limits, before
    it is queued: a few kilobytes can declare days of audio. Decoding checks again
    (pipeline.audio), for files that lie about their length."""
    for clip, clip_seconds in zip(clips, seconds, strict=True):
        if clip_seconds > limits.max_clip_seconds:
            raise errors.audio_too_long(clip.index, clip.name, clip_seconds, limits.max_clip_seconds)
    total = sum(seconds)
    if total > limits.max_job_seconds:
        raise errors.job_too_long(total, limits.max_job_seconds)


def check_free_space(folder: Path, needed: int, reserve: int) -> None:
    free = shutil.disk_usage(folder).free
    if free - needed < reserve:
        raise errors.storage_full(free, needed, reserve)


def receive_clips(
    requests: Iterator[pb.DiarizeRequest], config: pb.DiarizeConfig, audio_dir: Path, max_file_bytes: int,
    min_free_bytes: int,
) -> list[StoredClip]:
    """Write each clip's chunks to its file; the caller removes audio_dir if this raises."""
    audio_dir.mkdir(parents=True, exist_ok=True)
    clips = list(config.clips)
    declared = sum(clip.size_bytes for clip in clips)
    check_free_space(audio_dir, declared, min_free_bytes)
    paths = [stored_path(audio_dir, i, clip) for i, clip in enumerate(clips)]
    received = [0] * len(clips)
    digests = [hashlib.sha256() for _ in clips]
    handles = [path.open("wb") for path in paths]
    try:
        for request in requests:
            if request.WhichOneof("payload") != "chunk":
                raise errors.out_of_order("only audio chunks may follow the config")
            chunk = request.chunk
            i = chunk.clip_index
            if not 0 <= i < len(clips):
                raise errors.out_of_order(f"chunk for clip {i}, but the manifest has {len(clips)} clips")
            if len(chunk.data) > MAX_CHUNK_BYTES:
                raise errors.chunk_too_large(i, clips[i].name, len(chunk.data), MAX_CHUNK_BYTES)
            received[i] += len(chunk.data)
            if received[i] > max_file_bytes:
                raise errors.file_too_large(i, clips[i].name, received[i], max_file_bytes)
            if received[i] > clips[i].size_bytes:
                raise errors.upload_mismatch(
                    i, clips[i].name, f"more bytes arrived than the {clips[i].size_bytes} the manifest declared"
                )
            handles[i].write(chunk.data)
            digests[i].update(chunk.data)
        for handle in handles:
            handle.flush()  # here, so that a full disk is reported as such
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise errors.storage_full(shutil.disk_usage(audio_dir).free, declared, min_free_bytes) from exc
    finally:
        for handle in handles:
            with contextlib.suppress(OSError):  # flushed above, or the upload failed and its files go
                handle.close()
    for i, clip in enumerate(clips):
        if received[i] != clip.size_bytes:
            raise errors.upload_mismatch(
                i, clip.name, f"the upload ended after {received[i]} of {clip.size_bytes} bytes"
            )
        if clip.sha256 and digests[i].hexdigest() != clip.sha256.lower():
            raise errors.upload_mismatch(i, clip.name, "the SHA-256 of the bytes received differs from the manifest's")
    return [StoredClip(i, clip.name, paths[i], received[i]) for i, clip in enumerate(clips)]
