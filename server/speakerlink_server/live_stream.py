"""StreamDiarize (F18): one live stream, from its config to the job it leaves.

The config is checked before any audio is taken. Frames are decoded as they come
(pipeline.live_audio) and fed to the live diarizer (pipeline.live), whose updates go back at
once. The stream holds one of the tenant's upload slots while it runs, and its audio counts
against the tenant's daily quota as it is heard, a block at a time. However it ends (the client
half-closes, a limit is met, the client goes away), what was heard becomes a finished job of one
clip, stored with its speakers' voiceprints like any job's; a limit's error comes after the result.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from speakerlink.ids import new_job_id
from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server import errors
from speakerlink_server.audio_format import SAMPLE_RATE
from speakerlink_server.auth import Tenants
from speakerlink_server.config import ServerConfig
from speakerlink_server.engines.base import CountBounds
from speakerlink_server.engines.registry import Engines
from speakerlink_server.pipeline.assemble import Diarized, Summary, assemble, global_label
from speakerlink_server.pipeline.clip import ClipAnalysis, ClipInput
from speakerlink_server.pipeline.linking import Link, LocalSpeaker, global_voiceprints
from speakerlink_server.pipeline.live import MAX_LATENCY, MIN_LATENCY, LiveDiarizer, LiveUpdate, step_seconds
from speakerlink_server.pipeline.live_audio import live_decoder
from speakerlink_server.pipeline.request import JobRequest
from speakerlink_server.pipeline.segments import Turn, speech_seconds
from speakerlink_server.quotas import Quotas
from speakerlink_server.store import Store
from speakerlink_server.uploads import (
    MAX_CHUNK_BYTES,
    MAX_ENGINE_CHARS,
    MAX_NAME_CHARS,
    MAX_SPEAKERS,
    IdleLimitedStream,
)

log = logging.getLogger(__name__)

DEFAULT_LATENCY = 2.0
LOWEST_RATE, HIGHEST_RATE = 8000, 48000
MAX_CHANNELS = 8
# The stream's audio is charged to the tenant's daily quota in blocks of this many seconds, the
# last one when it ends; it ends where the day's audio runs out.
QUOTA_BLOCK_SECONDS = 10.0
DEFAULT_NAME = "live"
ENCODINGS = {pb.AUDIO_ENCODING_PCM_S16LE: "pcm_s16le", pb.AUDIO_ENCODING_MULAW: "mulaw",
             pb.AUDIO_ENCODING_ALAW: "alaw", pb.AUDIO_ENCODING_CONTAINER: "container"}


@dataclass(frozen=True)
class LiveRequest:
    """A StreamConfig, checked and resolved once."""

    latency: float
    speakers: CountBounds
    recognize: bool
    engine: str  # the embedder's name, "auto" resolved
    encoding: str  # pipeline.live_audio's name for it
    sample_rate: int
    channels: int
    name: str


def live_request(config: pb.StreamConfig, engines: Engines) -> LiveRequest:
    latency = config.latency_seconds or DEFAULT_LATENCY
    if not MIN_LATENCY <= latency <= MAX_LATENCY:
        raise errors.option_out_of_range("latency_seconds", "--latency", config.latency_seconds,
                                         f"{MIN_LATENCY:g}-{MAX_LATENCY:g} seconds")
    if config.encoding not in ENCODINGS:
        known = ", ".join(pb.AudioEncoding.Name(e) for e in ENCODINGS)
        raise errors.invalid_config(f"encoding {config.encoding} is not one this server streams; send one of {known}")
    container = config.encoding == pb.AUDIO_ENCODING_CONTAINER
    if not container and not LOWEST_RATE <= config.sample_rate <= HIGHEST_RATE:
        raise errors.option_out_of_range("sample_rate", "--sample-rate", config.sample_rate,
                                         f"{LOWEST_RATE}-{HIGHEST_RATE} Hz")
    if not 0 <= config.channels <= MAX_CHANNELS:
        raise errors.option_out_of_range("channels", "--channels", config.channels, f"1-{MAX_CHANNELS}")
    if len(config.name) > MAX_NAME_CHARS:
        raise errors.invalid_config(f"the stream's name has {len(config.name)} characters; at most {MAX_NAME_CHARS}")
    if len(config.engine) > MAX_ENGINE_CHARS:
        raise errors.invalid_config(f"the engine name is longer than {MAX_ENGINE_CHARS} characters")
    count = config.speakers
    most = count.exact or count.max
    if count.exact < 0 or count.max < 0 or most > MAX_SPEAKERS:
        raise errors.option_out_of_range("speakers.max", "--max-speakers", count.exact or count.max, f"1-{MAX_SPEAKERS}")
    embedder = engines.embedder(config.engine)
    return LiveRequest(
        latency=latency, speakers=CountBounds(max_speakers=most), engine=embedder.name,
        recognize=not config.HasField("recognize") or config.recognize,
        encoding=ENCODINGS[config.encoding], sample_rate=config.sample_rate, channels=config.channels or 1,
        name=config.name.strip() or DEFAULT_NAME,
    )


# The SDK, the CLI and the page send frames of 100 ms: a window that ends where a frame ends is
# analysed the moment that frame comes, so streams step early by whole frames.
FRAME_SECONDS = 0.1


class StepInstants:
    """When in wall-clock time the running streams step, so that a new one steps apart from them.

    Streams started in the same instant would ask the engines for their windows in the same
    instant every step, and the last one served would fall behind its latency. A new stream
    whose instant (modulo its step) falls on a running stream's moves away from the others by
    stepping a fraction of a step early (LiveDiarizer.phase), which leaves how late a frame is
    decided as it was."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[int, float] = {}  # id -> a wall-clock instant the stream steps at
        self._ids = itertools.count()

    @contextlib.contextmanager
    def stream(self, step: float) -> Iterator[float]:
        """The phase of a stream of this step starting now, held while the stream runs. Where
        its own instant is within a frame of a running stream's, of the whole numbers of frames it
        may step early by, the one that puts its instant farthest from every running stream's,
        then nearest to the fewest."""
        with self._lock:
            now = self._clock()
            taken = np.array([instant % step for instant in self._running.values()])

            def crowding(early: float) -> tuple[float, int, float]:
                gaps = np.abs((now + step - early) % step - taken)
                gaps = np.minimum(gaps, step - gaps)
                return -float(gaps.min()), int((gaps < FRAME_SECONDS / 4).sum()), early

            early = 0.0  # a stream a frame or more apart from every other keeps its own instant
            if taken.size and -crowding(early)[0] < FRAME_SECONDS - 1e-9:
                frames = range(max(1, math.ceil(step / FRAME_SECONDS - 1e-9)))
                early = min((k * FRAME_SECONDS for k in frames), key=crowding)
            phase = early / step
            key = next(self._ids)
            self._running[key] = now + step - early
        try:
            yield phase
        finally:
            with self._lock:
                del self._running[key]


