"""The registry client: the distribution API calls attest-step makes (manifests, tags,
referrers, blobs), with exact bytes, bounded retries and bounded reads.

How it talks to the host (oras' token-auth handshake fed the docker config's credentials,
basic auth, no retry loop of its own) is :class:`attest_step.oci.session.RegistrySession`;
what an answer says (error bodies, Retry-After, answers that are not HTTP) is read by
:mod:`attest_step.oci.answers`; the retry policy lives in :mod:`attest_step.oci.retry`,
applied per operation.

Every request the session sends (ours, oras' token requests, redirects) goes through
:class:`attest_step.oci.transport.BoundedAdapter`: the verb's one deadline covers headers
and body, and a body is refused as soon as it passes its limit (manifests and indexes
4 MiB, blobs ``--max-blob-size``). Everything fetched by digest is checked against it
(:func:`attest_step.oci.documents.check_content`); documents are parsed strictly
(:mod:`attest_step.oci.documents`). Errors: :class:`RegistryError` (exit 2) when the
registry refused or answered something unusable, :class:`RegistryUnavailable` (exit 75)
when no complete answer came in time.

The layouts reach this client through the registry backend of the store interface
(:class:`attest_step.oci.registry_store.RegistryStore`), never directly.

Start-up: ``oras.provider`` is not imported (it pulls in jsonschema and oras' schema and
layout code, about 30 ms, none of which this client uses); ``oras.auth`` and requests are.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import requests

from attest_step.errors import RegistryError, RegistryUnavailable
from attest_step.oci.answers import (
    error_code,
    error_detail,
    not_http,
    path_of,
    retry_after,
    short,
)
from attest_step.oci.blobstream import (
    FetchOnRead,
    Readable,
    VerifiedStream,
    blob_descriptor,
    check_blob_size,
    verified,
)
from attest_step.oci.documents import (
    check_content,
    check_digest_syntax,
    index_entries,
    json_object,
    parse_tag_list,
)
from attest_step.oci.options import MAX_MANIFEST_BYTES, RegistryOptions
from attest_step.oci.retry import (
    RETRYABLE_STATUS,
    Deadline,
    RetryableError,
    RetryPolicy,
    run_with_retry,
)
from attest_step.oci.session import RegistrySession, UnusableAnswer
from attest_step.oci.store import Background, Manifest
from attest_step.oci.transport import (
    DeadlinePassed,
    ExchangeTimeout,
    ResponseTooLarge,
)
from attest_step.oci.types import (
    INDEX_TYPE,
    MANIFEST_ACCEPT,
    Descriptor,
    sha256_digest,
)

_TRANSIENT_PUT_CODES = frozenset({"DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"})
"""Distribution error codes of a manifest PUT that a concurrent write can cause (retried)."""

__all__ = [
    "SMALL_BLOB",
    "Background",
    "Manifest",
    "RegistryClient",
    "UnusableAnswer",
]

# go-containerregistry's mapping: the Docker Hub name is served by another host.
_API_HOSTS = {"index.docker.io": "registry-1.docker.io", "docker.io": "registry-1.docker.io"}
SMALL_BLOB = 16 << 10
"""Blobs up to this size are uploaded without a HEAD first (see RegistryClient.put_blob)."""


def _check_host(host: str) -> None:
    """Refuse a registry address whose port is not a TCP port (before any request)."""
    _, colon, port = host.rpartition(":")
    if colon and not host.endswith("]") and port.isdigit() and not 0 < int(port) < 65536:
        raise RegistryError(
            f"registry {host}: port {port} is not a TCP port (1-65535); fix the image reference"
        )


class RegistryClient:
    """Talks to one registry host; every call is bounded by the shared deadline."""

    def __init__(
        self,
        host: str,
        options: RegistryOptions,
        *,
        deadline: Deadline,
        policy: RetryPolicy | None = None,
    ) -> None:
        _check_host(host)
        self.host = host
        self.options = options
        self.deadline = deadline
        self.policy = policy or RetryPolicy()
        tls: bool | str = True
        if options.ca_cert:
            if not Path(options.ca_cert).is_file():
                raise RegistryError(
                    f"--ca-cert {options.ca_cert}: file not found; give a PEM CA bundle"
                )
            tls = options.ca_cert
        self._insecure = options.allow_insecure_registry
        self._scheme = "http" if self._insecure else "https"
        self._api_host = _API_HOSTS.get(host, host)
        self._oras = RegistrySession(
            hostname=self._api_host,
            insecure=self._insecure,
            tls_verify=tls,
            remaining=deadline.remaining,
        )
        self._no_referrers_api: set[str] = set()
        """Repositories for which the registry answered that it has no referrers API."""
        self._has_blob: set[tuple[str, str]] = set()
        """(repository, digest) of blobs this process uploaded or found there."""
        self._oras.load_credentials(host)

    # --- plumbing -------------------------------------------------------------------
    def url(self, repository: str, suffix: str) -> str:
        return f"{self._scheme}://{self._api_host}/v2/{repository}/{suffix}"

    def _request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | VerifiedStream | None = None,
        headers: dict[str, str] | None = None,
        max_bytes: int = MAX_MANIFEST_BYTES,
        sink: BinaryIO | None = None,
    ) -> requests.Response:
        """One exchange (with its redirects and token requests), its body at most
        ``max_bytes`` (written to ``sink`` when given and the answer is 200); transient
        failures raise RetryableError, the deadline and answers that retrying cannot fix
        raise at once. A streamed blob (``sink``, or a :class:`VerifiedStream` body) is
        bounded by the verb's deadline only, not by the per-request timeout."""
        where = f"{self.host}: {method} {path_of(url)}"
        adapter = self._oras.adapter
        adapter.request_timeout = self.policy.request_timeout
        if sink is not None or isinstance(data, VerifiedStream):
            adapter.request_timeout = max(self.policy.request_timeout, self.deadline.remaining())
        try:
            with adapter.limit(max_bytes, sink=sink):
                response: requests.Response = self._oras.do_request(
                    url, method, data=data, headers=headers
                )
        except DeadlinePassed as err:
            raise RegistryUnavailable(
                f"{where}: no complete answer before the deadline (--timeout "
                f"{self.deadline.seconds:g}s) passed; retry later or give a longer --timeout"
            ) from err
        except ResponseTooLarge as err:
            if max_bytes == MAX_MANIFEST_BYTES:
                limit = "the most a manifest, index or registry answer may have"
            else:
                limit = "--max-blob-size; raise it if the blob is genuine"
            raise RegistryError(
                f"{where}: the answer is larger than {err.limit} bytes ({limit}); "
                "refused while it streamed in"
            ) from err
        except UnusableAnswer as err:
            raise RegistryError(f"{where}: {err}") from err
        except requests.exceptions.SSLError as err:
            raise RegistryError(
                f"{self.host}: TLS verification failed; pass --ca-cert with the registry's CA "
                "or --allow-insecure-registry for a plain-HTTP registry"
            ) from err
        except (requests.ConnectionError, requests.Timeout) as err:
            if not_http(err):
                raise RegistryError(
                    f"{where}: the answer is not HTTP ({short(err)}); check the registry "
                    "address (and --allow-insecure-registry for plain HTTP)"
                ) from err
            if isinstance(err, ExchangeTimeout) and self.deadline.expired:
                raise RegistryUnavailable(
                    f"{where}: no complete answer before the deadline (--timeout "
                    f"{self.deadline.seconds:g}s) passed; retry later or give a longer --timeout"
                ) from err
            raise RetryableError(f"{self.host}: {short(err)}") from err
        except requests.RequestException as err:
            raise RegistryError(f"{where}: {short(err)}") from err
        if response.status_code in RETRYABLE_STATUS:
            raise RetryableError(
                f"{method} {url} answered HTTP {response.status_code}",
                retry_after=retry_after(response),
            )
        return response

    def _retry(self, what: str, operation: Any) -> Any:
        return run_with_retry(what, operation, deadline=self.deadline, policy=self.policy)

    def _fail(self, what: str, response: requests.Response) -> RegistryError:
        hint = ""
        if response.status_code in (401, 403):
            hint = "; log in (docker config at DOCKER_CONFIG or ~/.docker/config.json)"
        detail = error_detail(response)
        return RegistryError(f"{what}: HTTP {response.status_code}{detail}{hint}")

    # --- manifests ------------------------------------------------------------------
    def get_manifest(
        self, repository: str, reference: str, *, size: int | None = None
    ) -> Manifest | None:
        """The manifest at a tag or digest, or None when the registry says 404.

        At most 4 MiB, refused while it streams in. Fetched by digest, it must be the
        content of that digest, and of ``size`` bytes when the descriptor said so."""
        by_digest = ":" in reference
        sep = "@" if by_digest else ":"
        what = f"{self.host}/{repository}{sep}{reference}"
        if by_digest:
            check_digest_syntax(reference, what)
        if size is not None and size > MAX_MANIFEST_BYTES:
            raise RegistryError(
                f"{what}: its descriptor says {size} bytes, more than the {MAX_MANIFEST_BYTES} "
                "bytes a manifest may have; not fetched"
            )
        url = self.url(repository, f"manifests/{reference}")

        def op() -> Manifest | None:
            resp = self._request("GET", url, headers={"Accept": MANIFEST_ACCEPT})
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise self._fail(f"get {what}", resp)
            data = resp.content
            if by_digest:
                check_content(data, reference, what)
            digest = sha256_digest(data)
            served = resp.headers.get("Docker-Content-Digest", "").strip()
            if served.startswith("sha256:") and served != digest:
                raise RegistryError(
                    f"{what}: the registry says its digest is {served}, but the content "
                    f"served has {digest}; the registry or something between is "
                    "corrupting or substituting it"
                )
            if size is not None and len(data) != size:
                raise RegistryError(f"{what}: {len(data)} bytes served, its descriptor says {size}")
            media = resp.headers.get("Content-Type", "").split(";")[0].strip()
            if not media:
                media = str(json_object(data, what).get("mediaType") or "")
            return Manifest(data=data, media_type=media, digest=digest, source=what)

        result: Manifest | None = self._retry(f"get {what}", op)
        return result

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest at a tag (HEAD: no body), None when the registry says 404, ``""``
        when it does not say (no ``Docker-Content-Digest`` header).

        Only for cheap change detection: a 404 here is not confirmed (see
        :func:`attest_step.oci.rmw.read_confirmed`)."""
        url = self.url(repository, f"manifests/{reference}")
        what = f"check {self.host}/{repository}:{reference}"

        def op() -> str | None:
            resp = self._request("HEAD", url, headers={"Accept": MANIFEST_ACCEPT})
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise self._fail(what, resp)
            return resp.headers.get("Docker-Content-Digest") or ""

        result: str | None = self._retry(what, op)
        return result

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT exactly ``data`` at a tag or digest; return the digest the registry reports."""
        url = self.url(repository, f"manifests/{reference}")
        what = f"push {self.host}/{repository}:{reference}"
        expected = sha256_digest(data)

        def op() -> str:
            resp = self._request("PUT", url, data=data, headers={"Content-Type": media_type})
            if resp.status_code == 400 and error_code(resp) in _TRANSIENT_PUT_CODES:
                # distribution 2.8 rewrites link files in place: a concurrent writer can make
                # it read a half-written link and answer DIGEST_INVALID / BLOB_UNKNOWN.
                raise RetryableError(f"{what}: HTTP 400 {error_code(resp)} (concurrent write)")
            if resp.status_code not in (200, 201, 202):
                raise self._fail(what, resp)
            got = resp.headers.get("Docker-Content-Digest", expected)
            if got != expected:
                raise RegistryError(
                    f"{what}: the registry stored digest {got}, not {expected}; "
                    "it re-serialised the manifest"
                )
            return expected

        result: str = self._retry(what, op)
        return result

    def list_tags(self, repository: str) -> list[str]:
        url = self.url(repository, "tags/list")
        what = f"list tags of {self.host}/{repository}"

        def op() -> list[str]:
            resp = self._request("GET", url, max_bytes=self.options.max_blob_bytes)
            if resp.status_code == 404:
                return []
            if resp.status_code != 200:
                raise self._fail(what, resp)
            return parse_tag_list(resp.content, what)

        result: list[str] = self._retry(what, op)
        return result

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]] | None:
        """The referrers API answer (index ``manifests``, each a valid descriptor), or None
        when the API is absent."""
        if repository in self._no_referrers_api:  # asked before in this process
            return None
        url = self.url(repository, f"referrers/{digest}")
        what = f"list referrers of {self.host}/{repository}@{digest}"

        def op() -> list[dict[str, Any]] | None:
            resp = self._request("GET", url, headers={"Accept": INDEX_TYPE})
            if resp.status_code in (404, 405, 400):
                return None
            if resp.status_code != 200:
                raise self._fail(what, resp)
            if resp.headers.get("Content-Type", "").split(";")[0].strip() != INDEX_TYPE:
                return None
            return index_entries(resp.content, what)

        result: list[dict[str, Any]] | None = self._retry(what, op)
        if result is None:
            self._no_referrers_api.add(repository)
        return result

    # --- blobs ----------------------------------------------------------------------
    def get_blob(self, repository: str, digest: str, *, size: int | None = None) -> bytes:
        """The blob ``digest``, checked against it (and against ``size`` when given), at
        most ``--max-blob-size`` bytes, refused while it streams in."""
        limit = self.options.max_blob_bytes
        what = f"blob {self.host}/{repository}@{digest}"
        check_digest_syntax(digest, what)
        if size is not None and size > limit:
            raise RegistryError(
                f"{what}: its descriptor says {size} bytes, more than --max-blob-size "
                f"({limit} bytes); not fetched"
            )
        url = self.url(repository, f"blobs/{digest}")

        def op() -> bytes:
            resp = self._request("GET", url, max_bytes=limit)
            if resp.status_code != 200:
                raise self._fail(f"get {what}", resp)
            data = resp.content
            check_content(data, digest, what)
            if size is not None and len(data) != size:
                raise RegistryError(f"{what}: {len(data)} bytes served, its descriptor says {size}")
            return data

        result: bytes = self._retry(f"get {what}", op)
        return result

    @contextlib.contextmanager
    def open_blob(self, repository: str, digest: str, size: int) -> Iterator[VerifiedStream]:
        """The blob as a stream, fetched on the first read (a target that has the blob
        reads nothing, so nothing is downloaded): the body is written to a temporary file
        as it arrives (at most ``--max-blob-size``, within the deadline), then read back
        checked against ``digest`` and ``size``; the file is gone when the block ends."""
        limit = self.options.max_blob_bytes
        what = f"blob {self.host}/{repository}@{digest}"
        desc = blob_descriptor(digest, size)
        check_digest_syntax(digest, what)
        check_blob_size(desc, limit, what)
        url = self.url(repository, f"blobs/{digest}")

        def op() -> BinaryIO:
            spool = tempfile.TemporaryFile(prefix="attest-step-blob-")  # noqa: SIM115 (returned)
            try:
                resp = self._request("GET", url, max_bytes=limit, sink=spool)
                if resp.status_code != 200:
                    raise self._fail(f"get {what}", resp)
                spool.seek(0)
            except BaseException:
                spool.close()
                raise
            return spool

        download = FetchOnRead(lambda: self._retry(f"get {what}", op))
        try:
            yield VerifiedStream(download, desc, what)
        finally:
            download.close()

    def put_blob_stream(self, repository: str, desc: Descriptor, reader: Readable) -> str:
        """Upload the blob ``desc`` from ``reader`` (POST, then one PUT whose body is the
        stream, with its Content-Length), unless the registry has it. The body is checked
        as it is sent: a stream of another digest or size fails before its last byte goes
        out (and the registry checks the digest itself). A retry needs a rewindable
        reader (a file); any other is sent once. Up to ``SMALL_BLOB`` bytes: :meth:`put_blob`."""
        what = f"upload blob {desc.digest} to {self.host}/{repository}"
        check_blob_size(desc, self.options.max_blob_bytes, what)
        if (repository, desc.digest) in self._has_blob:
            return desc.digest
        body = verified(reader, desc, what)
        if desc.size <= SMALL_BLOB:  # read whole (checked) and sent as put_blob sends it
            return self.put_blob(repository, body.read_all()).digest
        self._upload(repository, desc.digest, body, ask_first=True)
        return desc.digest

    def _upload(
        self, repository: str, digest: str, body: bytes | VerifiedStream, *, ask_first: bool
    ) -> None:
        """HEAD (when ``ask_first``), POST, then PUT ``body`` (a stream: from its start)."""
        what = f"upload blob {digest} to {self.host}/{repository}"

        def op() -> None:
            if ask_first:
                head = self._request("HEAD", self.url(repository, f"blobs/{digest}"))
                if head.status_code == 200:
                    return
            start = self._request("POST", self.url(repository, "blobs/uploads/"))
            if start.status_code != 202:
                raise self._fail(what, start)
            if isinstance(body, VerifiedStream) and body.tell():
                body.seek(0)  # a retry: from the start, or a one-line error
            put = self._request(
                "PUT",
                self._upload_url(start, digest),
                data=body,
                headers={"Content-Type": "application/octet-stream"},
            )
            if put.status_code != 201:
                raise self._fail(what, put)

        self._retry(what, op)
        self._has_blob.add((repository, digest))

    def _upload_url(self, start: requests.Response, digest: str) -> str:
        """Where the upload session that ``start`` opened is closed with ``digest``."""
        location = start.headers.get("Location", "")
        if location.startswith("/"):
            location = f"{self._scheme}://{self._api_host}{location}"
        sep = "&" if "?" in location else "?"
        return f"{location}{sep}digest={digest}"

    def put_blob_background(self, repository: str, data: bytes) -> Background:
        """:meth:`put_blob` on another thread; call ``wait()`` before relying on the blob."""
        return Background(lambda: self.put_blob(repository, data))

    def put_blob(self, repository: str, data: bytes) -> Descriptor:
        """Upload ``data`` (monolithic POST + PUT) unless the registry has it already (or
        this client uploaded or found it before: then no request at all).

        Blobs up to ``SMALL_BLOB`` bytes (signature payloads, configs, bundles) are uploaded
        without asking first: a HEAD that finds nothing costs the round trip it would save
        when it finds the blob, and these are usually new. Uploading a blob the registry
        already has is harmless (same digest, same content)."""
        digest = sha256_digest(data)
        if (repository, digest) not in self._has_blob:
            self._upload(repository, digest, data, ask_first=len(data) > SMALL_BLOB)
        return Descriptor("application/octet-stream", digest, len(data))
