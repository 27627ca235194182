"""A small registry client on top of the oras SDK: exact bytes, auth, TLS, bounded retries.

oras-py provides the token-auth handshake and the docker-config parsing (``oras.auth``);
this module sets up the HTTP session the way ``oras.provider.Registry`` does and replaces
its ``do_request`` (whose retry decorator sleeps 131 s before giving up) with one that
sends exact bytes, honours a deadline and never retries on its own: the retry policy lives
in :mod:`attest_step.oci.retry`, applied per operation.

Start-up: ``oras.provider`` is not imported (it pulls in jsonschema and oras' schema and
layout code, about 30 ms, none of which this client uses); ``oras.auth`` and requests are.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Callable
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any, NamedTuple

import oras.auth
import requests

from attest_step.errors import RegistryError
from attest_step.oci.options import RegistryOptions
from attest_step.oci.retry import (
    RETRYABLE_STATUS,
    Deadline,
    RetryableError,
    RetryPolicy,
    run_with_retry,
)
from attest_step.oci.types import (
    INDEX_TYPE,
    MANIFEST_ACCEPT,
    Descriptor,
    sha256_digest,
)

# go-containerregistry's mapping: the Docker Hub name is served by another host.
_API_HOSTS = {"index.docker.io": "registry-1.docker.io", "docker.io": "registry-1.docker.io"}
SMALL_BLOB = 16 << 10
"""Blobs up to this size are uploaded without a HEAD first (see RegistryClient.put_blob)."""


class Manifest(NamedTuple):
    """A manifest or index exactly as the registry served it."""

    data: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        doc = json.loads(self.data)
        if not isinstance(doc, dict):
            raise RegistryError(f"manifest {self.digest} is not a JSON object")
        return doc

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data))


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (docker's own rule)."""
    base = os.environ.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path.home() / ".docker" / "config.json"


def _normalise_host(key: str) -> str:
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return "index.docker.io" if host in ("docker.io", "registry-1.docker.io") else host


def load_docker_auths(path: Path) -> dict[str, Any]:
    """The config's ``auths``/``credHelpers``/``credsStore`` with hosts normalised."""
    if not path.is_file():
        return {"auths": {}, "credHelpers": {}, "credsStore": None}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise RegistryError(
            f"docker config {path}: cannot read it as JSON ({type(err).__name__}); "
            "fix the file or point DOCKER_CONFIG at a valid one"
        ) from err
    if not isinstance(doc, dict):
        raise RegistryError(f"docker config {path}: not a JSON object; fix the file")
    auths = {_normalise_host(k): v for k, v in (doc.get("auths") or {}).items()}
    helpers = {_normalise_host(k): v for k, v in (doc.get("credHelpers") or {}).items()}
    return {"auths": auths, "credHelpers": helpers, "credsStore": doc.get("credsStore")}


