"""One job's clips through the pipeline, several at a time, each step followed by the job's
hook (progress, cancel, timing, artifacts: engines.base.Hook); then all clips' local speakers
are linked into global speakers (pipeline.linking; in a job that mixes phone lines and full
band, after a second look at its full-band clips: pipeline.matched_band; enrolled voices vouch
for links too), and speakers that match an enrolled voice are named (pipeline.recognize). What
happens within a clip is pipeline.clip; the result message, pipeline.assemble.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from speakerlink_server import errors
from speakerlink_server.engines.base import (
    Embedder, Hook, Segmenter, SpeechDetector, Transcriber, TranscriptionRequest, noop_hook,
)
from speakerlink_server.params import PipelineParams
from speakerlink_server.pipeline.assemble import Diarized, Summary, assemble
from speakerlink_server.pipeline.clip import ClipInput, analyse_clip, transcribe_clip
from speakerlink_server.pipeline.linking import global_voiceprints, link_speakers
from speakerlink_server.pipeline.matched_band import phone_prints, worth_a_phone_print
from speakerlink_server.pipeline.progress import DIARIZE_STEPS, TRANSCRIBE_STEPS, ClipGuard, JobProgress, Report
from speakerlink_server.pipeline.recognize import Voice, recognize, vouched
from speakerlink_server.pipeline.request import JobRequest

# Clips of a job analysed at once: decoding and segmentation overlap, and their windows meet in the
# embedder's device batches. A transcribing job runs the transcriber's own number at once.
CLIP_THREADS = 4


class DiarizationPipeline:
    """The engines a job runs on and the parameters they run with.

    Jobs, enrollment and recordings longer than a chunk all go through this one object. The
    parameters are the embedder's own (Embedder.default_parameters) unless given; a request may
    set only its link threshold. It holds nothing of a job's, so one may serve many.
    """

    def __init__(
        self, segmenter: Segmenter, speech: SpeechDetector, embedder: Embedder, params: PipelineParams | None = None, *,
        transcriber: Transcriber | None = None, chunk_seconds: float, max_clip_seconds: float,
    ) -> None:
        self.segmenter, self.speech, self.embedder, self.transcriber = segmenter, speech, embedder, transcriber
        self.params = params or embedder.default_parameters()
        self.chunk_seconds, self.max_clip_seconds = chunk_seconds, max_clip_seconds

    def default_request(self) -> JobRequest:
        """A request that asks for nothing: enrollment's, and a benchmark's."""
        return JobRequest(engine=self.embedder.name, link_threshold=self.params.linking.threshold)

    def progress(self, clips: Sequence[ClipInput], report: Report) -> JobProgress:
        """A hook that reports the job's percent as its clips go through this pipeline's steps."""
        return JobProgress(clips, TRANSCRIBE_STEPS if self.transcriber else DIARIZE_STEPS, report)

    def run(
        self, clips: list[ClipInput], request: JobRequest, hook: Hook = noop_hook, voices: Sequence[Voice] = (),
    ) -> Diarized:
        """Diarize and link the clips; speakers that match one of `voices` (enrolled with this
        embedder) get its name. Every step calls `hook`; raising from it stops the job."""
        started = time.monotonic()
        segmenter, embedder, transcriber, params = self.segmenter, self.embedder, self.transcriber, self.params
        guard = ClipGuard(hook)
        limits = {"chunk_seconds": self.chunk_seconds, "max_seconds": self.max_clip_seconds}
        if transcriber is None:
            analyse = functools.partial(analyse_clip, bounds=request.speakers, segmenter=segmenter, speech=self.speech,
                                        embedder=embedder, params=params, **limits)
            threads = CLIP_THREADS
        else:
            asked = TranscriptionRequest(request.language, request.speakers)
            analyse = functools.partial(transcribe_clip, request=asked, transcriber=transcriber, embedder=embedder,
                                        wait=guard.wait, **limits)
            threads = transcriber.concurrency
        with ThreadPoolExecutor(max_workers=min(threads, len(clips)), thread_name_prefix="speakerlink-clip") as pool:
            futures = [pool.submit(analyse, clip, hook=guard) for clip in clips]
            analyses = guard.gather(futures)
            hook("link", message=f"linking speakers across {len(clips)} clips")
            speakers = [s for a in analyses for s in a.speakers]
            used = replace(params, linking=replace(params.linking, threshold=request.link_threshold))
            wanted = worth_a_phone_print(speakers, used.linking, embedder.space)
            phone = None
            if wanted.any() and embedder.narrowband is not None:
                hook("link", message=f"hearing {int(wanted.sum())} full-band voices again through a phone line")
                look = functools.partial(phone_prints, embedder=embedder, windows=params.windows, hook=hook, **limits)
                per_clip = np.split(wanted, np.cumsum([len(a.speakers) for a in analyses])[:-1])
                phone = np.concatenate(list(pool.map(look, clips, analyses, per_clip)))
        links = link_speakers(speakers, used.linking, embedder.calibration, embedder.space, phone=phone,
                              vouched=vouched(speakers, list(voices), params.recognition, embedder.space))
        hook("link", {  # one row per local speaker, in clip order
            "clip_index": np.array([s.clip_index for s in speakers], dtype=np.int64),
            "local_index": np.array([s.local_index for s in speakers], dtype=np.int64),
            "speaker": np.array([link.global_index for link in links], dtype=np.int64),
            "confidence": np.array([link.confidence for link in links], dtype=np.float64),
        })
        taken = None if phone is None else [p if w else None for p, w in zip(phone, wanted, strict=True)]
        prints = global_voiceprints(speakers, links, taken)
        matches = recognize(prints, list(voices), params.recognition, embedder.calibration, embedder.space)
        warnings: list[str] = []
        if request.language and transcriber is None:
            warnings.append(f"language {errors.shorten(request.language)!r} was not used: "
                            "only transcription takes a language, and this job was not transcribed")
        engines = [transcriber.name, embedder.name] if transcriber else [segmenter.name, embedder.name]
        summary = Summary(request, used, engines, warnings, time.monotonic() - started)
        return assemble(clips, analyses, speakers, links, prints, matches, summary)
