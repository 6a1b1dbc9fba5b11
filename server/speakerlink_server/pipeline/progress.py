"""A job's progress from the steps of its clips, which run side by side, and the stop of the
other clips when one fails.

JobProgress is a hook (engines.base.Hook): each clip moves through its share of the percent
as its steps begin and their batches complete. ClipGuard wraps the job's hook for the clips'
threads: once a clip fails, the others stop at their next hook call, and a transcribing clip
waits through it, so a cancel stops its polling too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, as_completed

from speakerlink_server.engines.base import ClipPart, Hook
from speakerlink_server.pipeline.clip import ClipAnalysis, ClipInput

# Where each step starts within a clip's share of the progress percent (of one chunk's, in a
# long recording); linking takes the last LINK_SHARE of the job. Diarizing on a CPU
# (benchmarks/gpu_speed.py): decoding runs along with the rest, segmentation takes about 27 %
# of a clip's time, embedding 67 %, clustering and turns 3 %. Transcribing: mostly waiting for
# the transcriber.
DIARIZE_STEPS = {"decode": 0.0, "segment": 0.03, "embed": 0.30, "cluster": 0.97, "turns": 0.99}
TRANSCRIBE_STEPS = {
    "transcribe-uploading": 0.0, "transcribe-queued": 0.10, "transcribe-processing": 0.20,
    "transcribe-completed": 0.85, "embed": 0.88,
}
LINK_SHARE = 0.05
WAIT_SLICE_S = 0.2  # how often a waiting clip asks the hook whether to stop

Report = Callable[[str, float, int, str], None]
"""report(step, fraction of the whole job done, clip index or -1, message)."""


class JobProgress:
    """Job-wide progress from every clip's current step. A step's beginning puts its clip at the
    step's start; its batches move it toward the next step's start. Reports leave in the order
    their percents were computed, and the percent never goes back."""

    def __init__(self, clips: Sequence[ClipInput], steps: dict[str, float], report: Report) -> None:
        total = sum(c.weight for c in clips) or 1.0
        self._steps = steps
        self._share = {c.index: (1.0 - LINK_SHARE) * c.weight / total for c in clips}
        self._offset = dict.fromkeys(self._share, 0.0)
        self._message = dict.fromkeys(self._share, "")  # of each clip's current step, repeated with its batches
        self._report = report
        self._lock = threading.Lock()

    def __call__(self, step: str, artifact: object = None, *, completed: int | None = None,
                 total: int | None = None, clip: ClipPart | None = None, message: str = "") -> None:
        if artifact is not None:
            return  # a step's end: the next one's beginning moves the percent
        if clip is None:
            if completed is None:  # a step of the whole job: linking, once every clip is done
                with self._lock:
                    self._report(step, 1.0 - LINK_SHARE, -1, message)
            return
        begin = self._steps.get(step)
        if begin is None:
            return
        if completed is None:
            self._message[clip.index] = message
            done = 0.0
        elif total and completed:
            done = min(completed / total, 1.0)
        else:
            return
        end = min((s for s in self._steps.values() if s > begin), default=1.0)
        offset = (clip.chunk + begin + (end - begin) * done) / clip.chunks
        with self._lock:
            self._offset[clip.index] = max(self._offset[clip.index], offset)
            fraction = sum(self._share[i] * self._offset[i] for i in self._share)
            self._report(step, fraction, clip.index, self._message[clip.index])


class Aborted(Exception):
    """Another clip of the job failed; this one stops at its next hook call."""


class ClipGuard:
    """The job's hook as the clips' threads call it: once one clip fails, every other stops at
    its next call (each step's beginning and end, and each batch)."""

    def __init__(self, hook: Hook) -> None:
        self._hook = hook
        self._abort = threading.Event()

    def __call__(self, step: str, artifact: object = None, *, completed: int | None = None,
                 total: int | None = None, clip: ClipPart | None = None, message: str = "") -> None:
        if self._abort.is_set():
            raise Aborted()
        self._hook(step, artifact, completed=completed, total=total, clip=clip, message=message)

    def wait(self, seconds: float, clip: ClipPart) -> None:
        """Sleep, but stop at once when another clip fails, and within WAIT_SLICE_S when the hook
        raises (the job is cancelled)."""
        until = time.monotonic() + seconds
        while True:
            self("transcribe", completed=0, total=0, clip=clip)
            left = until - time.monotonic()
            if left <= 0:
                return
            self._abort.wait(min(left, WAIT_SLICE_S))

    def gather(self, futures: list[Future]) -> list[ClipAnalysis]:
        """Every clip's analysis in clip order, or the first real failure once all have stopped."""
        failure: BaseException | None = None
        for future in as_completed(futures):
            error = future.exception()
            if error is not None and not isinstance(error, Aborted):
                failure = failure or error
                self._abort.set()
        if failure is not None:
            raise failure
        return [future.result() for future in futures]