class _OrasRegistry:
    """The session and auth setup of ``oras.provider.Registry`` (same steps, without
    importing that module), with a do_request that has timeouts and no retry loop."""

    request_timeout: float = 30.0

    def __init__(self, *, hostname: str, insecure: bool, tls_verify: bool | str) -> None:
        self.hostname = hostname
        self.prefix = "http" if insecure else "https"
        self._tls_verify = tls_verify
        self.session = requests.Session()
        if not tls_verify:
            requests.packages.urllib3.disable_warnings()  # type: ignore[attr-defined]
        # As oras: ignore cookies (some registries take one as a sign of a browser).
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self.auth: Any = oras.auth.get_auth_backend(
            "token", self.session, insecure, tls_verify=tls_verify
        )

    def do_request(  # noqa: PLR0917 (oras' signature)
        self,
        url: str,
        method: str = "GET",
        data: dict[str, Any] | bytes | None = None,
        headers: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        hdrs = dict(headers or {})
        if isinstance(self.auth, oras.auth.TokenAuth) and self.auth.token is not None:
            hdrs.update(self.auth.get_auth_header())
        response = self._send(
            method=method, url=url, data=data, headers=hdrs, json=json, stream=stream
        )
        if response.status_code != 401:
            return response
        challenge = response.headers.get("Www-Authenticate", "")
        basic = getattr(self.auth, "_basic_auth", None)
        if challenge.lower().startswith("basic"):
            if not basic:
                return response
            hdrs["Authorization"] = f"Basic {basic}"
            return self._send(
                method=method, url=url, data=data, headers=hdrs, json=json, stream=stream
            )
        hdrs, changed = self.auth.authenticate_request(response, hdrs)
        if not changed:
            return response
        return self._send(method=method, url=url, data=data, headers=hdrs, json=json, stream=stream)

    def _send(
        self,
        *,
        method: str,
        url: str,
        data: dict[str, Any] | bytes | None,
        headers: dict[str, str],
        json: dict[str, Any] | None,
        stream: bool,
    ) -> requests.Response:
        response: requests.Response = self.session.request(
            method,
            url,
            data=data,
            json=json,
            headers=headers,
            stream=stream,
            verify=self._tls_verify,
            timeout=self.request_timeout,
            allow_redirects=True,
        )
        return response


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
        self._oras = _OrasRegistry(hostname=self._api_host, insecure=self._insecure, tls_verify=tls)
        self._no_referrers_api: set[str] = set()
        """Repositories for which the registry answered that it has no referrers API."""
        self._has_blob: set[tuple[str, str]] = set()
        """(repository, digest) of blobs this process uploaded or found there."""
        self._load_credentials()

    # --- plumbing -------------------------------------------------------------------
    def _load_credentials(self) -> None:
        config = load_docker_auths(docker_config_path())
        auth = self._oras.auth
        auth._auth_config = config
        if not auth._load_auth(self.host):
            user, password = os.environ.get("ORAS_USER"), os.environ.get("ORAS_PASS")
            if user and password:
                raw = f"{user}:{password}".encode()
                auth._basic_auth = base64.b64encode(raw).decode()

    def url(self, repository: str, suffix: str) -> str:
        return f"{self._scheme}://{self._api_host}/v2/{repository}/{suffix}"

    def _request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise RetryableError("the deadline passed")
        self._oras.request_timeout = max(0.05, min(self.policy.request_timeout, remaining))
        try:
            response: requests.Response = self._oras.do_request(
                url, method, data=data, headers=headers
            )
        except requests.exceptions.SSLError as err:
            raise RegistryError(
                f"{self.host}: TLS verification failed; pass --ca-cert with the registry's CA "
                "or --allow-insecure-registry for a plain-HTTP registry"
            ) from err
        except (requests.ConnectionError, requests.Timeout) as err:
            raise RetryableError(f"{self.host}: {_short(err)}") from err
        if response.status_code in RETRYABLE_STATUS:
            raise RetryableError(
                f"{method} {url} answered HTTP {response.status_code}",
                retry_after=_retry_after(response),
            )
        return response

    def _retry(self, what: str, operation: Any) -> Any:
        return run_with_retry(what, operation, deadline=self.deadline, policy=self.policy)

    def _fail(self, what: str, response: requests.Response) -> RegistryError:
        hint = ""
        if response.status_code in (401, 403):
            hint = "; log in (docker config at DOCKER_CONFIG or ~/.docker/config.json)"
        detail = _error_detail(response)
        return RegistryError(f"{what}: HTTP {response.status_code}{detail}{hint}")

    # --- manifests ------------------------------------------------------------------
    def get_manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest at a tag or digest, or None when the registry says 404."""
        url = self.url(repository, f"manifests/{reference}")
        what = f"get {self.host}/{repository}:{reference}"

        def op() -> Manifest | None:
            resp = self._request("GET", url, headers={"Accept": MANIFEST_ACCEPT})
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise self._fail(what, resp)
            media = resp.headers.get("Content-Type", "").split(";")[0].strip()
            data = resp.content
            digest = sha256_digest(data)
            if not media:
                media = str(json.loads(data).get("mediaType", ""))
            return Manifest(data=data, media_type=media, digest=digest)

        result: Manifest | None = self._retry(what, op)
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
            if resp.status_code == 400 and _error_code(resp) in _TRANSIENT_PUT_CODES:
                # distribution 2.8 rewrites link files in place: a concurrent writer can make
                # it read a half-written link and answer DIGEST_INVALID / BLOB_UNKNOWN.
                raise RetryableError(f"{what}: HTTP 400 {_error_code(resp)} (concurrent write)")
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
            resp = self._request("GET", url)
            if resp.status_code == 404:
                return []
            if resp.status_code != 200:
                raise self._fail(what, resp)
            return list(resp.json().get("tags") or [])

        result: list[str] = self._retry(what, op)
        return result

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]] | None:
        """The referrers API answer (index ``manifests``), or None when the API is absent."""
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
            return list(resp.json().get("manifests") or [])

        result: list[dict[str, Any]] | None = self._retry(what, op)
        if result is None:
            self._no_referrers_api.add(repository)
        return result

    # --- blobs ----------------------------------------------------------------------
    def get_blob(self, repository: str, digest: str, *, max_size: int = 64 << 20) -> bytes:
        url = self.url(repository, f"blobs/{digest}")
        what = f"get blob {self.host}/{repository}@{digest}"

        def op() -> bytes:
            resp = self._request("GET", url)
            if resp.status_code != 200:
                raise self._fail(what, resp)
            data = resp.content
            if len(data) > max_size:
                raise RegistryError(f"{what}: larger than {max_size} bytes")
            if sha256_digest(data) != digest:
                raise RegistryError(f"{what}: content does not match its digest")
            return data

        result: bytes = self._retry(what, op)
        return result

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
        if (repository, digest) in self._has_blob:
            return Descriptor("application/octet-stream", digest, len(data))
        what = f"upload blob {digest} to {self.host}/{repository}"
        ask_first = len(data) > SMALL_BLOB

        def op() -> None:
            if ask_first:
                head = self._request("HEAD", self.url(repository, f"blobs/{digest}"))
                if head.status_code == 200:
                    return
            start = self._request("POST", self.url(repository, "blobs/uploads/"))
            if start.status_code != 202:
                raise self._fail(what, start)
            location = start.headers.get("Location", "")
            if location.startswith("/"):
                location = f"{self._scheme}://{self._api_host}{location}"
            sep = "&" if "?" in location else "?"
            put = self._request(
                "PUT",
                f"{location}{sep}digest={digest}",
                data=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            if put.status_code != 201:
                raise self._fail(what, put)

        self._retry(what, op)
        self._has_blob.add((repository, digest))
        return Descriptor("application/octet-stream", digest, len(data))


class Background:
    """One registry call running on its own thread (its own pooled connection), so that
    independent round trips overlap; :meth:`wait` joins it and re-raises its error."""

    def __init__(self, call: Callable[[], object]) -> None:
        self._error: BaseException | None = None
        self._call = call
        self._thread = threading.Thread(target=self._run, name="attest-step-upload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._call()
        except BaseException as err:  # re-raised by wait()
            self._error = err

    def wait(self) -> None:
        self._thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error


def _short(err: Exception) -> str:
    text = str(err)
    if "Connection refused" in text:
        return "connection refused"
    if isinstance(err, requests.Timeout):
        return "timed out"
    return " ".join(text.split())[:200]


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


_TRANSIENT_PUT_CODES = frozenset({"DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"})


def _error_code(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return ""
    return str(errors[0].get("code", "")) if errors and isinstance(errors[0], dict) else ""


def _error_detail(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return ""
    if errors and isinstance(errors[0], dict):
        return f" ({errors[0].get('code', '')}: {errors[0].get('message', '')})"
    return ""
