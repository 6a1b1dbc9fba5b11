"""Background jobs: a bounded queue, a fixed set of workers, and live event streams.

The store is the source of truth (it outlives the process); a job that is queued or running
also has a _Live entry in memory that subscribers wait on, so progress reaches every stream
without polling the database. Progress percent only ever goes up.
"""

from __future__ import annotations

import collections
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server import errors
from speakerlink_server.config import ServerConfig
from speakerlink_server.engines.registry import Engines
from speakerlink_server.pipeline.run import ClipInput, run_pipeline
from speakerlink_server.store import JobRecord, JobStore
from speakerlink_server.uploads import stored_path

log = logging.getLogger(__name__)
WAKE_S = 1.0  # how often a waiting stream checks that its client is still there


class JobCancelled(Exception):
    pass


class _Live:
    """In-memory state of an unfinished job, shared by its worker and its subscribers.

    Every progress update is kept (a job has a few per clip), so a subscriber that falls
    behind still sees each stage in order rather than only the latest.
    """

    def __init__(self, progress: pb.Progress) -> None:
        self.cond = threading.Condition()
        self.history = [progress]
        self.terminal: pb.JobEvent | None = None
        self.cancel_requested = False


class JobManager:
    def __init__(self, config: ServerConfig, store: JobStore, engines: Engines) -> None:
        self._config = config
        self._store = store
        self._engines = engines
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: collections.deque[str] = collections.deque()
        self._live: dict[str, _Live] = {}
        self._stopping = False
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Requeue what a previous run left unfinished, remove the files no requeued job needs,
        then start workers and the janitor."""
        requeued = set()
        for record in self._store.unfinished():
            if self.audio_dir(record.job_id).is_dir():
                log.info("requeueing job %s left unfinished by the previous run", record.job_id)
                self._enqueue(record, force=True)
                requeued.add(record.job_id)
            else:
                self._store.fail(record.job_id, errors.job_interrupted().detail())
        self._sweep(keep=requeued)
        for n in range(self._config.workers):
            self._spawn(self._work, f"speakerlink-worker-{n}")
        self._spawn(self._janitor, "speakerlink-janitor")

    def _sweep(self, keep: set[str]) -> None:
        """Remove from the jobs folder everything but the requeued jobs' files. A previous run
        killed outright leaves uploads cut short (no job record points at them), the audio of
        jobs that ended just before (kept until their TTL otherwise), and folders a delete had
        begun to remove. Audio goes when its job ends, so nothing else there is needed."""
        for entry in self._config.jobs_dir.iterdir():
            if entry.name in keep:
                continue
            log.info("removing %r, left by the previous run", entry.name)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop taking work; a running job stays 'running' in the store and resumes on restart."""
        with self._lock:
            self._stopping = True
            self._stopped.set()
            self._wake.notify_all()
            lives = list(self._live.values())
        for live in lives:
            with live.cond:
                live.cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=self._config.grace_seconds)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def job_dir(self, job_id: str) -> Path:
        return self._config.jobs_dir / job_id

    def audio_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "audio"

    # ------------------------------------------------------------------ submitting

    def submit(self, record: JobRecord) -> int:
        """Queue a stored job; returns its position (0: next). Raises QUEUE_FULL."""
        return self._enqueue(record, force=False)

    def _enqueue(self, record: JobRecord, force: bool) -> int:
        with self._lock:
            if not force and len(self._queue) >= self._config.max_queued_jobs:
                raise errors.queue_full(self._config.max_queued_jobs)
            self._live[record.job_id] = _Live(record.progress)
            self._queue.append(record.job_id)
            self._wake.notify()
            return len(self._queue) - 1

    # ------------------------------------------------------------------ watching

    def events(self, job_id: str, is_active: Callable[[], bool]) -> Iterator[pb.JobEvent]:
        """The job's events from now on: current progress, each change, then the terminal event."""
        with self._lock:
            live = self._live.get(job_id)
        if live is None:
            record = self._store.get(job_id)
            if record is None:
                raise errors.job_not_found(job_id)
            yield self._terminal_event(record)
            return
        with live.cond:
            seen = len(live.history) - 1  # start from where the job is now
        while True:
            with live.cond:
                while len(live.history) == seen and live.terminal is None and is_active() and not self._stopping:
                    live.cond.wait(WAKE_S)
                fresh, terminal = live.history[seen:], live.terminal
            if not is_active() or (self._stopping and terminal is None):
                return
            seen += len(fresh)
            for progress in fresh:
                yield pb.JobEvent(job_id=job_id, progress=progress)
            if terminal is not None:
                yield terminal
                return

    def _terminal_event(self, record: JobRecord) -> pb.JobEvent:
        if record.state == pb.JOB_STATE_SUCCEEDED:
            return pb.JobEvent(job_id=record.job_id, result=pb.DiarizationResult.FromString(record.result))
        if record.state == pb.JOB_STATE_CANCELLED:
            return pb.JobEvent(job_id=record.job_id, cancelled=record.status())
        if record.state == pb.JOB_STATE_FAILED:
            return pb.JobEvent(job_id=record.job_id, error=record.error)
        raise errors.job_interrupted()

    # ------------------------------------------------------------------ cancel and delete

    def cancel(self, job_id: str) -> pb.JobStatus:
        """Cancel a queued job at once, a running one at its next stage; finished jobs stay as they are."""
        with self._lock:
            live = self._live.get(job_id)
            queued = job_id in self._queue
            if queued:
                self._queue.remove(job_id)
        if live is None:
            record = self._store.get(job_id)
            if record is None:
                raise errors.job_not_found(job_id)
            return record.status()
        if queued:
            self._store.cancel(job_id)
            self._finish(job_id, live)
        else:
            with live.cond:
                live.cancel_requested = True
        return self._store.get(job_id).status()

    def delete(self, job_id: str) -> bool:
        """Remove the job's audio and result now; a running job is cancelled first."""
        if self._store.get(job_id) is None:
            return False
        try:
            self.cancel(job_id)
        except errors.ServiceError:
            pass
        self._store.delete(job_id)
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        return True

    # ------------------------------------------------------------------ workers

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job_id = self._queue.popleft()
                live = self._live[job_id]
            try:
                self._run(job_id, live)
            except Exception:  # the worker must survive anything one job does
                log.exception("job %s crashed its worker", job_id)

    def _run(self, job_id: str, live: _Live) -> None:
        record = self._store.get(job_id)
        if record is None:  # deleted while queued
            self._drop_live(job_id)
            return
        self._store.set_running(job_id)
        clips = [
            ClipInput(i, clip.name, stored_path(self.audio_dir(job_id), i, clip), float(clip.size_bytes))
            for i, clip in enumerate(record.config.clips)
        ]

        def report(stage: str, fraction: float, clip_index: int, message: str) -> None:
            self._publish(job_id, live, pb.Progress(stage=stage, percent=100.0 * fraction, clip_index=clip_index, message=message))

        def check_cancelled() -> None:
            if live.cancel_requested or self._stopping:
                raise JobCancelled()

        try:
            options = record.config.options
            embedder = self._engines.embedder(options.engine)
            transcriber = self._engines.transcriber_for(options)
            recognizing = not options.HasField("recognize") or options.recognize
            diarized = run_pipeline(
                clips, options, self._engines.segmenter, embedder, transcriber, report, check_cancelled, self._config.chunk_seconds,
                self._config.max_clip_seconds, self._store.voiceprints(record.tenant, embedder.name) if recognizing else (),
            )
        except JobCancelled:
            if self._stopping and not live.cancel_requested:
                return  # stays 'running' in the store: requeued when the server starts again
            self._store.cancel(job_id)
        except errors.ServiceError as exc:
            self._store.fail(job_id, exc.detail())
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._store.fail(job_id, errors.internal(f"processing failed: {type(exc).__name__}: {exc}").detail())
        else:
            result = diarized.result
            result.job_id = job_id
            done = pb.Progress(stage="done", percent=100.0, clip_index=-1, message="finished")
            self._store.save_job_prints(job_id, embedder.name, diarized.voiceprints)
            self._store.finish(job_id, result, done)
            self._publish(job_id, live, done, persist=False)
        self._finish(job_id, live)

    def _publish(self, job_id: str, live: _Live, progress: pb.Progress, persist: bool = True) -> None:
        with live.cond:
            progress.percent = max(progress.percent, live.history[-1].percent)
            live.history.append(progress)
            live.cond.notify_all()
        if persist:
            self._store.save_progress(job_id, progress)

    def _finish(self, job_id: str, live: _Live) -> None:
        """Publish the terminal event and drop the job's audio: the result is in the store."""
        record = self._store.get(job_id)
        terminal = self._terminal_event(record) if record is not None else None
        with live.cond:
            live.terminal = terminal or pb.JobEvent(job_id=job_id, error=errors.job_not_found(job_id).detail())
            live.cond.notify_all()
        self._drop_live(job_id)
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def _drop_live(self, job_id: str) -> None:
        with self._lock:
            self._live.pop(job_id, None)

    # ------------------------------------------------------------------ TTL

    def _janitor(self) -> None:
        interval = min(60.0, max(1.0, self._config.job_ttl_seconds / 10))
        while not self._stopped.wait(interval):
            for job_id in self._store.expired(time.time()):
                log.info("job %s expired; removing it", job_id)
                self.delete(job_id)
