"""Background jobs: workers claim them from the database under leases, and watchers follow them.

The database is the queue. A worker thread of any server that shares it takes the oldest
queued job, or a running one whose lease has run out (its worker died), and the server renews
its workers' leases every fifth of --lease-seconds (at most every second). A result, failure or
cancel is written only under a lease still held, so a job taken over after a lapsed lease runs
to completion once: the slow worker's late result is dropped, and what it had done is discarded.

A job running in this process has a _Live entry that its watchers here wait on, so they get
every progress update as it happens; a watcher of a job queued or running elsewhere reads the
database every POLL_S, so it is at most that far behind. A cancel or delete asked of any
server reaches the job's worker through the database at its next renewal (at once when it
runs here). Progress percent only ever goes up.

A worker that loses the database for longer than its reconnect window stops working on the
job and hands it back to the queue once the database answers again: the job runs again then,
rather than failing for good.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence

from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server import errors, logs, metrics
from speakerlink_server.audio_store import AudioStore
from speakerlink_server.capacity import WorkerSlots
from speakerlink_server.config import ServerConfig
from speakerlink_server.database import DatabaseUnavailable
from speakerlink_server.engines.base import Hook
from speakerlink_server.engines.registry import Engines
from speakerlink_server.pipeline.clip import ClipInput
from speakerlink_server.pipeline.hooks import Hooks
from speakerlink_server.pipeline.progress import Report
from speakerlink_server.pipeline.run import DiarizationPipeline
from speakerlink_server.store import Store
from speakerlink_server.store.jobs import JobRecord
from speakerlink_server.uploads import job_request, stored_path

log = logging.getLogger(__name__)
WAKE_S = 1.0  # how often a waiting stream checks that its client is still there
POLL_S = 0.5  # how often an idle worker, or a watcher of a job running elsewhere, reads the database


class JobCancelled(Exception):
    pass


def state_name(state: int) -> str:
    """pb.JOB_STATE_SUCCEEDED -> "succeeded", for logs and metrics."""
    return pb.JobState.Name(state).removeprefix("JOB_STATE_").lower()


class _Live:
    """In-memory state of a job this process runs, shared by its worker and its watchers here.

    Every progress update is kept (a job has a few per clip), so a watcher that falls behind
    still sees each stage in order rather than only the latest.
    """

    def __init__(self, progress: pb.Progress) -> None:
        self.cond = threading.Condition()
        self.history = [progress]
        self.terminal: pb.JobEvent | None = None
        self.cancel_requested = False
        self.lost = False  # the job was deleted, or its lease lapsed and another worker took it


class JobManager:
    def __init__(self, config: ServerConfig, store: Store, audio: AudioStore, engines: Engines, take_jobs: bool,
                 hooks: Sequence[Hook] = ()) -> None:
        self._config = config
        self._hooks = tuple(hooks)  # follow every job's steps besides its progress, e.g. keeping its artifacts
        self._store = store
        self._audio = audio
        self._engines = engines
        self._take_jobs = take_jobs
        self.slots = WorkerSlots(config.workers)  # the workers' and enrollments' (capacity.py)
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"  # names this process's leases
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # a job was stored: workers here look for it
        self._claimed = threading.Condition(self._lock)  # a worker here took a job: its watchers go live
        self._live: dict[str, _Live] = {}
        self._handed_back: set[str] = set()  # jobs given up while the database was away, to queue again
        self._stopping = False
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Queue again what a previous run of a lone server left running, remove the files no
        unfinished job needs, then start the workers (if this server takes jobs), the lease
        keeper and the janitor."""
        if not self._store.database.shared:
            for job_id in self._store.leases.release(None):
                log.info("requeueing job %s left unfinished by the previous run", job_id)
        self._audio.sweep(self._store.jobs.unfinished_ids())
        if self._take_jobs:
            for n in range(self._config.workers):
                self._spawn(self._work, f"speakerlink-worker-{n}")
            self._spawn(self._keep_leases, "speakerlink-leases")
        self._spawn(self._janitor, "speakerlink-janitor")

    def stop(self) -> None:
        """Stop taking work; the jobs this server was running are queued again, for another
        server's workers or this one's next start."""
        with self._lock:
            self._stopping = True
            self._stopped.set()
            self._wake.notify_all()
            self._claimed.notify_all()
            lives = list(self._live.values())
        for live in lives:
            with live.cond:
                live.cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=self._config.grace_seconds)
        if self._take_jobs:
            try:
                self._store.leases.release(self.owner)
            except Exception as exc:  # the database is gone: the leases lapse instead
                log.warning("could not hand back this server's jobs (%s); they are taken over when their leases lapse",
                            exc)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # ------------------------------------------------------------------ submitting

    def check_room(self) -> None:
        """Raises QUEUE_FULL when max_queued_jobs jobs wait, across every server."""
        if self._store.jobs.queued_total() >= self._config.max_queued_jobs:
            raise errors.queue_full(self._config.max_queued_jobs)

    def submitted(self, job_id: str) -> int:
        """Wake a worker here for the stored job; returns its queue position (0: next)."""
        with self._lock:
            self._wake.notify()
        return self._store.jobs.queue_position(job_id)

    # ------------------------------------------------------------------ watching

    def events(self, job_id: str, is_active: Callable[[], bool]) -> Iterator[pb.JobEvent]:
        """The job's events from now on: current progress, each change, then the terminal event."""
        percent, last = 0.0, None
        for event in self._follow(job_id, is_active):
            if event.HasField("progress"):
                event.progress.percent = percent = max(percent, event.progress.percent)  # a job taken over starts again
                if event.progress == last:
                    continue
                last = event.progress
            yield event

    def _follow(self, job_id: str, is_active: Callable[[], bool]) -> Iterator[pb.JobEvent]:
        """Live from this process while it runs the job; else from the database every POLL_S."""
        first = True
        while True:
            with self._lock:
                live = self._live.get(job_id)
            if live is not None:
                terminal = yield from self._live_events(job_id, live, is_active, from_start=not first)
                if terminal is None or not terminal.HasField("progress"):
                    return
                continue  # put down here and queued again: follow it wherever it runs next
            record = self._store.jobs.get(job_id)
            if record is None:
                if first:
                    raise errors.job_not_found(job_id)
                yield pb.JobEvent(job_id=job_id, error=errors.job_not_found(job_id).detail())
                return
            if record.finished:
                yield self._terminal_event(record)
                return
            first = False
            yield pb.JobEvent(job_id=job_id, progress=record.progress)
            with self._lock:
                if job_id not in self._live and not self._stopping:
                    self._claimed.wait(POLL_S)  # a worker here taking the job wakes this at once
            if self._stopping or not is_active():
                return

    def _live_events(
        self, job_id: str, live: _Live, is_active: Callable[[], bool], from_start: bool,
    ) -> Iterator[pb.JobEvent]:
        """Events of a job this process runs; returns its terminal event, or None if the
        watcher left or the server is stopping first."""
        with live.cond:
            seen = 0 if from_start else len(live.history) - 1  # a watcher that was polling misses none
        while True:
            with live.cond:
                while len(live.history) == seen and live.terminal is None and is_active() and not self._stopping:
                    live.cond.wait(WAKE_S)
                fresh, terminal = live.history[seen:], live.terminal
            if not is_active() or (self._stopping and terminal is None):
                return None
            seen += len(fresh)
            for progress in fresh:
                yield pb.JobEvent(job_id=job_id, progress=progress)
            if terminal is not None:
                if not terminal.HasField("progress"):
                    yield terminal
                return terminal

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
        """Cancel a queued job at once, a running one at its worker's next check between batches
        (wherever it runs); finished jobs stay as they are."""
        record = self._store.jobs.get(job_id)
        if record is None:
            raise errors.job_not_found(job_id)
        if record.finished:
            return record.status()
        if self._store.jobs.cancel_queued(job_id):
            self._audio.drop(job_id)
        else:
            self._store.jobs.request_cancel(job_id)
            self._flag(job_id, "cancel_requested")
        return self._store.jobs.get(job_id).status()

    def delete(self, job_id: str) -> bool:
        """Remove the job's audio and result now; its worker, wherever it runs, stops."""
        if not self._store.jobs.delete(job_id):
            return False
        self._audio.drop(job_id)
        self._flag(job_id, "lost")
        return True

    def _flag(self, job_id: str, name: str) -> None:
        """Tell this process's worker of the job, if it runs here, at once: cancel_requested or lost."""
        with self._lock:
            live = self._live.get(job_id)
        if live is not None:
            with live.cond:
                setattr(live, name, True)

    # ------------------------------------------------------------------ workers

    def _work(self) -> None:
        while not self._stopping:
            record = None
            if self.slots.try_take():
                try:
                    record = self._claim_and_run()
                finally:
                    self.slots.give()
            if record is None:
                with self._lock:
                    if not self._stopping:
                        self._wake.wait(POLL_S)

    def _claim_and_run(self) -> JobRecord | None:
        """Run the next job, if there is one; returns it."""
        try:
            record = self._store.leases.claim(self.owner, self._config.lease_seconds)
        except DatabaseUnavailable:  # said once in the log by the database
            return None
        except Exception:
            log.exception("could not claim a job; trying again")
            return None
        if record is not None:
            try:
                with logs.job_context(record.job_id, record.tenant) as fields:
                    self._run(record, fields)
            except Exception:  # the worker must survive anything one job does
                log.exception("job %s crashed its worker", record.job_id)
        return record

    def _run(self, record: JobRecord, log_fields: dict[str, str]) -> None:
        job_id = record.job_id
        live = _Live(record.progress)
        with self._lock:
            self._live[job_id] = live
            self._claimed.notify_all()
        if record.attempts > 1:
            log.info("job %s taken over (attempt %d)", job_id, record.attempts)
        else:
            log.info("job %s started", job_id)
        folder = self._audio.folder(job_id)
        clips = [ClipInput(i, clip.name, stored_path(folder, i, clip), float(clip.size_bytes))
                 for i, clip in enumerate(record.config.clips)]

        stages = metrics.StageTimer()

        def report(stage: str, fraction: float, clip_index: int, message: str) -> None:
            stages.report(stage, clip_index)
            log_fields["stage"] = stage
            self._publish(job_id, live, pb.Progress(stage=stage, percent=100.0 * fraction, clip_index=clip_index, message=message))

        def stop_if_cancelled(step: str, artifact: object = None, **_: object) -> None:
            """The job's first hook: every step and batch of the job asks it."""
            if live.cancel_requested or live.lost or self._stopping:
                raise JobCancelled()

        ended = reachable = True
        try:
            ended = self._attempt(record, live, clips, report, stop_if_cancelled)
        except DatabaseUnavailable:
            log.warning("job %s: the database stayed unreachable; the job goes back to the queue once it answers", job_id)
            ended = reachable = False
        finally:
            stages.close()
        self._finish(job_id, live, ended, reachable)

    def _attempt(self, record: JobRecord, live: _Live, clips: list[ClipInput], report: Report, cancel: Hook) -> bool:
        """Run the job and store how it ended; False where it is to run again (queued again by stop())."""
        job_id = record.job_id
        try:
            if not self._audio.fetch(job_id, [clip.path for clip in clips]):
                raise errors.job_interrupted()
            request = job_request(record.config.options, self._engines)
            embedder = self._engines.embedder(request.engine)
            transcriber = self._engines.transcriber if request.transcriber else None
            pipeline = DiarizationPipeline(self._engines.segmenter, self._engines.speech, embedder, transcriber=transcriber,
                                           chunk_seconds=self._config.chunk_seconds,
                                           max_clip_seconds=self._config.max_clip_seconds)
            voices = self._store.voices.voiceprints(record.tenant, embedder.name) if request.recognize else ()
            hook = Hooks(cancel, pipeline.progress(clips, report), *self._hooks)
            diarized = pipeline.run(clips, request, hook, voices)
        except DatabaseUnavailable:
            raise
        except JobCancelled:
            if live.lost:
                log.info("job %s was deleted, or taken over by another worker; its work here is dropped", job_id)
            elif self._stopping and not live.cancel_requested:
                return False  # queued again by stop()
            elif self._store.leases.cancel_running(job_id, self.owner):
                metrics.job_ended(state_name(pb.JOB_STATE_CANCELLED), 0.0)
        except errors.ServiceError as exc:
            self._fail(job_id, exc)
        except Exception:
            log.exception("job %s failed", job_id)  # the client hears only that it did: the text may name paths or hosts
            self._fail(job_id, errors.internal("processing failed; the server log has the details"))
        else:
            result = diarized.result
            result.job_id = job_id
            done = pb.Progress(stage="done", percent=100.0, clip_index=-1, message="finished")
            if self._store.leases.finish(job_id, self.owner, result, done, embedder.name, diarized.voiceprints):
                audio_seconds = sum(clip.duration_seconds for clip in result.clips)
                log.info("job %s succeeded: %.1f s of audio in %.1f s", job_id, audio_seconds,
                         result.summary.processing_seconds)
                metrics.job_ended(state_name(pb.JOB_STATE_SUCCEEDED), audio_seconds)
                self._publish(job_id, live, done, persist=False)
            else:
                log.warning("job %s was deleted, or taken over after this worker's lease lapsed; its result is dropped", job_id)
        return True

    def _fail(self, job_id: str, error: errors.ServiceError) -> None:
        if self._store.leases.fail(job_id, self.owner, error.detail()):
            metrics.error(error.code)
            metrics.job_ended(state_name(pb.JOB_STATE_FAILED), 0.0)

    def _publish(self, job_id: str, live: _Live, progress: pb.Progress, persist: bool = True) -> None:
        with live.cond:
            progress.percent = max(progress.percent, live.history[-1].percent)
            live.history.append(progress)
            live.cond.notify_all()
        if persist:
            self._store.leases.save_progress(job_id, self.owner, progress)

    def _finish(self, job_id: str, live: _Live, ended: bool, reachable: bool) -> None:
        """Give watchers here the job's end (or, where it may run again, its place in the
        database, or its last progress where the database is away: they then read it from the
        database and hear that it is away), and drop its audio once it ended: the result is
        in the store."""
        record = self._store.jobs.get(job_id) if reachable else None
        if not reachable:
            terminal = pb.JobEvent(job_id=job_id, progress=live.history[-1])
        elif record is None:
            terminal = pb.JobEvent(job_id=job_id, error=errors.job_not_found(job_id).detail())
        elif record.finished:
            terminal = self._terminal_event(record)
        else:  # queued again, or run by another worker now
            terminal = pb.JobEvent(job_id=job_id, progress=record.progress)
        with live.cond:
            live.terminal = terminal
            live.cond.notify_all()
        with self._lock:
            self._live.pop(job_id, None)
        if ended and (record is None or record.finished):
            self._audio.drop(job_id)
        else:
            self._audio.put_down(job_id)
        if not reachable:  # queued again by the lease keeper once the database answers
            with self._lock:
                self._handed_back.add(job_id)

    def _keep_leases(self) -> None:
        """Renew this server's leases every fifth of a lease (at most every second), and pass
        on what the database says of its jobs: a cancel asked for at another server, or a job
        deleted or taken over."""
        every = min(1.0, self._config.lease_seconds / 5)
        while not self._stopped.wait(every):
            with self._lock:
                lives, handed_back = dict(self._live), set(self._handed_back)
            try:
                for job_id in handed_back:  # before renewing, which would hold them for this server
                    if self._store.leases.hand_back(job_id, self.owner):
                        log.info("job %s queued again now that the database answers", job_id)
                    with self._lock:
                        self._handed_back.discard(job_id)
                if not lives:
                    continue
                held, cancels = self._store.leases.renew(self.owner, self._config.lease_seconds)
            except DatabaseUnavailable:
                continue
            except Exception:
                log.exception("could not renew this server's leases")
                continue
            for job_id, live in lives.items():
                with live.cond:
                    live.cancel_requested |= job_id in cancels
                    live.lost |= job_id not in held  # or it just ended here, when this changes nothing

    # ------------------------------------------------------------------ TTL

    def _janitor(self) -> None:
        interval = min(60.0, max(1.0, self._config.job_ttl_seconds / 10))
        while not self._stopped.wait(interval):
            try:
                for job_id in self._store.jobs.expired(time.time()):
                    log.info("job %s expired; removing it", job_id)
                    self.delete(job_id)
                for job_id in self._store.leases.abandoned_cancels():
                    self._audio.drop(job_id)
                self._audio.forget_orphans()
            except DatabaseUnavailable:
                pass  # the next round
            except Exception:
                log.exception("the janitor's round failed; trying again later")
