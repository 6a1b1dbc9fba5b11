"""The server's worker slots, shared by its job workers and its enrollments.

Jobs run on --workers threads; an enrollment embeds its audio while its caller waits, on the
call's own thread. Unbounded, enrollments ran beside every job at once and slowed them all
(three enrollments of 3 minutes made another tenant's 8 s job take 7 times as long). So both
take one of `workers` slots: a worker before it claims a job, an enrollment before it embeds.
An enrollment waiting goes before the next job, since its caller is on the line.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from speakerlink_server import errors

WAKE_S = 1.0  # how often a waiting enrollment checks that its caller is still there


class WorkerSlots:
    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting = 0  # enrollments waiting for a slot
        self._cond = threading.Condition()

    def try_take(self) -> bool:
        """A slot for a worker about to claim a job, unless none is free or an enrollment waits."""
        with self._cond:
            if self._free and not self._waiting:
                self._free -= 1
                return True
            return False

    def give(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()

    @contextlib.contextmanager
    def slot(self, is_active: Callable[[], bool]) -> Iterator[None]:
        """A slot for as long as the block runs, waited for while `is_active()` (the caller is
        still there); CANCELLED if the caller leaves first."""
        with self._cond:
            self._waiting += 1
            try:
                while not self._free:
                    if not is_active():
                        raise errors.caller_left()
                    self._cond.wait(WAKE_S)
                self._free -= 1
            finally:
                self._waiting -= 1
        try:
            yield
        finally:
            self.give()
