"""Errors of the transparency-log client (one line each, as every attest-step error)."""

from __future__ import annotations

from attest_step.errors import RegistryError, RegistryUnavailable


class LogUnavailable(RegistryUnavailable):
    """No complete answer from the log in time: connection errors, timeouts, 5xx/429 after
    the retries (exit 75: temporary; the signed output stays on disk for ``push --from``)."""


class LogRefused(RegistryError):
    """The log refused the entry (4xx) or answered something unusable (exit 2)."""