class LiveStreams:
    def __init__(self, config: ServerConfig, store: Store, engines: Engines, tenants: Tenants, quotas: Quotas) -> None:
        self._config, self._store, self._engines, self._tenants, self._quotas = config, store, engines, tenants, quotas
        self._instants = StepInstants()

    def serve(self, requests: Iterator[pb.StreamRequest], context: grpc.ServicerContext) -> Iterator[pb.StreamEvent]:
        tenant = self._tenants.of(context)
        job_id = new_job_id()
        try:
            self._quotas.precheck(tenant, job=False)
            with self._quotas.upload(tenant), IdleLimitedStream(requests, self._config.upload_idle_seconds) as frames:
                first = next(frames, None)
                if first is None or first.WhichOneof("payload") != "config":
                    raise errors.out_of_order("the first message must be the config")
                request = live_request(first.config, self._engines)
                with self._instants.stream(step_seconds(request.latency)) as phase:
                    session = _Session(job_id, tenant, request, self._config, self._store, self._engines, self._quotas,
                                       phase)
                    yield pb.StreamEvent(job_id=job_id, accepted=pb.Accepted(job_id=job_id))
                    log.info("live stream %s started at %d Hz, latency %g s", job_id, request.sample_rate,
                             request.latency, extra={"job_id": job_id, "tenant": tenant})
                    yield from session.run(frames, context)
        except errors.ServiceError as exc:
            log.info("live stream %s ended: %s %s", job_id, exc.code, exc)
            exc.abort(context)


