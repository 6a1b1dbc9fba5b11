"""Audio each tenant's accepted jobs and enrollments declared, for the daily quota (quotas.py).

Kept apart from the jobs, so that deleting a job gives none of it back, and for two days, so
that any 24-hour window can be summed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from speakerlink_server.database import Database

USAGE_KEPT_SECONDS = 2 * 24 * 3600.0


class AudioLedger:
    def __init__(self, database: Database) -> None:
        self._db = database

    @contextlib.contextmanager
    def locked(self, tenant: str) -> Iterator[None]:
        """One transaction that no other server runs at once for the same tenant: what is
        checked against the tenant's ledger, and what that admits (a job, in the same
        database), commit together or not at all."""
        with self._db.transaction():
            self._db.lock(f"tenant:{tenant}")
            yield

    def count(self, tenant: str, audio_seconds: float) -> None:
        now = time.time()
        self._db.execute("INSERT INTO usage (tenant, at, audio_seconds) VALUES (?, ?, ?)", (tenant, now, audio_seconds))
        self._db.execute("DELETE FROM usage WHERE at < ?", (now - USAGE_KEPT_SECONDS,))

    def seconds_since(self, tenant: str, since: float) -> float:
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
