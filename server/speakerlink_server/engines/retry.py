"""Retrying calls to a remote API: exponential backoff with full jitter, bounded twice.

Each failed attempt waits a random time in [0, min(cap, base * 2**n)] (full jitter, so many
clients that failed together do not retry together), or at least what the server asked for
in Retry-After. Retries stop after `attempts` calls or once the next wait would pass
`total_seconds` since the first call, whichever comes first: then the last error is raised.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from speakerlink_server.engines.base import Wait

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_seconds: float = 1.0
    cap_seconds: float = 30.0
    total_seconds: float = 180.0

    def backoff(self, failures: int, rng: random.Random) -> float:
        """The jittered wait after the `failures`-th failure (1 for the first)."""
        return rng.uniform(0.0, min(self.cap_seconds, self.base_seconds * 2 ** (failures - 1)))


Classify = Callable[[Exception], "float | None"]
"""classify(error): None when the error is final, else the least wait the server asked for (0 if none)."""


def call_with_retries(
    call: Callable[[], T],
    classify: Classify,
    policy: RetryPolicy,
    wait: Wait,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    rng = rng or random.Random()
    started = clock()
    failures = 0
    while True:
        try:
            return call()
        except Exception as exc:
            asked = classify(exc)
            failures += 1
            if asked is None or failures >= policy.attempts:
                raise
            delay = max(asked, policy.backoff(failures, rng))
            if clock() - started + delay > policy.total_seconds:
                raise
            wait(delay)


def retry_after_seconds(value: str | None, now: float | None = None) -> float:
    """Retry-After as seconds to wait: delta-seconds or an HTTP date; 0 when absent or unreadable."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