class _Session:
    """One accepted stream: its decoder, diarizer and the job it becomes."""

    def __init__(self, job_id: str, tenant: str, request: LiveRequest, config: ServerConfig, store: Store,
                 engines: Engines, quotas: Quotas, phase: float) -> None:
        self.job_id, self.tenant, self.request = job_id, tenant, request
        self._config, self._store, self._quotas = config, store, quotas
        self._embedder = engines.embedder(request.engine)
        self._params = self._embedder.default_parameters()
        voices = store.voices.voiceprints(tenant, self._embedder.name) if request.recognize else []
        self.diarizer = LiveDiarizer(engines.segmenter, engines.speech, self._embedder, self._params, request.latency,
                                     request.speakers.max_speakers or MAX_SPEAKERS, list(voices), phase)
        self._decoder = live_decoder(request.encoding, request.sample_rate, request.channels, request.name)
        self._bytes = 0
        self._charged = 0.0  # seconds counted against the tenant's daily audio so far
        self._cap = quotas.audio_left(tenant)  # the stream ends before it hears more than this
        self._started, self._clock = time.time(), time.monotonic()
        self._kept: pb.DiarizationResult | None = None

    def run(self, frames: Iterator[pb.StreamRequest], context: grpc.ServicerContext) -> Iterator[pb.StreamEvent]:
        """Updates while audio comes, then the result, then the error a limit ended it with.
        The job is kept even where the generator is closed at a yield (the caller went away)."""
        ended: errors.ServiceError | None = None
        tail: list[LiveUpdate] = []
        try:
            try:
                for message in frames:
                    for update in self._take(message, tail):
                        yield self._event(update)
                tail += self._hear(self._decoder.flush(), tail)
            except errors.ServiceError as exc:
                ended = exc
            except grpc.RpcError:  # the caller went away: keep what was heard
                ended = errors.caller_left()
            tail.append(self.diarizer.finish())
            result = self._keep()
            if context.is_active():
                for update in tail:
                    yield self._event(update)
                yield pb.StreamEvent(job_id=self.job_id, result=result)
        finally:
            self._decoder.close()
            self._keep()
        if ended is not None:
            raise ended

    def _take(self, message: pb.StreamRequest, tail: list[LiveUpdate]) -> list[LiveUpdate]:
        """The updates a frame brings; where it passes a limit, the part within it goes to
        `tail` and the limit's error is raised."""
        if message.WhichOneof("payload") != "audio":
            raise errors.out_of_order("after the config, a stream sends only audio")
        if len(message.audio) > MAX_CHUNK_BYTES:
            raise errors.chunk_too_large(0, self.request.name, len(message.audio), MAX_CHUNK_BYTES)
        self._bytes += len(message.audio)
        return self._hear(self._decoder.decode(message.audio), tail)

    def _hear(self, samples: np.ndarray, tail: list[LiveUpdate]) -> list[LiveUpdate]:
        """Feed decoded samples to the diarizer, within the clip length and the tenant's day.
        Where they pass a limit, the part within it goes to `tail` and the limit is raised."""
        fed = self.diarizer.received
        heard = (fed + samples.size) / SAMPLE_RATE
        limit = min(self._config.max_clip_seconds, self._cap)
        if heard > limit:
            cut = max(0, int(limit * SAMPLE_RATE) - fed)
            within = self._hear(samples[:cut], tail)
            try:
                if heard > self._config.max_clip_seconds:
                    raise errors.audio_too_long(0, self.request.name, heard, self._config.max_clip_seconds)
                self._quotas.charge(self.tenant, heard - self._charged)  # AUDIO_QUOTA, unless the day freed some
            except errors.ServiceError:
                tail += within
                raise
            self._charged = heard
            self._cap = heard + self._quotas.audio_left(self.tenant)
            return within + self.diarizer.feed(samples[cut:])
        while heard - self._charged >= QUOTA_BLOCK_SECONDS:
            self._quotas.charge(self.tenant, QUOTA_BLOCK_SECONDS)
            self._charged += QUOTA_BLOCK_SECONDS
            self._cap = self._charged + self._quotas.audio_left(self.tenant)
        return self.diarizer.feed(samples)

    def _event(self, update: LiveUpdate) -> pb.StreamEvent:
        return pb.StreamEvent(job_id=self.job_id, update=pb.StreamUpdate(
            decided_until=round(update.decided_until, 3), heard_seconds=round(update.heard_seconds, 3),
            final_turns=[self._turn(t) for t in update.final],
            provisional_turns=[self._turn(t) for t in update.provisional],
        ))

    def _turn(self, turn: Turn) -> pb.LiveTurn:
        """A turn on the wire, with its speaker's name where one is known by now."""
        order = self.diarizer.order
        match = self.diarizer.names.get(order[turn.speaker]) if turn.speaker < len(order) else None
        return pb.LiveTurn(start=round(turn.start, 3), end=round(turn.end, 3), speaker=global_label(turn.speaker),
                           name=match.name if match else "")

    def _keep(self) -> pb.DiarizationResult:
        """Store the stream as a finished job, once, and count the audio the quota has not yet."""
        if self._kept is not None:
            return self._kept
        diarized = self._diarized()
        result = diarized.result
        result.job_id = self.job_id
        clip = pb.ClipManifest(name=self.request.name, size_bytes=self._bytes, format=self.request.encoding)
        config = pb.DiarizeConfig(options=pb.DiarizeOptions(
            speakers=pb.SpeakerCount(max=self.request.speakers.max_speakers), engine=self.request.engine,
            recognize=self.request.recognize), clips=[clip])
        done = pb.Progress(stage="done", percent=100.0, clip_index=-1, message="finished")
        with self._store.database.transaction():
            self._store.jobs.add_finished(self.job_id, config, self._config.job_ttl_seconds, self.tenant, self._started,
                                          result, done)
            self._store.prints.save(self.job_id, self._embedder.name, diarized.voiceprints)
        self._kept = result
        heard = self.diarizer.received / SAMPLE_RATE
        try:
            self._quotas.charge(self.tenant, max(0.0, heard - self._charged))
        except errors.ServiceError:  # another stream of the tenant's took the rest of the day meanwhile
            log.warning("live stream %s: its last %.1f s were heard past the tenant's daily audio", self.job_id,
                        heard - self._charged, extra={"job_id": self.job_id, "tenant": self.tenant})
        log.info("live stream %s stored: %.1f s of audio, %d speakers", self.job_id, heard, len(result.speakers),
                 extra={"job_id": self.job_id, "tenant": self.tenant})
        return result

    def _diarized(self) -> Diarized:
        """The stream's final turns as the result of a one-clip job, labelled as they were sent."""
        diarizer = self.diarizer
        rank = {speaker: n for n, speaker in enumerate(diarizer.order)}
        prints = diarizer.voiceprints()
        turns = [Turn(t.start, t.end, rank[t.speaker]) for t in diarizer.turns]
        speech = speech_seconds(turns, len(rank))
        speakers = [LocalSpeaker(0, n, prints[s], float(speech[n]), bool(diarizer.narrowband)) for s, n in rank.items()]
        clip = ClipInput(0, self.request.name, Path(self.request.name), 1.0)  # no file: the stream's name
        analysis = ClipAnalysis(diarizer.heard_seconds, turns, speakers)
        request = JobRequest(engine=self._embedder.name, link_threshold=self._params.linking.threshold,
                             speakers=self.request.speakers, recognize=self.request.recognize)
        summary = Summary(request, self._params, [diarizer.segmenter.name, self._embedder.name], [],
                          time.monotonic() - self._clock)
        matches = [diarizer.names.get(s) for s in diarizer.order]
        links = [Link(n, 1.0) for n in range(len(speakers))]
        return assemble([clip], [analysis], speakers, links, global_voiceprints(speakers, links), matches, summary)
