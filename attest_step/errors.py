"""Errors that reach the user as one line, never as a traceback.

Every message names the input that was wrong and says what to do. Messages must never
contain a password, key bytes or a whole secret file.
"""

from __future__ import annotations


class AttestStepError(Exception):
    """A failure the user can act on. Printed as ``attest-step: error: <message>``."""

    exit_code: int = 1


class UsageError(AttestStepError):
    """Bad flags or arguments (exit 2, as click does)."""

    exit_code = 2


class VerificationError(AttestStepError):
    """Something was checked and did not hold (exit 1)."""

    exit_code = 1


class RegistryError(AttestStepError):
    """The registry refused a request (4xx) or answered something unusable: not JSON, a
    malformed manifest or descriptor, more bytes than the limit, content that does not match
    its digest; or the registry address is invalid (exit 2: bad input)."""

    exit_code = 2


EXIT_REGISTRY_UNAVAILABLE = 75
"""sysexits' EX_TEMPFAIL: a temporary failure, worth retrying later."""


class RegistryUnavailable(RegistryError):
    """No complete answer from the registry in time: connection errors, timeouts, the
    ``--timeout`` deadline, HTTP 5xx/429 after the retries, writers racing past the retry
    bound (exit 75: temporary; signed output stays on disk for ``push --from``)."""

    exit_code = EXIT_REGISTRY_UNAVAILABLE
