"""Read an image's signatures from a lookaside published on a web server (http, https).

containers/image GETs ``BASE/<repository path>@sha256=<hex>/signature-<n>`` for n = 1, 2, ...
and stops at the first 404; any other status than 200 or 404, or a network error, is an
error (it does not skip a signature). This reader does the same, with every exchange
through :class:`attest_step.oci.transport.BoundedAdapter`: each body at most
MAX_SIGNATURE_BYTES, the whole read within one deadline (the verb's ``--timeout``), TLS
verified (``--ca-cert`` or the system store), at most MAX_REDIRECTS redirects per GET and
at most MAX_SIGNATURES signatures. No retries: a server that fails is reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from attest_step.errors import RegistryError, RegistryUnavailable
from attest_step.imageref import ImageRef
from attest_step.oci.retry import Deadline
from attest_step.oci.transport import (
    BoundedAdapter,
    DeadlinePassed,
    ExchangeTimeout,
    ResponseTooLarge,
)
from attest_step.pgp.lookaside import MAX_SIGNATURE_BYTES, MAX_SIGNATURES

MAX_REDIRECTS = 5
"""Redirects followed for one signature (a CDN's one or two, never a loop)."""
REQUEST_TIMEOUT = 30.0
"""Upper bound of one GET; the deadline of the whole read caps it further."""
USER_AGENT = "attest-step (lookaside reader)"
WEB_SCHEMES = ("http", "https")


class LookasideUnavailable(RegistryUnavailable):
    """The lookaside server gave no complete answer in time, or a 5xx/429 (exit 75)."""


class LookasideRefused(RegistryError):
    """The lookaside server's answer is unusable: a status other than 200/404, a body over
    the limit, a redirect loop, a TLS failure, not HTTP (exit 2)."""


@dataclass(frozen=True)
class WebLookaside:
    """An http(s) lookaside base URL, as a registries.d ``lookaside:`` names it."""

    url: str

    def __str__(self) -> str:
        return self.url

    def signature_url(self, image: ImageRef, index: int) -> str:
        """``signature-<index>`` (1-based) of ``image``: the path has no registry host."""
        algorithm, _, hexpart = image.digest.partition(":")
        base = self.url.rstrip("/")
        return f"{base}/{image.repository}@{algorithm}={hexpart}/signature-{index}"


def parse_web_lookaside(value: str) -> WebLookaside:
    """``value`` as a WebLookaside; ValueError unless it is an http(s) URL with a host and
    no query or fragment."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise ValueError(f"{value!r} is not a valid URL") from None
    if parts.scheme.lower() not in WEB_SCHEMES or not host:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: a lookaside URL has no ?query or #fragment")
    return WebLookaside(value)


@dataclass(frozen=True)
class WebReadOptions:
    timeout_seconds: float
    ca_cert: str | None = None


def _session(deadline: Deadline) -> requests.Session:
    session = requests.Session()
    session.max_redirects = MAX_REDIRECTS
    adapter = BoundedAdapter(
        remaining=deadline.remaining,
        request_timeout=REQUEST_TIMEOUT,
        default_limit=MAX_SIGNATURE_BYTES,
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _get(
    session: requests.Session, url: str, options: WebReadOptions, deadline: Deadline
) -> bytes | None:
    """The body of ``url`` (200), None for 404; anything else raises."""
    late = (
        f"--lookaside {url}: no complete answer before the deadline (--timeout "
        f"{deadline.seconds:g}s) passed; retry later or give a longer --timeout"
    )
    try:
        response = session.get(
            url,
            headers={"User-Agent": USER_AGENT},
            timeout=REQUEST_TIMEOUT,
            verify=options.ca_cert or True,
        )
    except (DeadlinePassed, ExchangeTimeout) as err:
        raise LookasideUnavailable(late) from err
    except ResponseTooLarge as err:
        raise LookasideRefused(
            f"--lookaside {url}: the answer is larger than {err.limit} bytes (no signature "
            "is); refused while it streamed in"
        ) from err
    except requests.exceptions.TooManyRedirects as err:
        raise LookasideRefused(
            f"--lookaside {url}: more than {MAX_REDIRECTS} redirects; fix the web server"
        ) from err
    except requests.exceptions.SSLError as err:
        raise LookasideRefused(
            f"--lookaside {url}: TLS verification failed; pass --ca-cert with the web server's CA"
        ) from err
    except requests.exceptions.Timeout as err:
        raise LookasideUnavailable(late) from err
    except requests.exceptions.ConnectionError as err:
        raise LookasideUnavailable(
            f"--lookaside {url}: cannot connect ({type(err).__name__}); retry later or "
            "check the URL"
        ) from err
    except requests.exceptions.RequestException as err:
        raise LookasideRefused(f"--lookaside {url}: {type(err).__name__}") from err
    status = response.status_code
    if status == 404:
        return None
    if status == 200:
        return response.content
    reason = f"HTTP {status} {response.reason or ''}".rstrip()
    if status >= 500 or status in (408, 425, 429):
        raise LookasideUnavailable(f"--lookaside {url}: {reason}; retry later")
    raise LookasideRefused(f"--lookaside {url}: {reason} (only 200, or 404 after the last)")


def read_web_signatures(
    base: WebLookaside, image: ImageRef, options: WebReadOptions
) -> list[tuple[str, bytes]]:
    """Every ``signature-<n>`` of ``image`` at ``base``, in order, up to the first 404."""
    deadline = Deadline(options.timeout_seconds)
    out: list[tuple[str, bytes]] = []
    with _session(deadline) as session:
        for index in range(1, MAX_SIGNATURES + 1):
            url = base.signature_url(image, index)
            data = _get(session, url, options, deadline)
            if data is None:
                return out
            out.append((url, data))
    raise LookasideRefused(
        f"--lookaside {base}: more than {MAX_SIGNATURES} signatures for {image.digest}; "
        "a lookaside that answers 200 for every signature-N is misconfigured"
    )
