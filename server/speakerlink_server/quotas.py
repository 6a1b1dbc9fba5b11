"""Each tenant's share of the server: uploads at once, streams at once, jobs waiting, audio per day.

The server-wide limits (config.py) protect the server; these keep one tenant from taking all
of it. They apply to the tenants of a tenants file; the anonymous tenant of a server without
one is its only user and meets the server-wide limits alone. Audio is counted from each
file's length (audio.length: declared, or counted from its packets where the file declares
none) when its job is accepted, or when an enrollment starts its work, over the last 24
hours, and the count outlives the job, its deletion and restarts (store/ledger.py keeps it). Uploads
and streams at once are counted by each front end for its own calls.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TypeVar

from speakerlink_server import errors
from speakerlink_server.auth import ANONYMOUS, Tenants
from speakerlink_server.store import Store

DAY_SECONDS = 24 * 3600.0
T = TypeVar("T")


@dataclass(frozen=True)
class Quota:
    """One tenant's limits; 0 means no limit of the tenant's own."""

    max_uploads: int = 0
    max_queued_jobs: int = 0
    audio_seconds_per_day: float = 0.0
    max_streams: int = 0  # uploads and watchers at once, of the server's max_streams


class Quotas:
    def __init__(self, store: Store, tenants: Tenants, defaults: Quota) -> None:
        # One store, so that the jobs admit() creates are in the ledger's transaction.
        self._jobs, self._ledger = store.jobs, store.ledger
        self._tenants = tenants
        self._defaults = defaults
        self._uploads: Counter[str] = Counter()
        self._streams: Counter[str] = Counter()
        self._lock = threading.Lock()

    def quota(self, tenant: str) -> Quota:
        """The tenant's quota: its tenants file's settings over the server's defaults."""
        if tenant == ANONYMOUS:
            return Quota()
        return replace(self._defaults, **self._tenants.quota_settings(tenant))

    def precheck(self, tenant: str, job: bool = True) -> None:
        """Refuse before the upload what is sure to be refused after it (for a `job`, or an enrollment)."""
        if job:
            self._check_queue(tenant)
        self._check_audio(tenant, 0.0)

    def _check_queue(self, tenant: str) -> None:
        limit = self.quota(tenant).max_queued_jobs
        if limit and self._jobs.queued(tenant) >= limit:
            raise errors.tenant_queue_full(limit)

    def _check_audio(self, tenant: str, audio_seconds: float) -> None:
        """Raise when `audio_seconds` more (none: any more) would pass the tenant's daily audio."""
        limit = self.quota(tenant).audio_seconds_per_day
        if not limit:
            return
        since = time.time() - DAY_SECONDS
        used = self._ledger.seconds_since(tenant, since)
        if used + audio_seconds > limit or (not audio_seconds and used >= limit):
            wait = self._ledger.seconds_until_free(tenant, since, max(used + audio_seconds - limit, 1e-9))
            raise errors.tenant_audio_quota(audio_seconds, used, limit, wait)

    def audio_today(self, tenant: str) -> float:
        return self._ledger.seconds_since(tenant, time.time() - DAY_SECONDS)

    def audio_left(self, tenant: str) -> float:
        """Seconds of audio the tenant may still send in the last 24 hours (inf: no limit)."""
        limit = self.quota(tenant).audio_seconds_per_day
        return max(0.0, limit - self.audio_today(tenant)) if limit else math.inf

    def upload(self, tenant: str) -> contextlib.AbstractContextManager[None]:
        """One of the tenant's upload slots for as long as the upload (and an enrollment's work) runs."""
        limit = self.quota(tenant).max_uploads
        return self._slot(self._uploads, tenant, limit, errors.tenant_uploads)

    def stream(self, tenant: str) -> contextlib.AbstractContextManager[None]:
        """One of the tenant's share of the server's stream slots, for as long as the call runs."""
        limit = self.quota(tenant).max_streams
        return self._slot(self._streams, tenant, limit, errors.tenant_streams)

    @contextlib.contextmanager
    def _slot(self, held: Counter[str], tenant: str, limit: int,
              refusal: Callable[[int], errors.ServiceError]) -> Iterator[None]:
        with self._lock:
            if limit and held[tenant] >= limit:
                raise refusal(limit)
            held[tenant] += 1
        try:
            yield
        finally:
            with self._lock:
                held[tenant] -= 1

    def admit(self, tenant: str, audio_seconds: float, accept: Callable[[], T]) -> T:
        """Run `accept` (which stores and queues the job) if the tenant's queue and daily audio
        leave room, and count the audio; checked and counted under one lock, held in the
        database too, so that two uploads that end together, at one front end or two, cannot
        both take the last place."""
        with self._lock, self._ledger.locked(tenant):
            self._check_queue(tenant)
            self._check_audio(tenant, audio_seconds)
            accepted = accept()
            self._ledger.count(tenant, audio_seconds)
            return accepted

    def charge(self, tenant: str, audio_seconds: float) -> None:
        """Count audio that no job holds (an enrollment's), refused as a job's would be."""
        with self._lock, self._ledger.locked(tenant):
            self._check_audio(tenant, audio_seconds)
            self._ledger.count(tenant, audio_seconds)
