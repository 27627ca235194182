"""The retry policy for registry operations, bounded by one total deadline.

Policy (documented in docs/oci-storage.md):
- An *operation* (upload one blob, put one manifest, get one manifest, ...) is retried when
  it fails with a connection error, a timeout, or an HTTP status in ``RETRYABLE_STATUS``
  (408, 425, 429, 500, 502, 503, 504). Every other status (401, 403, 404, 400, ...) fails at
  once: retrying cannot fix it.
- Up to ``attempts`` tries per operation, waiting ``base * 2**n`` seconds (capped at
  ``max_backoff``) times a random jitter in [0.5, 1.0] between tries, or the server's
  ``Retry-After`` when it is shorter than the cap.
- Nothing waits past the deadline: each HTTP exchange (headers and body, see
  :mod:`attest_step.oci.transport`) gets at most ``min(request_timeout, time left)`` and no
  sleep runs past the deadline. When the tries or the time are used up the last error is
  raised as a one-line RegistryUnavailable (exit 75: temporary, retry later).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from attest_step.errors import RegistryUnavailable

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class RetryableError(Exception):
    """A failure worth another try (network error, timeout, 5xx, 429)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Deadline:
    """A point in monotonic time after which no more registry work starts."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base: float = 0.25
    max_backoff: float = 8.0
    request_timeout: float = 30.0
    """Upper bound for one HTTP exchange (connect, headers and body), further capped by the
    deadline."""
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        wait: float = min(self.max_backoff, self.base * (2**attempt)) * self.rng.uniform(0.5, 1.0)
        if retry_after is not None and 0 <= retry_after <= self.max_backoff:
            wait = max(wait, retry_after)
        return wait


def run_with_retry(
    what: str,
    operation: Callable[[], T],
    *,
    deadline: Deadline,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``operation`` until it succeeds, fails for good, or the policy/deadline ends.

    ``operation`` raises RetryableError for transient failures and anything else
    (typically RegistryError) for permanent ones, which are raised at once.
    """
    last: RetryableError | None = None
    tries = 0
    for attempt in range(policy.attempts):
        if deadline.expired:
            break
        tries += 1
        try:
            return operation()
        except RetryableError as err:
            last = err
        wait = policy.backoff(attempt, last.retry_after)
        if attempt + 1 >= policy.attempts or wait >= deadline.remaining():
            break
        sleep(wait)
    reason = str(last) if last is not None else "no time left"
    spent = deadline.seconds - deadline.remaining()
    raise RegistryUnavailable(
        f"{what}: gave up after {tries} attempt(s) in {spent:.1f}s "
        f"(deadline {deadline.seconds:g}s): {reason}"
    )
