"""Job records, results, tenants' audio counts and voice libraries, in the database
(database.py: SQLite in the data dir, or PostgreSQL), so they outlive connections and restarts.

Results are stored as serialized DiarizationResult messages: the exact thing clients get,
with no second schema to keep in step.

A job's TTL counts from its end, so that a job that runs longer than the TTL is never removed
under its worker and watchers: until the job ends, `expires_at` is its creation plus the TTL,
and ending moves it on by the time the job took (`_ENDED`). Only ended jobs expire.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp
from speakerlink.v1 import speakerlink_pb2 as pb

from speakerlink_server.database import Conflict, Database
from speakerlink_server.pipeline.recognize import Voice

TERMINAL_STATES = frozenset({pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED})

USAGE_KEPT_SECONDS = 2 * 24 * 3600.0
_QUEUED = pb.Progress(stage="queued", percent=0.0, clip_index=-1)
# The columns a job's end sets, given the time it ended twice (see the module docstring).
_ENDED = "finished_at = ?, expires_at = expires_at + (? - created_at)"


class NameTaken(Exception):
    """Another voice of the tenant already has the name."""


@dataclass(frozen=True)
class VoiceRecord:
    name: str
    created_at: float
    updated_at: float
    speech_seconds: float
    enrollments: int
    engines: tuple[str, ...]

    def message(self) -> pb.Voice:
        voice = pb.Voice(name=self.name, speech_seconds=self.speech_seconds, enrollments=self.enrollments,
                         engines=self.engines)
        voice.created_at.CopyFrom(_timestamp(self.created_at))
        voice.updated_at.CopyFrom(_timestamp(self.updated_at))
        return voice


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
        status.created_at.CopyFrom(_timestamp(self.created_at))
        # An unfinished job goes a TTL after its end: at the soonest, a TTL from now.
        status.expires_at.CopyFrom(_timestamp(self.expires_at if self.finished
                                              else time.time() + self.expires_at - self.created_at))
        if self.error is not None:
            status.error.CopyFrom(self.error)
        return status


class JobStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def close(self) -> None:
        self._db.close()

    def create(self, job_id: str, config: pb.DiarizeConfig, ttl_seconds: float, tenant: str) -> JobRecord:
        now = time.time()
        progress = _QUEUED
        self._db.execute(
            "INSERT INTO jobs (id, state, created_at, updated_at, expires_at, config, progress, tenant)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, pb.JOB_STATE_QUEUED, now, now, now + ttl_seconds,
             config.SerializeToString(), progress.SerializeToString(), tenant),
        )
        return JobRecord(job_id, pb.JOB_STATE_QUEUED, now, now + ttl_seconds, config, progress, None, None, tenant)

    def get(self, job_id: str) -> JobRecord | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE id = ?",
            (job_id,),
        ).fetchone()
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

    @contextlib.contextmanager
    def tenant_lock(self, tenant: str) -> Iterator[None]:
        """One transaction that no other server runs at once for the same tenant."""
        with self._db.transaction():
            self._db.lock(f"tenant:{tenant}")
            yield

    def count_audio(self, tenant: str, audio_seconds: float) -> None:
        now = time.time()
        self._db.execute("INSERT INTO usage (tenant, at, audio_seconds) VALUES (?, ?, ?)", (tenant, now, audio_seconds))
        self._db.execute("DELETE FROM usage WHERE at < ?", (now - USAGE_KEPT_SECONDS,))

    def audio_seconds_since(self, tenant: str, since: float) -> float:
        return self._db.execute("SELECT COALESCE(SUM(audio_seconds), 0) FROM usage WHERE tenant = ? AND at >= ?",
                                (tenant, since)).fetchone()[0]

    def seconds_until_free(self, tenant: str, since: float, excess: float) -> float:
        """How long until `excess` seconds of the tenant's audio counted since `since` fall out
        of a window that starts at `since` and moves with the clock."""
        rows = self._db.execute("SELECT at, audio_seconds FROM usage WHERE tenant = ? AND at >= ? ORDER BY at",
                                (tenant, since)).fetchall()
        freed = 0.0
        for at, seconds in rows:
            freed += seconds
            if freed >= excess:
                return max(0.0, at - since)
        return 0.0

    # ------------------------------------------------------------------ voice library

    def save_job_prints(self, job_id: str, engine: str, prints: dict[str, tuple[np.ndarray, float]]) -> None:
        """Each global speaker's (embedding, speech seconds) of a finished job, by label."""
        self._db.executemany(
            "INSERT INTO job_prints (job_id, label, engine, embedding, speech_seconds) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (job_id, label) DO UPDATE SET engine = excluded.engine, embedding = excluded.embedding,"
            " speech_seconds = excluded.speech_seconds",
            [(job_id, label, engine, _blob(vector), speech) for label, (vector, speech) in prints.items()],
        )

    def job_print(self, job_id: str, label: str) -> tuple[str, np.ndarray, float] | None:
        """(engine, embedding, speech seconds) of one of a job's speakers."""
        row = self._db.execute("SELECT engine, embedding, speech_seconds FROM job_prints WHERE job_id = ? AND label = ?",
                               (job_id, label)).fetchone()
        return None if row is None else (row[0], _vector(row[1]), row[2])

    def enroll(self, tenant: str, name: str, engine: str, embedding: np.ndarray, speech_seconds: float) -> VoiceRecord:
        """Add an enrollment to the voice `name`, creating it if new."""
        now = time.time()
        with self._db.transaction():
            self._db.execute("INSERT INTO voices (tenant, name, created_at, updated_at) VALUES (?, ?, ?, ?)"
                             " ON CONFLICT (tenant, name) DO UPDATE SET updated_at = excluded.updated_at",
                             (tenant, name, now, now))
            self._db.execute("INSERT INTO voiceprints (tenant, name, engine, embedding, speech_seconds, created_at)"
                             " VALUES (?, ?, ?, ?, ?, ?)", (tenant, name, engine, _blob(embedding), speech_seconds, now))
        return self.voice(tenant, name)

    def voice(self, tenant: str, name: str) -> VoiceRecord | None:
        found = self.voices(tenant, name)
        return found[0] if found else None

    def voices(self, tenant: str, name: str | None = None) -> list[VoiceRecord]:
        """The tenant's voices by name (or the one called `name`)."""
        only = "AND v.name = ?" if name is not None else ""
        rows = self._db.execute(
            "SELECT v.name, v.created_at, v.updated_at, COALESCE(SUM(p.speech_seconds), 0), COUNT(p.created_at),"
            f" {self._db.group_concat('p.engine')} FROM voices v LEFT JOIN voiceprints p"
            " ON p.tenant = v.tenant AND p.name = v.name"
            f" WHERE v.tenant = ? {only} GROUP BY v.tenant, v.name ORDER BY v.name",
            (tenant, *(() if name is None else (name,))),
        ).fetchall()
        return [VoiceRecord(n, c, u, speech, count, tuple(sorted((engines or "").split(",")) if engines else ()))
                for n, c, u, speech, count, engines in rows]

    def voiceprints(self, tenant: str, engine: str) -> list[Voice]:
        """Each of the tenant's voices as one embedding from `engine`: the speech-weighted mean
        of its enrollments, so that more audio added to a name steadies its voice."""
        rows = self._db.execute("SELECT name, embedding, speech_seconds FROM voiceprints"
                                " WHERE tenant = ? AND engine = ? ORDER BY name", (tenant, engine)).fetchall()
        sums: dict[str, tuple[np.ndarray, float]] = {}
        for name, blob, speech in rows:
            total, seconds = sums.get(name, (0.0, 0.0))
            sums[name] = (total + speech * _vector(blob), seconds + speech)
        return [Voice(name, total / max(float(np.linalg.norm(total)), 1e-12), seconds)
                for name, (total, seconds) in sums.items()]

    def rename_voice(self, tenant: str, name: str, new_name: str) -> bool:
        """False when there is no voice `name`; raises NameTaken when `new_name` is."""
        try:
            return self._db.execute("UPDATE voices SET name = ?, updated_at = ? WHERE tenant = ? AND name = ?",
                                    (new_name, time.time(), tenant, name)).rowcount > 0
        except Conflict:
            raise NameTaken(new_name) from None

    def delete_voice(self, tenant: str, name: str) -> bool:
        """Removes the voice and every embedding of it."""
        return self._db.execute("DELETE FROM voices WHERE tenant = ? AND name = ?", (tenant, name)).rowcount > 0

    def expired(self, now: float | None = None) -> list[str]:
        """The ended jobs whose TTL since their end has run out; a job that waits or runs never expires."""
        rows = self._db.execute(
            "SELECT id FROM jobs WHERE finished_at IS NOT NULL AND expires_at <= ?", (time.time() if now is None else now,)
        ).fetchall()
        return [row[0] for row in rows]

    # ------------------------------------------------------------------ work under leases

    @property
    def shared(self) -> bool:
        """Whether other servers may use the same database (and so hold leases in it)."""
        return self._db.shared

    @property
    def database(self) -> Database:
        return self._db

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
                (pb.JOB_STATE_RUNNING, owner, now + lease_seconds, _QUEUED.SerializeToString(), now, row[0]),
            )
        return self.get(row[0])

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
                (pb.JOB_STATE_QUEUED, _QUEUED.SerializeToString(), time.time(), *params),
            )
        return [job_id for (job_id,) in rows]

    def hand_back(self, job_id: str, owner: str) -> bool:
        """Queue again one job that `owner` holds and gave up (it lost the database meanwhile)."""
        return self._settle(job_id, owner, state=pb.JOB_STATE_QUEUED, lease_owner=None, lease_until=None,
                            progress=_QUEUED.SerializeToString())

    def abandoned_cancels(self) -> list[str]:
        """Cancel the jobs whose cancel was asked for and whose worker died before it saw it."""
        now = time.time()
        with self._db.transaction():
            rows = self._db.execute("SELECT id FROM jobs WHERE state = ? AND cancel_requested = 1 AND lease_until < ?",
                                    (pb.JOB_STATE_RUNNING, now)).fetchall()
            for (job_id,) in rows:
                self._db.execute(f"UPDATE jobs SET state = ?, lease_owner = NULL, updated_at = ?, {_ENDED} WHERE id = ?",
                                 (pb.JOB_STATE_CANCELLED, now, now, now, job_id))
        return [job_id for (job_id,) in rows]

    def save_progress(self, job_id: str, owner: str, progress: pb.Progress) -> bool:
        return self._settle(job_id, owner, progress=progress.SerializeToString())

    def finish(self, job_id: str, owner: str, result: pb.DiarizationResult, progress: pb.Progress,
               engine: str, prints: dict[str, tuple[np.ndarray, float]]) -> bool:
        """Store the result and its speakers' embeddings, if `owner` still holds the job; False
        if not (deleted, or taken over after a lapsed lease): the result is then not kept."""
        with self._db.transaction():
            if not self._settle(job_id, owner, state=pb.JOB_STATE_SUCCEEDED, result=result.SerializeToString(),
                                progress=progress.SerializeToString()):
                return False
            self.save_job_prints(job_id, engine, prints)
        return True

    def fail(self, job_id: str, owner: str, error: pb.ErrorDetail) -> bool:
        return self._settle(job_id, owner, state=pb.JOB_STATE_FAILED, error=error.SerializeToString())

    def cancel_running(self, job_id: str, owner: str) -> bool:
        return self._settle(job_id, owner, state=pb.JOB_STATE_CANCELLED)

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel the job if no worker has it yet."""
        now = time.time()
        return self._db.execute(f"UPDATE jobs SET state = ?, updated_at = ?, {_ENDED} WHERE id = ? AND state = ?",
                                (pb.JOB_STATE_CANCELLED, now, now, now, job_id, pb.JOB_STATE_QUEUED)).rowcount > 0

    def request_cancel(self, job_id: str) -> None:
        """Ask the job's worker, wherever it runs, to cancel it at its next check."""
        self._db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND state = ?",
                         (job_id, pb.JOB_STATE_RUNNING))

    def delete(self, job_id: str) -> bool:
        return self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0

    def _settle(self, job_id: str, owner: str, **columns: object) -> bool:
        """Set columns of a running job that `owner` holds (and its end, when `state` ends it).
        A job that ends keeps its last owner's name, which tells which server ran it."""
        now = time.time()
        assignments = ", ".join(f"{name} = ?" for name in columns)
        ends = columns.get("state") in TERMINAL_STATES
        return self._db.execute(
            f"UPDATE jobs SET {assignments}, updated_at = ?{', ' + _ENDED if ends else ''}"
            " WHERE id = ? AND state = ? AND lease_owner = ?",
            (*columns.values(), now, *((now, now) if ends else ()), job_id, pb.JOB_STATE_RUNNING, owner),
        ).rowcount > 0


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


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float64)


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp
