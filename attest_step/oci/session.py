"""The HTTP session to one registry host: how attest-step talks to it, not what it asks.

The same steps as ``oras.provider.Registry``'s set-up (without importing that module, which
pulls in jsonschema and oras' schema code): oras' token-auth handshake (``oras.auth``) fed
the credentials of :mod:`attest_step.oci.docker_config`, basic auth when the registry asks
for it, cookies ignored. ``do_request`` replaces oras' (whose retry decorator sleeps 131 s
before giving up): it sends exact bytes, answers one 401 challenge and never retries on its
own; every exchange, oras' token requests included, goes through
:class:`attest_step.oci.transport.BoundedAdapter` (deadline, size limits). The registry API
itself is :class:`attest_step.oci.registry.RegistryClient`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import oras.auth
import oras.auth.utils
import requests

from attest_step.oci.blobstream import VerifiedStream
from attest_step.oci.docker_config import docker_config_path, load_docker_auths
from attest_step.oci.options import MAX_MANIFEST_BYTES
from attest_step.oci.transport import BoundedAdapter

__all__ = ["RegistrySession", "UnusableAnswer"]


class UnusableAnswer(Exception):
    """The registry (or its token service) answered something this client cannot use."""


def _realm(challenge: str) -> str | None:
    realm = oras.auth.utils.parse_auth_header(challenge).realm
    return realm if isinstance(realm, str) and realm.strip() else None


class RegistrySession:
    """The session and auth setup of ``oras.provider.Registry`` (same steps, without
    importing that module), with a do_request that has timeouts and no retry loop, and a
    session whose every exchange is bounded (:class:`BoundedAdapter`)."""

    def __init__(
        self,
        *,
        hostname: str,
        insecure: bool,
        tls_verify: bool | str,
        remaining: Callable[[], float],
    ) -> None:
        self.hostname = hostname
        self.prefix = "http" if insecure else "https"
        self._tls_verify = tls_verify
        self.session = requests.Session()
        # Every request of the session, oras' token requests included, is bounded in time
        # and size by the adapter (requests' documented way to change how requests are sent).
        self.adapter = BoundedAdapter(
            remaining=remaining, request_timeout=30.0, default_limit=MAX_MANIFEST_BYTES
        )
        self.session.mount("https://", self.adapter)
        self.session.mount("http://", self.adapter)
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
        data: dict[str, Any] | bytes | VerifiedStream | None = None,
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
        if challenge.lower().startswith("bearer") and not _realm(challenge):
            raise UnusableAnswer("answered 401 with a Bearer challenge that names no realm")
        try:
            hdrs, changed = self.auth.authenticate_request(response, hdrs)
        except (AttributeError, TypeError, KeyError, IndexError, ValueError) as err:
            if isinstance(err, requests.RequestException) and not isinstance(
                err, requests.exceptions.JSONDecodeError
            ):
                raise
            # oras reads the token service's answer as a JSON object without checking it.
            raise UnusableAnswer(
                f"the token service named in its Bearer challenge answered something that is "
                f"not a token ({type(err).__name__})"
            ) from err
        if not changed:
            return response
        return self._send(method=method, url=url, data=data, headers=hdrs, json=json, stream=stream)

    def _send(
        self,
        *,
        method: str,
        url: str,
        data: dict[str, Any] | bytes | VerifiedStream | None,
        headers: dict[str, str],
        json: dict[str, Any] | None,
        stream: bool,
    ) -> requests.Response:
        if isinstance(data, VerifiedStream) and data.tell():
            data.seek(0)  # sent again (after a 401): from the start
        response: requests.Response = self.session.request(
            method,
            url,
            data=data,
            json=json,
            headers=headers,
            stream=stream,
            verify=self._tls_verify,
            timeout=self.adapter.request_timeout,
            allow_redirects=True,
        )
        return response

    def load_credentials(self, host: str) -> None:
        """The docker config's credentials for ``host`` (else ``ORAS_USER``/``ORAS_PASS``)."""
        config = load_docker_auths(docker_config_path())
        auth = self.auth
        auth._auth_config = config
        if not auth._load_auth(host):
            user, password = os.environ.get("ORAS_USER"), os.environ.get("ORAS_PASS")
            if user and password:
                raw = f"{user}:{password}".encode()
                auth._basic_auth = base64.b64encode(raw).decode()
