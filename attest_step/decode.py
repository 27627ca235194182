"""Strict decoding of the small documents and fields attest-step reads (keys, signature
payloads, log entries, trust roots): one error type of the caller's, naming what was read."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def b64_field(
    value: object, what: str, *, error: type[Exception] = ValueError, empty_ok: bool = True
) -> bytes:
    """``value`` decoded as standard, padded base64; ``error`` naming ``what`` when it is not
    a string (or is empty and ``empty_ok`` is false) or not valid base64."""
    if not isinstance(value, str) or not (value or empty_ok):
        raise error(f"{what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise error(f"{what} is not valid base64") from err


def json_object(
    data: bytes | str, what: str, *, error: type[Exception] = ValueError
) -> dict[str, Any]:
    """``data`` parsed as a JSON object; ``error`` naming ``what`` when it is not one."""
    try:
        doc = json.loads(data)
    except ValueError as err:
        raise error(f"{what} is not JSON") from err
    if not isinstance(doc, dict):
        raise error(f"{what} is not a JSON object")
    return doc
