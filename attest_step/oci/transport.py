"""Bounded HTTP exchanges: every registry response read within a size limit and a deadline.

requests' ``timeout`` bounds each socket operation, not an exchange: a server that sends one
byte at a time, in its headers or its body, keeps a request alive for as long as it likes,
and a response body is read whole, however large. :class:`BoundedAdapter` is a requests
transport adapter (the documented way to change how a Session sends: subclass
``requests.adapters.HTTPAdapter``, mount it) that closes both holes for every request the
session sends, including the Bearer-token requests oras makes on it without a timeout and
the redirects requests follows:

* the exchange (connect, request, response headers, body) runs on a worker thread, and the
  caller waits at most ``min(request timeout, time left before the deadline)`` for it;
  after that the caller gets :class:`DeadlinePassed` (the verb's deadline) or
  :class:`ExchangeTimeout` (this request's own bound, retried like any timeout), and the
  worker stops at its next read;
* the body is read with urllib3's ``read1`` (at most one socket read per call), the time
  and the byte count checked between reads, and refused with :class:`ResponseTooLarge` as
  soon as it passes the limit (or at once when ``Content-Length`` says it will);
* the response handed back holds the body in memory (``Response.raw`` is a file of those
  bytes), so nothing downstream can read past the limit; a blob download instead gives a
  file (``sink``) that the body of a 200 answer is written to as it arrives, so that memory
  does not grow with the blob.

The size limit is per request (:meth:`BoundedAdapter.limit`), on the caller's thread, so
that it follows the redirects and token requests made for that request.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO

import requests
import requests.adapters
import urllib3.exceptions

_READ_SIZE = 64 << 10
_HEADERS_ONLY = frozenset({"HEAD"})


class DeadlinePassed(Exception):
    """The verb's deadline passed before the exchange completed."""


class ResponseTooLarge(Exception):
    """The response body is larger than the limit for this request."""

    def __init__(self, limit: int, url: str) -> None:
        super().__init__(f"{url}: the answer is larger than {limit} bytes")
        self.limit = limit


class ExchangeTimeout(requests.exceptions.Timeout):
    """This request took longer than its own bound (not the verb's deadline): retryable."""


class _Exchange:
    """One request on its worker thread, as the caller and the worker both see it."""

    def __init__(self, sink: BinaryIO | None = None) -> None:
        self.sink = sink
        """Where a 200 answer's body goes (None: kept in memory)."""
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.abandoned = False
        self.raw: Any = None
        self.response: requests.Response | None = None
        self.error: BaseException | None = None

    def abandon(self) -> None:
        """The caller stopped waiting: stop the worker's reads now (urllib3's documented
        ``HTTPResponse.shutdown`` unblocks a read in progress on another thread)."""
        with self.lock:
            self.abandoned = True
            raw = self.raw
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.shutdown()


class BoundedAdapter(requests.adapters.HTTPAdapter):
    """An HTTPAdapter whose every exchange is bounded in time (``deadline``) and size."""

    def __init__(
        self,
        *,
        remaining: Callable[[], float],
        request_timeout: float,
        default_limit: int,
    ) -> None:
        super().__init__(max_retries=0)
        self._remaining = remaining
        self.request_timeout = request_timeout
        """Upper bound of one exchange; further capped by the deadline."""
        self.default_limit = default_limit
        self._local = threading.local()

    @contextlib.contextmanager
    def limit(self, max_bytes: int, *, sink: BinaryIO | None = None) -> Iterator[None]:
        """Limit the bodies of the exchanges this thread starts meanwhile to ``max_bytes``;
        with ``sink``, the body of a 200 answer is written there (from its start) instead
        of being held in memory, and the response's own body is empty."""
        previous = getattr(self._local, "limit", None), getattr(self._local, "sink", None)
        self._local.limit, self._local.sink = max_bytes, sink
        try:
            yield
        finally:
            self._local.limit, self._local.sink = previous

    def send(  # noqa: PLR0917 (requests' signature)
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        given = timeout[0] if isinstance(timeout, tuple) else timeout
        bound = min(given or self.request_timeout, self.request_timeout)
        remaining = self._remaining()
        if remaining <= 0:
            raise DeadlinePassed(f"{request.method} {request.url}")
        budget = min(bound, remaining)
        limit: int = getattr(self._local, "limit", None) or self.default_limit
        exchange = _Exchange(getattr(self._local, "sink", None))
        worker = threading.Thread(
            target=self._exchange,
            args=(exchange, request, budget, limit, verify, cert, proxies),
            name="attest-step-http",
            daemon=True,
        )
        worker.start()
        if not exchange.done.wait(budget):
            exchange.abandon()
            if self._remaining() <= 0:
                raise DeadlinePassed(f"{request.method} {request.url}")
            raise ExchangeTimeout(f"no complete answer within {budget:.1f}s", request=request)
        if exchange.error is not None:
            raise exchange.error
        assert exchange.response is not None
        return exchange.response

    def _exchange(  # noqa: PLR0917
        self,
        exchange: _Exchange,
        request: requests.PreparedRequest,
        budget: float,
        limit: int,
        verify: bool | str,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None,
        proxies: Mapping[str, str] | None,
    ) -> None:
        """Send ``request`` and read its body within ``limit`` bytes and ``budget`` seconds
        (runs on the worker thread; the result or error is left in ``exchange``)."""
        end = time.monotonic() + budget
        try:
            response = super().send(
                request, stream=True, timeout=budget, verify=verify, cert=cert, proxies=proxies
            )
            raw = response.raw
            with exchange.lock:
                exchange.raw = raw
                abandoned = exchange.abandoned
            if abandoned:
                raw.close()
                return
            try:
                body = _read_body(response, limit, end, exchange)
            except BaseException:
                raw.close()
                raise
            raw.release_conn()
            response.raw = io.BytesIO(body)
            exchange.response = response
        except BaseException as err:  # handed to the caller's thread
            exchange.error = err
        finally:
            exchange.done.set()


def _read_body(response: requests.Response, limit: int, end: float, exchange: _Exchange) -> bytes:
    url = str(response.url)
    if str(response.request.method).upper() in _HEADERS_ONLY:
        return b""
    declared = response.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        raise ResponseTooLarge(limit, url)
    raw = response.raw
    sink = exchange.sink if response.status_code == 200 else None
    if sink is not None:
        sink.seek(0)
        sink.truncate()
    chunks: list[bytes] = []
    total = 0
    while True:
        if exchange.abandoned or time.monotonic() >= end:
            raise ExchangeTimeout(f"{url}: the body did not arrive in time")
        try:
            chunk = raw.read1(_READ_SIZE, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError as err:
            raise requests.exceptions.ReadTimeout(err, request=response.request) from err
        except urllib3.exceptions.SSLError as err:
            raise requests.exceptions.SSLError(err, request=response.request) from err
        except urllib3.exceptions.DecodeError as err:
            raise requests.exceptions.ContentDecodingError(err, request=response.request) from err
        except (urllib3.exceptions.ProtocolError, OSError) as err:
            raise requests.exceptions.ConnectionError(err, request=response.request) from err
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise ResponseTooLarge(limit, url)
        if sink is None:
            chunks.append(chunk)
        else:
            sink.write(chunk)
