"""Retries of calls to outside services: back-off, jitter, Retry-After, and their bounds."""

from __future__ import annotations

import random

import pytest
from speakerlink_server.engines.retry import RetryPolicy, call_with_retries, retry_after_seconds


class Flaky:
    """Fails `times` times with the given error, then returns "ok"; records when it was called."""

    def __init__(self, times: int, error: Exception) -> None:
        self.times, self.error, self.calls = times, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return "ok"


class Clock:
    def __init__(self) -> None:
        self.now, self.waits = 0.0, []

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_retries_back_off_with_jitter_and_honour_retry_after() -> None:
    policy = RetryPolicy(attempts=6, base_seconds=1.0, cap_seconds=4.0, total_seconds=100.0)
    clock = Clock()
    flaky = Flaky(4, ConnectionError())
    assert call_with_retries(flaky, lambda e: 0.0, policy, clock.wait, random.Random(1), lambda: clock.now) == "ok"
    assert flaky.calls == 5 and all(0 <= w <= min(4.0, 2**k) for k, w in enumerate(clock.waits))
    clock = Clock()
    call_with_retries(Flaky(2, ConnectionError()), lambda e: 7.0, policy, clock.wait, random.Random(1), lambda: clock.now)
    assert clock.waits == [7.0, 7.0]  # the server's Retry-After beats a shorter backoff


def test_retries_are_bounded_in_attempts_time_and_kind() -> None:
    clock = Clock()
    policy = RetryPolicy(attempts=3, base_seconds=0.1, total_seconds=100.0)
    flaky = Flaky(10, ConnectionError())
    with pytest.raises(ConnectionError):
        call_with_retries(flaky, lambda e: 0.0, policy, clock.wait, random.Random(1), lambda: clock.now)
    assert flaky.calls == 3
    flaky = Flaky(10, ConnectionError())  # Retry-After of 40 s twice would pass the 60 s budget
    with pytest.raises(ConnectionError):
        call_with_retries(flaky, lambda e: 40.0, RetryPolicy(total_seconds=60.0), clock.wait, clock=lambda: clock.now)
    assert flaky.calls == 2
    flaky = Flaky(10, ValueError())
    with pytest.raises(ValueError):
        call_with_retries(flaky, lambda e: None, policy, clock.wait)
    assert flaky.calls == 1


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) == 0.0 and retry_after_seconds("soon") == 0.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
