"""What a JobEvent means to a caller: shared by the sync and async clients."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import grpc

from speakerlink.errors import (
    DeadlineExceededError,
    JobCancelledError,
    SpeakerlinkError,
    TransportError,
    UnavailableError,
    error_from_detail,
)
from speakerlink.v1 import speakerlink_pb2 as pb

# A stream that breaks with one of these after the job was accepted is worth reattaching to:
# the job lives on in the server, only the connection went away.
REATTACH_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.ABORTED}
)
REATTACH_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 4.0)
# How long a client keeps trying to reach a job's server again once its stream broke, before it
# gives up with UNREACHABLE: a restart (models loaded, jobs taken back) takes seconds; a minute
# of silence means it is not coming back soon, and the person waiting should hear so.
RECONNECT_SECONDS = 60.0
# Each try waits this long at most for the server to answer, so that on_retry hears of the
# wait every few seconds rather than once a minute.
RECONNECT_SLICE_S = 5.0
# A refusal the server says will pass (RetryInfo: too many streams, a full queue) is retried
# this many times at most, each after its hint doubled per attempt (up to 8x) with +-50 % jitter,
# so that many refused clients do not come back at once; never past the caller's deadline.
BUSY_ATTEMPTS = 10
# watch() and wait() first wait this long at most for the server to answer at all: a wrong
# address fails with UNREACHABLE instead of waiting out the job's whole deadline.
CONNECT_SECONDS = 10.0


def is_terminal(event: pb.JobEvent) -> bool:
    return event.WhichOneof("event") in ("result", "error", "cancelled")


def terminal_outcome(event: pb.JobEvent) -> pb.DiarizationResult:
    """The result of a terminal event, or the typed exception its error stands for."""
    kind = event.WhichOneof("event")
    if kind == "result":
        return event.result
    if kind == "error":
        raise error_from_detail(event.error, event.job_id)
    if kind == "cancelled":
        raise JobCancelledError(
            "the job was cancelled",
            code="JOB_CANCELLED",
            status=grpc.StatusCode.CANCELLED,
            recovery=("Submit the clips again if you still need the result.",),
            job_id=event.job_id,
        )
    raise ValueError(f"not a terminal event: {kind}")


# A refusal that asks for a longer wait (a tenant's daily audio quota: hours) is the caller's
# to handle: `error.retry_after` says how long.
MAX_BUSY_WAIT_S = 60.0


def backoff(attempt: int) -> float:
    return REATTACH_BACKOFF_S[min(attempt, len(REATTACH_BACKOFF_S) - 1)]


def busy_delay(error: SpeakerlinkError, attempt: int, deadline: Deadline) -> float | None:
    """Seconds to wait before retrying a refused call, or None when it is not to be retried."""
    if not 0 < error.retry_after <= MAX_BUSY_WAIT_S or attempt >= BUSY_ATTEMPTS:
        return None
    delay = error.retry_after * min(2**attempt, 8) * random.uniform(0.5, 1.5)
    left = deadline.remaining()
    return None if left is not None and delay >= left else delay


RetryCallback = Callable[[SpeakerlinkError, float], None]
"""Called with the error and the seconds until the next try, whenever a client waits to try
again: a busy server's refusal, or a job's event stream that broke (a server restarting)."""


def unreachable(target: str, seconds: float, job_id: str = "") -> UnavailableError:
    recovery = ["Start the server, or give its address as target= (or SPEAKERLINK_SERVER)."]
    if job_id:
        recovery.append("The job goes on once its server is back; follow it again then.")
    return UnavailableError(
        f"cannot reach the server at {target} (no answer in {seconds:.0f} s)",
        code="UNREACHABLE",
        status=grpc.StatusCode.UNAVAILABLE,
        troubleshooting=("Is the server running, and is this its address and port?",),
        recovery=tuple(recovery),
        job_id=job_id,
    )


class Reconnect:
    """When a job's stream broke: how long each try to reach the server again may wait, how
    long to pause between tries, and when to give up. Both clients follow this one policy and
    only do the waiting themselves.

    The window of `seconds` opens when the stream breaks (or at the first try) and closes with
    UNREACHABLE (or the last error, where the server did answer); an event heard closes it
    early, so a job whose connection drops now and then is followed for as long as it runs. A
    stream that is open but quiet (a queued job) is no failure and opens no window.
    """

    def __init__(self, target: str, job_id: str, seconds: float, deadline: Deadline) -> None:
        self._target = target
        self._job_id = job_id
        self._seconds = seconds
        self._deadline = deadline
        self._since: float | None = None
        self._attempt = 0

    def heard(self) -> None:
        """An event arrived: the server is there."""
        self._since = None
        self._attempt = 0

    def connect_seconds(self) -> float:
        """How long this try may wait for the channel to the server to be ready."""
        if self._since is None:
            self._since = time.monotonic()
        seconds = min(RECONNECT_SLICE_S, max(self._left(), 0.0))
        left = self._deadline.remaining()
        return seconds if left is None else min(seconds, left)

    def no_answer(self) -> UnavailableError:
        """The error of a try whose server did not answer within connect_seconds()."""
        return unreachable(self._target, time.monotonic() - (self._since or time.monotonic()), self._job_id)

    def failed(self, error: SpeakerlinkError) -> float:
        """Seconds to pause before the next try; raises once the window is spent."""
        if self._since is None:
            self._since = time.monotonic()
        if self._left() <= 0:
            if isinstance(error, TransportError):
                raise unreachable(self._target, self._seconds, self._job_id) from error
            raise error
        delay = min(backoff(self._attempt), self._left())
        self._attempt += 1
        return delay

    def _left(self) -> float:
        return self._seconds - (time.monotonic() - (self._since or time.monotonic()))


def connect_seconds(deadline: Deadline, reconnect_seconds: float) -> float:
    """How long to wait for the server to answer at all: CONNECT_SECONDS, or less where the
    deadline or the client's reconnect window leave less."""
    seconds = min(CONNECT_SECONDS, reconnect_seconds)
    left = deadline.remaining()
    return seconds if left is None else min(seconds, left)


def stream_lost(job_id: str) -> UnavailableError:
    return UnavailableError(
        "the event stream ended before the job finished",
        code="STREAM_LOST",
        status=grpc.StatusCode.UNAVAILABLE,
        recovery=(f"Reattach later with `speakerlink watch {job_id}`.",),
        job_id=job_id,
    )


class Deadline:
    """Turns one overall timeout into the remaining seconds for each call it spans."""

    def __init__(self, timeout: float | None) -> None:
        self._end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        if self._end is None:
            return None
        left = self._end - time.monotonic()
        if left <= 0:
            raise DeadlineExceededError(
                "the deadline passed before the job finished",
                code="DEADLINE_EXCEEDED",
                status=grpc.StatusCode.DEADLINE_EXCEEDED,
                recovery=("Give a longer timeout, or reattach to the job with watch().",),
            )
        return left
