"""Job records and results in SQLite, so they outlive connections and server restarts.

Results are stored as serialized DiarizationResult messages: the exact thing clients get,
with no second schema to keep in step. One connection behind a lock is plenty for the
write rate of a diarization service (a few progress updates per second).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp
from speakerlink.v1 import speakerlink_pb2 as pb

TERMINAL_STATES = frozenset({pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id          TEXT PRIMARY KEY,
    state       INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    config      BLOB NOT NULL,
    progress    BLOB NOT NULL,
    result      BLOB,
    error       BLOB,
    tenant      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_expires_at ON jobs (expires_at);
"""
# Added after the first schema: a data dir from before tenants gets it on open (theirs: '').
_TENANT_INDEX = "CREATE INDEX IF NOT EXISTS jobs_tenant_created ON jobs (tenant, created_at)"
# Audio each tenant's accepted jobs declared, for the daily quota (quotas.py): kept apart from
# the jobs, so that deleting a job gives none of it back.
_USAGE = """
CREATE TABLE IF NOT EXISTS usage (
    tenant         TEXT NOT NULL,
    at             REAL NOT NULL,
    audio_seconds  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_tenant_at ON usage (tenant, at);
"""
USAGE_KEPT_SECONDS = 2 * 24 * 3600.0
_COLUMNS = "id, state, created_at, expires_at, config, progress, result, error, tenant"


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

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def status(self) -> pb.JobStatus:
        status = pb.JobStatus(job_id=self.job_id, state=self.state, progress=self.progress,
                              clip_names=[clip.name for clip in self.config.clips])
        status.created_at.CopyFrom(_timestamp(self.created_at))
        status.expires_at.CopyFrom(_timestamp(self.expires_at))
        if self.error is not None:
            status.error.CopyFrom(self.error)
        return status


class JobStore:
    def __init__(self, db_path: Path) -> None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if "tenant" not in {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}:
            self._db.execute("ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT ''")
        self._db.execute(_TENANT_INDEX)
        self._db.executescript(_USAGE)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(self, job_id: str, config: pb.DiarizeConfig, ttl_seconds: float, tenant: str) -> JobRecord:
        now = time.time()
        progress = pb.Progress(stage="queued", percent=0.0, clip_index=-1)
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, state, created_at, updated_at, expires_at, config, progress, tenant)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, pb.JOB_STATE_QUEUED, now, now, now + ttl_seconds,
                 config.SerializeToString(), progress.SerializeToString(), tenant),
            )
        return JobRecord(job_id, pb.JOB_STATE_QUEUED, now, now + ttl_seconds, config, progress, None, None, tenant)

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE id = ?",
                (job_id,),
            ).fetchone()
        return None if row is None else _record(row)

    def unfinished(self) -> list[JobRecord]:
        """Jobs a previous run of the server accepted but did not finish, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE state IN (?, ?) ORDER BY created_at",
                (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING),
            ).fetchall()
        return [_record(row) for row in rows]

    def newest(self, tenant: str, limit: int, before: tuple[float, str] | None = None) -> list[JobRecord]:
        """Up to `limit` of the tenant's jobs, newest first; with `before` (created_at, job_id),
        those older than it."""
        after = "AND (created_at, id) < (?, ?)" if before else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE tenant = ? {after} ORDER BY created_at DESC, id DESC LIMIT ?",
                (tenant, *(before or ()), limit),
            ).fetchall()
        return [_record(row) for row in rows]

    def queued(self, tenant: str) -> int:
        """How many of the tenant's jobs wait for a worker."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE tenant = ? AND state = ?",
                                    (tenant, pb.JOB_STATE_QUEUED)).fetchone()[0]

    def count_audio(self, tenant: str, audio_seconds: float) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("INSERT INTO usage (tenant, at, audio_seconds) VALUES (?, ?, ?)", (tenant, now, audio_seconds))
            self._db.execute("DELETE FROM usage WHERE at < ?", (now - USAGE_KEPT_SECONDS,))

    def audio_seconds_since(self, tenant: str, since: float) -> float:
        with self._lock:
            return self._db.execute("SELECT COALESCE(SUM(audio_seconds), 0) FROM usage WHERE tenant = ? AND at >= ?",
                                    (tenant, since)).fetchone()[0]

    def seconds_until_free(self, tenant: str, since: float, excess: float) -> float:
        """How long until `excess` seconds of the tenant's audio counted since `since` fall out
        of a window that starts at `since` and moves with the clock."""
        with self._lock:
            rows = self._db.execute("SELECT at, audio_seconds FROM usage WHERE tenant = ? AND at >= ? ORDER BY at",
                                    (tenant, since)).fetchall()
        freed = 0.0
        for at, seconds in rows:
            freed += seconds
            if freed >= excess:
                return max(0.0, at - since)
        return 0.0

    def expired(self, now: float | None = None) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE expires_at <= ?", (time.time() if now is None else now,)
            ).fetchall()
        return [row[0] for row in rows]

    def set_running(self, job_id: str) -> None:
        self._update(job_id, state=pb.JOB_STATE_RUNNING)

    def save_progress(self, job_id: str, progress: pb.Progress) -> None:
        self._update(job_id, progress=progress.SerializeToString())

    def finish(self, job_id: str, result: pb.DiarizationResult, progress: pb.Progress) -> None:
        self._update(
            job_id, state=pb.JOB_STATE_SUCCEEDED, result=result.SerializeToString(),
            progress=progress.SerializeToString(),
        )

    def fail(self, job_id: str, error: pb.ErrorDetail) -> None:
        self._update(job_id, state=pb.JOB_STATE_FAILED, error=error.SerializeToString())

    def cancel(self, job_id: str) -> None:
        self._update(job_id, state=pb.JOB_STATE_CANCELLED)

    def delete(self, job_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def _update(self, job_id: str, **columns: object) -> None:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        with self._lock:
            self._db.execute(
                f"UPDATE jobs SET {assignments}, updated_at = ? WHERE id = ?",
                (*columns.values(), time.time(), job_id),
            )


def _record(row: tuple) -> JobRecord:
    job_id, state, created_at, expires_at, config, progress, result, error, tenant = row
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
    )


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
