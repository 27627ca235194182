"""What a registry's answer says, for the client's retry decisions and one-line errors:
distribution error bodies, Retry-After, and connection failures that are not HTTP at all."""

from __future__ import annotations

import http.client
from typing import Any

import requests


def path_of(url: str) -> str:
    """The path of ``url`` without its query (upload URLs carry state in it)."""
    after_scheme = url.split("://", 1)[-1]
    path = after_scheme.partition("/")[2].partition("?")[0]
    return f"/{path}"


def not_http(err: BaseException) -> bool:
    """Whether a connection error was the server answering something that is not HTTP
    (a bad status line, an overlong or endless header block), as opposed to a connection
    that failed or closed: only the latter is worth retrying."""
    stack: list[BaseException] = [err]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, http.client.HTTPException) and not isinstance(
            current, http.client.RemoteDisconnected | http.client.IncompleteRead
        ):
            return True
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


def short(err: Exception) -> str:
    text = str(err)
    if "Connection refused" in text:
        return "connection refused"
    if isinstance(err, requests.Timeout):
        return "timed out"
    return " ".join(text.split())[:200]


def retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _first_error(response: requests.Response) -> dict[str, Any]:
    """The first entry of a distribution error body (``{"errors": [...]}``), or ``{}``."""
    try:
        doc = response.json()
    except (ValueError, RecursionError):
        return {}
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return errors[0]
    return {}


def error_code(response: requests.Response) -> str:
    return _printable(_first_error(response).get("code", ""))


def error_detail(response: requests.Response) -> str:
    first = _first_error(response)
    if not first:
        return ""
    return f" ({_printable(first.get('code', ''))}: {_printable(first.get('message', ''))})"


def _printable(value: Any) -> str:
    """A registry-supplied value for a one-line message: one line, at most 200 characters."""
    return " ".join(str(value).split())[:200]
