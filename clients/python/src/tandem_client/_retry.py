"""Bounded retries with jittered exponential back-off."""

import dataclasses
import random
import time

import grpc


@dataclasses.dataclass
class RetryPolicy:
    """Retries a call that failed with one of `codes`, at most `max_attempts` attempts in all.

    The n-th wait is uniform in [0, min(max_backoff, initial_backoff * multiplier**n)] ("full
    jitter"), and no attempt starts after the call's deadline (timeout=) has passed.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.05
    max_backoff: float = 2.0
    multiplier: float = 2.0
    codes: frozenset = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})

    def backoff(self, attempt):
        return random.uniform(0, min(self.max_backoff, self.initial_backoff * self.multiplier**attempt))


NO_RETRY = RetryPolicy(max_attempts=1)


class Deadline:
    """The whole call's deadline across attempts (None = no deadline)."""

    def __init__(self, timeout):
        self.end = None if timeout is None else time.monotonic() + timeout

    def remaining(self):
        return None if self.end is None else max(0.0, self.end - time.monotonic())


def should_retry(policy, code, attempt, deadline, wait):
    if code not in policy.codes or attempt + 1 >= policy.max_attempts:
        return False
    rem = deadline.remaining()
    return rem is None or wait < rem
