"""Job records and their results: what a front end stores, lists, cancels and deletes.

Results are stored as serialized DiarizationResult messages: the exact thing clients get,
with no second schema to keep in step.

A job's TTL counts from its end, so that a job that runs longer than the TTL is never removed
under its worker and watchers: until the job ends, `expires_at` is its creation plus the TTL,
and ending moves it on by the time the job took (`ENDED`). Only ended jobs expire.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server.database import Database
from speakerlink_server.store.encoding import timestamp

TERMINAL_STATES = frozenset({pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED})
QUEUED = pb.Progress(stage="queued", percent=0.0, clip_index=-1)
# The columns a job's end sets, given the time it ended twice (see the module docstring).
ENDED = "finished_at = ?, expires_at = expires_at + (? - created_at)"

_COLUMNS = "id, state, created_at, expires_at, config, progress, result, error, tenant, attempts, cancel_requested"


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    state: int
    created_at: float
    expires_at: float
    config: pb.DiarizeConfig
    progress: pb.Progress
    result: bytes | None
    error: pb.ErrorDetail | None
    tenant: str = ""  # auth.ANONYMOUS where the server has no tenants file
    attempts: int = 0  # how many times a worker has taken the job
    cancel_requested: bool = False  # asked of a running job; it lands at its worker's next check

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def status(self) -> pb.JobStatus:
        status = pb.JobStatus(job_id=self.job_id, state=self.state, progress=self.progress,
                              clip_names=[clip.name for clip in self.config.clips],
                              cancel_requested=self.cancel_requested and self.state == pb.JOB_STATE_RUNNING)
        status.created_at.CopyFrom(timestamp(self.created_at))
        # An unfinished job goes a TTL after its end: at the soonest, a TTL from now.
        status.expires_at.CopyFrom(timestamp(self.expires_at if self.finished
                                             else time.time() + self.expires_at - self.created_at))
        if self.error is not None:
            status.error.CopyFrom(self.error)
        return status


class Jobs:
    def __init__(self, database: Database) -> None:
        self._db = database

    def create(self, job_id: str, config: pb.DiarizeConfig, ttl_seconds: float, tenant: str) -> JobRecord:
        now = time.time()
        self._db.execute(
            "INSERT INTO jobs (id, state, created_at, updated_at, expires_at, config, progress, tenant)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, pb.JOB_STATE_QUEUED, now, now, now + ttl_seconds,
             config.SerializeToString(), QUEUED.SerializeToString(), tenant),
        )
        return JobRecord(job_id, pb.JOB_STATE_QUEUED, now, now + ttl_seconds, config, QUEUED, None, None, tenant)

    def add_finished(self, job_id: str, config: pb.DiarizeConfig, ttl_seconds: float, tenant: str,
                     created_at: float, result: pb.DiarizationResult, progress: pb.Progress) -> None:
        """A job that ran outside the queue (a live stream) and ended with `result`: its TTL
        counts from now, as an ended job's does."""
        now = time.time()
        self._db.execute(
            "INSERT INTO jobs (id, state, created_at, updated_at, finished_at, expires_at, config, progress, result,"
            " tenant, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (job_id, pb.JOB_STATE_SUCCEEDED, created_at, now, now, now + ttl_seconds, config.SerializeToString(),
             progress.SerializeToString(), result.SerializeToString(), tenant),
        )

    def get(self, job_id: str) -> JobRecord | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _record(row)

    def newest(self, tenant: str, limit: int, before: tuple[float, str] | None = None) -> list[JobRecord]:
        """Up to `limit` of the tenant's jobs, newest first; with `before` (created_at, job_id),
        those older than it."""
        after = "AND (created_at, id) < (?, ?)" if before else ""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE tenant = ? {after} ORDER BY created_at DESC, id DESC LIMIT ?",
            (tenant, *(before or ()), limit),
        ).fetchall()
        return [_record(row) for row in rows]

    def unfinished_ids(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT id FROM jobs WHERE state IN (?, ?)",
                                                   (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)).fetchall()]

    def queued_total(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (pb.JOB_STATE_QUEUED,)).fetchone()[0]

    def count_by_state(self) -> dict[int, int]:
        """How many jobs are in each state, across every server."""
        return dict(self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())

    def queue_position(self, job_id: str) -> int:
        """How many queued jobs are ahead of this one (0: next)."""
        return self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE state = ? AND created_at < (SELECT created_at FROM jobs WHERE id = ?)",
            (pb.JOB_STATE_QUEUED, job_id),
        ).fetchone()[0]

    def queued(self, tenant: str) -> int:
        """How many of the tenant's jobs wait for a worker."""
        return self._db.execute("SELECT COUNT(*) FROM jobs WHERE tenant = ? AND state = ?",
                                (tenant, pb.JOB_STATE_QUEUED)).fetchone()[0]

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel the job if no worker has it yet."""
        now = time.time()
        return self._db.execute(f"UPDATE jobs SET state = ?, updated_at = ?, {ENDED} WHERE id = ? AND state = ?",
                                (pb.JOB_STATE_CANCELLED, now, now, now, job_id, pb.JOB_STATE_QUEUED)).rowcount > 0

    def request_cancel(self, job_id: str) -> None:
        """Ask the job's worker, wherever it runs, to cancel it at its next check."""
        self._db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = ?",
                         (job_id, pb.JOB_STATE_RUNNING))

    def delete(self, job_id: str) -> bool:
        """Removes the job, and its speakers' embeddings with it (job_prints.py)."""
        return self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def expired(self, now: float) -> list[str]:
        """The ended jobs whose TTL since their end has run out by `now`; a job that waits or runs never expires."""
        rows = self._db.execute("SELECT id FROM jobs WHERE finished_at IS NOT NULL AND expires_at <= ?", (now,)).fetchall()
        return [row[0] for row in rows]


def _record(row: tuple) -> JobRecord:
    job_id, state, created_at, expires_at, config, progress, result, error, tenant, attempts, cancel_requested = row
    return JobRecord(
        job_id=job_id,
        state=state,
        created_at=created_at,
        expires_at=expires_at,
        config=pb.DiarizeConfig.FromString(config),
        progress=pb.Progress.FromString(progress),
        result=result,
        error=None if error is None else pb.ErrorDetail.FromString(error),
        tenant=tenant,
        attempts=attempts,
        cancel_requested=bool(cancel_requested),
    )
