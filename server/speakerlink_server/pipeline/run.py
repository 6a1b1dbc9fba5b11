"""One job's clips through the pipeline, several at a time, reporting progress and honouring
cancellation; then all clips' local speakers are linked into global speakers
(pipeline.linking), and speakers that match an enrolled voice are named (pipeline.recognize).
What happens within a clip is pipeline.clip; the result message, pipeline.assemble.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import replace

from speakerlink_server import errors
from speakerlink_server.engines.base import Embedder, Hook, Segmenter, Transcriber, TranscriptionRequest
from speakerlink_server.params import PipelineParams
from speakerlink_server.pipeline.assemble import Diarized, Summary, assemble
from speakerlink_server.pipeline.clip import ClipAnalysis, ClipInput, analyse_clip, transcribe_clip
from speakerlink_server.pipeline.linking import global_voiceprints, link_speakers
from speakerlink_server.pipeline.recognize import Voice, recognize
from speakerlink_server.pipeline.request import JobRequest

# Where each stage starts within a clip's share of the progress percent; linking takes the
# last LINK_SHARE of the job. Diarizing on a CPU (benchmarks/gpu_speed.py): decoding runs
# along with the rest, segmentation takes about 27 % of a clip's time, embedding 67 %,
# clustering and labelling 3 %. Transcribing: mostly waiting for the transcriber.
DIARIZE_STAGES = {"decode": 0.0, "segment": 0.03, "embed": 0.30, "cluster": 0.97}
TRANSCRIBE_STAGES = {
    "transcribe-uploading": 0.0, "transcribe-queued": 0.10, "transcribe-processing": 0.20,
    "transcribe-completed": 0.85, "embed": 0.88,
}
LINK_SHARE = 0.05
# Clips of a job analysed at once: decoding and segmentation overlap, and their windows meet in the
# embedder's device batches. A transcribing job runs the transcriber's own number at once.
CLIP_THREADS = 4
WAIT_SLICE_S = 0.2  # how often a waiting clip checks for cancellation

Report = Callable[[str, float, int, str], None]
"""report(stage, fraction of the whole job done, clip index or -1, message)."""


class DiarizationPipeline:
    """The engines a job runs on and the parameters they run with.

    Jobs, enrollment and recordings longer than a chunk all go through this one object. The
    parameters are the embedder's own (Embedder.default_parameters) unless given; a request may
    set only its link threshold. It holds nothing of a job's, so one may serve many.
    """

    def __init__(
        self, segmenter: Segmenter, embedder: Embedder, params: PipelineParams | None = None, *,
        transcriber: Transcriber | None = None, chunk_seconds: float, max_clip_seconds: float,
    ) -> None:
        self.segmenter, self.embedder, self.transcriber = segmenter, embedder, transcriber
        self.params = params or embedder.default_parameters()
        self.chunk_seconds, self.max_clip_seconds = chunk_seconds, max_clip_seconds

    def default_request(self) -> JobRequest:
        """A request that asks for nothing: enrollment's, and a benchmark's."""
        return JobRequest(engine=self.embedder.name, link_threshold=self.params.linking.threshold)

    def run(
        self, clips: list[ClipInput], request: JobRequest, report: Report, check_cancelled: Callable[[], None],
        voices: Sequence[Voice] = (),
    ) -> Diarized:
        """Diarize and link the clips; speakers that match one of `voices` (enrolled with this
        embedder) get its name."""
        started = time.monotonic()
        segmenter, embedder, transcriber, params = self.segmenter, self.embedder, self.transcriber, self.params
        stages, threads = (TRANSCRIBE_STAGES, transcriber.concurrency) if transcriber else (DIARIZE_STAGES, CLIP_THREADS)
        progress = _JobProgress(clips, stages, report, check_cancelled)
        limits = {"chunk_seconds": self.chunk_seconds, "max_seconds": self.max_clip_seconds}
        if transcriber is None:
            analyse = functools.partial(analyse_clip, bounds=request.speakers, segmenter=segmenter, embedder=embedder,
                                        params=params, **limits)
        else:
            asked = TranscriptionRequest(request.language, request.speakers)
            analyse = functools.partial(transcribe_clip, request=asked, transcriber=transcriber, embedder=embedder,
                                        wait=progress.wait, **limits)
        with ThreadPoolExecutor(max_workers=min(threads, len(clips)), thread_name_prefix="speakerlink-clip") as pool:
            futures = [pool.submit(analyse, clip, stage=functools.partial(progress.stage, clip.index)) for clip in clips]
            analyses = progress.gather(futures)
        check_cancelled()
        report("link", 1.0 - LINK_SHARE, -1, f"linking speakers across {len(clips)} clips")
        speakers = [s for a in analyses for s in a.speakers]
        used = replace(params, linking=replace(params.linking, threshold=request.link_threshold))
        links = link_speakers(speakers, used.linking, embedder.calibration)
        prints = global_voiceprints(speakers, links)
        matches = recognize(prints, list(voices), params.recognition, embedder.calibration)
        warnings: list[str] = []
        if request.language and transcriber is None:
            warnings.append(f"language {errors.shorten(request.language)!r} was not used: "
                            "only transcription takes a language, and this job was not transcribed")
        engines = [transcriber.name, embedder.name] if transcriber else [segmenter.name, embedder.name]
        summary = Summary(request, used, engines, warnings, time.monotonic() - started)
        return assemble(clips, analyses, speakers, links, prints, matches, summary)


class _Aborted(Exception):
    """Another clip of the job failed; this one stops at its next check, between batches."""


class _JobProgress:
    """Job-wide progress from every clip's current stage, for clips analysed side by side.

    It also stops the other clips at their next check (each stage's start and each of its batches)
    when one fails or the job is cancelled.
    """

    def __init__(
        self, clips: list[ClipInput], stages: dict[str, float], report: Report, check_cancelled: Callable[[], None]
    ) -> None:
        total = sum(c.weight for c in clips) or 1.0
        self._stages = stages
        self._share = {c.index: (1.0 - LINK_SHARE) * c.weight / total for c in clips}
        self._offset = dict.fromkeys(self._share, 0.0)
        self._report, self._check = report, check_cancelled
        self._lock = threading.Lock()
        self._abort = threading.Event()

    def stage(self, clip_index: int, name: str, message: str, part: tuple[int, int] = (0, 1)) -> Hook:
        """Clip `clip_index` begins stage `name` (of its chunk part[0] out of part[1]). The hook
        returned moves the percent toward the next stage's start as the stage's batches complete,
        and stops the clip there when the job is cancelled."""
        self._checkpoint()
        starts = sorted(self._stages.values())
        begin = self._stages[name]
        end = next((s for s in starts if s > begin), 1.0)

        def hook(completed: int, total: int) -> None:
            self._checkpoint()
            if total > 0 and completed > 0:
                self._move(clip_index, name, (part[0] + begin + (end - begin) * min(completed / total, 1.0)) / part[1], message)

        self._move(clip_index, name, (part[0] + begin) / part[1], message)
        return hook

    def _move(self, clip_index: int, name: str, offset: float, message: str) -> None:
        with self._lock:  # reports leave in the order their percents were computed
            self._offset[clip_index] = max(self._offset[clip_index], offset)
            done = sum(self._share[i] * self._offset[i] for i in self._share)
            self._report(name, done, clip_index, message)

    def wait(self, seconds: float) -> None:
        """Sleep, but stop at once when the job is cancelled or another clip fails."""
        until = time.monotonic() + seconds
        while True:
            self._checkpoint()
            left = until - time.monotonic()
            if left <= 0:
                return
            self._abort.wait(min(left, WAIT_SLICE_S))

    def _checkpoint(self) -> None:
        if self._abort.is_set():
            raise _Aborted()
        self._check()

    def gather(self, futures: list[Future]) -> list[ClipAnalysis]:
        """Every clip's analysis in clip order, or the first real failure once all have stopped."""
        failure: BaseException | None = None
        for future in as_completed(futures):
            error = future.exception()
            if error is not None and not isinstance(error, _Aborted):
                failure = failure or error
                self._abort.set()
        if failure is not None:
            raise failure
        return [future.result() for future in futures]
