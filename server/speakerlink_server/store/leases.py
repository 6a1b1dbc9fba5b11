"""Work under leases: the database is the queue that the workers of JobManager
(speakerlink_server/jobs.py) take jobs from.

A worker of any server sharing the database claims the oldest queued job, or a running one
whose lease ran out (its worker died), and renews its leases while it runs them. A worker's
writes (progress, result, failure, cancel) land only while it still holds the job's lease,
so a job taken over after a lapsed lease ends once: the slow worker's late writes change
nothing.
"""

from __future__ import annotations

import time

from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server.database import Database
from speakerlink_server.pipeline.linking import Voiceprint
from speakerlink_server.store.job_prints import JobVoiceprints
from speakerlink_server.store.jobs import ENDED, QUEUED, TERMINAL_STATES, JobRecord, Jobs


class Leases:
    def __init__(self, database: Database, jobs: Jobs, prints: JobVoiceprints) -> None:
        self._db = database
        self._jobs = jobs
        self._prints = prints

    def claim(self, owner: str, lease_seconds: float) -> JobRecord | None:
        """Take, for `owner`, the oldest queued job, or a running one whose lease ran out (its
        worker died): state running, attempts + 1, leased until now + lease_seconds."""
        now = time.time()
        with self._db.transaction():
            row = self._db.execute(
                "SELECT id FROM jobs WHERE (state = ? OR (state = ? AND lease_until < ?)) AND cancel_requested = 0"
                f" ORDER BY created_at, id LIMIT 1{self._db.skip_locked}",
                (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING, now),
            ).fetchone()
            if row is None:
                return None
            self._db.execute(
                "UPDATE jobs SET state = ?, lease_owner = ?, lease_until = ?, attempts = attempts + 1, progress = ?,"
                " updated_at = ? WHERE id = ?",
                (pb.JOB_STATE_RUNNING, owner, now + lease_seconds, QUEUED.SerializeToString(), now, row[0]),
            )
        return self._jobs.get(row[0])

    def renew(self, owner: str, lease_seconds: float) -> tuple[set[str], set[str]]:
        """Extend `owner`'s leases; returns the jobs it still holds, and those of them whose
        cancel was asked for. A job missing from the first was deleted or taken over."""
        now = time.time()
        self._db.execute("UPDATE jobs SET lease_until = ? WHERE lease_owner = ? AND state = ?",
                         (now + lease_seconds, owner, pb.JOB_STATE_RUNNING))
        rows = self._db.execute("SELECT id, cancel_requested FROM jobs WHERE lease_owner = ? AND state = ?",
                                (owner, pb.JOB_STATE_RUNNING)).fetchall()
        return {job_id for job_id, _ in rows}, {job_id for job_id, cancel in rows if cancel}

    def release(self, owner: str | None) -> list[str]:
        """Queue again the jobs `owner` runs (None: every running job, at the start of a
        server that has the database to itself), for another worker or the next start."""
        mine = "" if owner is None else "AND lease_owner = ?"
        params = (pb.JOB_STATE_RUNNING, *(() if owner is None else (owner,)))
        with self._db.transaction():
            rows = self._db.execute(f"SELECT id FROM jobs WHERE state = ? AND cancel_requested = 0 {mine}", params).fetchall()
            self._db.execute(
                f"UPDATE jobs SET state = ?, lease_owner = NULL, lease_until = NULL, progress = ?, updated_at = ?"
                f" WHERE state = ? AND cancel_requested = 0 {mine}",
                (pb.JOB_STATE_QUEUED, QUEUED.SerializeToString(), time.time(), *params),
            )
        return [job_id for (job_id,) in rows]

    def hand_back(self, job_id: str, owner: str) -> bool:
        """Queue again one job that `owner` holds and gave up (it lost the database meanwhile)."""
        return self._settle(job_id, owner, state=pb.JOB_STATE_QUEUED, lease_owner=None, lease_until=None,
                            progress=QUEUED.SerializeToString())

    def abandoned_cancels(self) -> list[str]:
        """Cancel the jobs whose cancel was asked for and whose worker died before it saw it."""
        now = time.time()
        with self._db.transaction():
            rows = self._db.execute("SELECT id FROM jobs WHERE state = ? AND cancel_requested = 1 AND lease_until < ?",
                                    (pb.JOB_STATE_RUNNING, now)).fetchall()
            for (job_id,) in rows:
                self._db.execute(f"UPDATE jobs SET state = ?, lease_owner = NULL, updated_at = ?, {ENDED} WHERE id = ?",
                                 (pb.JOB_STATE_CANCELLED, now, now, now, job_id))
        return [job_id for (job_id,) in rows]

    def save_progress(self, job_id: str, owner: str, progress: pb.Progress) -> bool:
        return self._settle(job_id, owner, progress=progress.SerializeToString())

    def finish(self, job_id: str, owner: str, result: pb.DiarizationResult, progress: pb.Progress,
               engine: str, prints: dict[str, Voiceprint]) -> bool:
        """Store the result and its speakers' embeddings together, if `owner` still holds the
        job; False if not (deleted, or taken over after a lapsed lease): the result is then not kept."""
        with self._db.transaction():
            if not self._settle(job_id, owner, state=pb.JOB_STATE_SUCCEEDED, result=result.SerializeToString(),
                                progress=progress.SerializeToString()):
                return False
            self._prints.save(job_id, engine, prints)
        return True

    def fail(self, job_id: str, owner: str, error: pb.ErrorDetail) -> bool:
        return self._settle(job_id, owner, state=pb.JOB_STATE_FAILED, error=error.SerializeToString())

    def cancel_running(self, job_id: str, owner: str) -> bool:
        return self._settle(job_id, owner, state=pb.JOB_STATE_CANCELLED)

    def _settle(self, job_id: str, owner: str, **columns: object) -> bool:
        """Set columns of a running job that `owner` holds (and its end, when `state` ends it).
        A job that ends keeps its last owner's name, which tells which server ran it."""
        now = time.time()
        assignments = ", ".join(f"{name} = ?" for name in columns)
        ends = columns.get("state") in TERMINAL_STATES
        return self._db.execute(
            f"UPDATE jobs SET {assignments}, updated_at = ?{', ' + ENDED if ends else ''}"
            " WHERE id = ? AND state = ? AND lease_owner = ?",
            (*columns.values(), now, *((now, now) if ends else ()), job_id, pb.JOB_STATE_RUNNING, owner),
        ).rowcount > 0
