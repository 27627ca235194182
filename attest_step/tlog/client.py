"""``POST /api/v2/log/entries`` to a Rekor v2 log, bounded in time and size, retried.

The exchange goes through :class:`attest_step.oci.transport.BoundedAdapter` (every
exchange bounded in time and bytes) and :func:`attest_step.oci.retry.run_with_retry`
(connection errors, timeouts, 408/425/429/5xx retried with backoff, at most ``attempts``
tries, nothing past the deadline). Out of tries: :class:`LogUnavailable` (exit 75). Any
other 4xx, or an answer that is not the entry of this envelope: :class:`LogRefused`
(exit 2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from attest_step.errors import RegistryUnavailable
from attest_step.oci.retry import (
    RETRYABLE_STATUS,
    Deadline,
    RetryableError,
    RetryPolicy,
    run_with_retry,
)
from attest_step.oci.transport import BoundedAdapter, DeadlinePassed, ResponseTooLarge
from attest_step.tlog import entry as tlog_entry
from attest_step.tlog import hashedrekord
from attest_step.tlog.errors import LogRefused, LogUnavailable

MAX_RESPONSE = 1 << 20
"""The most a log's answer may hold (1 MiB; an entry with its proof is ~3 KiB)."""
ENTRIES_PATH = "/api/v2/log/entries"
USER_AGENT = "attest-step (Rekor v2 client)"


@dataclass(frozen=True)
class LogTarget:
    url: str
    timeout_seconds: float = 60.0
    attempts: int = 4


def check_url(url: str, what: str = "--rekor-url") -> str:
    """``url`` without a trailing slash; ValueError unless it is an http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} {url!r}: not an http(s) URL")
    return url.rstrip("/")


def _message(response: requests.Response) -> str:
    try:
        doc = json.loads(response.content[:4096])
    except ValueError:
        return ""
    text = doc.get("message") if isinstance(doc, dict) else None
    return f": {str(text)[:200]}" if text else ""


class LogClient:
    def __init__(self, target: LogTarget) -> None:
        self.target = target
        self.deadline = Deadline(target.timeout_seconds)
        self.policy = RetryPolicy(attempts=target.attempts, request_timeout=30.0)
        self.session = requests.Session()
        adapter = BoundedAdapter(
            remaining=self.deadline.remaining,
            request_timeout=self.policy.request_timeout,
            default_limit=MAX_RESPONSE,
        )
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def _post(self, url: str, body: bytes) -> dict[str, Any]:
        try:
            response = self.session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
                timeout=self.policy.request_timeout,
                allow_redirects=False,
            )
        except DeadlinePassed as err:
            raise RetryableError(f"{url}: no answer before the deadline") from err
        except ResponseTooLarge as err:
            raise LogRefused(f"{err}; check --rekor-url") from err
        except requests.exceptions.RequestException as err:
            raise RetryableError(f"{url}: {type(err).__name__}") from err
        status = response.status_code
        if status in RETRYABLE_STATUS:
            raise RetryableError(f"{url}: HTTP {status}{_message(response)}")
        if status == 409:
            raise LogRefused(
                f"{url}: the log already has this entry (HTTP 409) but Rekor v2 cannot send "
                "it again; sign again to log a new signature"
            )
        if status not in (200, 201):
            raise LogRefused(
                f"{url}: HTTP {status}{_message(response)}; check --rekor-url and the key type"
            )
        try:
            doc = json.loads(response.content)
        except ValueError as err:
            raise LogRefused(f"{url}: the answer is not JSON; check --rekor-url") from err
        if not isinstance(doc, dict):
            raise LogRefused(f"{url}: the answer is not a JSON object; check --rekor-url")
        return doc

    def upload(self, envelope: dict[str, Any], public_key_der: bytes) -> dict[str, Any]:
        """Log ``envelope`` (signed by ``public_key_der``); return the checked entry."""
        signed = hashedrekord.of_envelope(envelope, public_key_der)
        body = json.dumps(hashedrekord.create_request(signed)).encode("utf-8")
        url = self.target.url + ENTRIES_PATH
        try:
            entry = run_with_retry(
                f"transparency log {self.target.url}",
                lambda: self._post(url, body),
                deadline=self.deadline,
                policy=self.policy,
            )
        except LogRefused:
            raise
        except RegistryUnavailable as err:
            raise LogUnavailable(str(err)) from err
        try:
            tlog_entry.check_response(entry, envelope)
        except ValueError as err:
            raise LogRefused(
                f"transparency log {self.target.url}: its answer is not a valid entry of the "
                f"signed envelope ({err}); check --rekor-url"
            ) from err
        return entry
