"""Parsing and checking of content digests (``sha256:<64 lowercase hex>``)."""

from __future__ import annotations

import re

from attest_step.errors import UsageError

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_SHA256_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


def is_sha256_hex(value: str) -> bool:
    """True when ``value`` is exactly 64 lowercase hex characters."""
    return SHA256_HEX.fullmatch(value) is not None


def parse_sha256_digest(value: str, *, what: str) -> str:
    """Return the hex part of ``sha256:<hex>``; raise a UsageError naming ``what`` otherwise.

    The format is the one Tekton Chains accepts for ``*IMAGE_DIGEST``: the algorithm
    ``sha256``, a colon and 64 lowercase hex digits, nothing else (surrounding white space
    is trimmed, as Chains does).
    """
    match = _SHA256_DIGEST.fullmatch(value.strip())
    if match is None:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise UsageError(
            f"{what}: {shown!r} is not a digest of the form sha256:<64 lowercase hex digits>"
        )
    return match.group(1)
