"""A small, strict PEM reader and writer (RFC 7468 textual encoding, LF or CRLF)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from typing import NamedTuple

_BLOCK = re.compile(
    rb"-----BEGIN (?P<label>[\x21-\x2c\x2e-\x7e](?:[- ]?[\x21-\x2c\x2e-\x7e])*)-----"
    rb"(?P<body>.*?)"
    rb"-----END (?P=label)-----",
    re.DOTALL,
)


class PemError(ValueError):
    """A PEM block is malformed."""


class Block(NamedTuple):
    label: str
    der: bytes
    text: bytes  # the block as it appeared, normalised to LF and a trailing newline


def blocks(data: bytes) -> list[Block]:
    """Every PEM block in ``data``, in order. Text outside blocks is ignored."""
    found: list[Block] = []
    for match in _BLOCK.finditer(data):
        label = match.group("label").decode("ascii")
        body = match.group("body")
        if b":" in body:
            raise PemError(f"PEM block {label!r} has headers, which are not supported")
        compact = b"".join(body.split())
        try:
            der = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError) as err:
            raise PemError(f"PEM block {label!r} is not valid base64") from err
        if not der:
            raise PemError(f"PEM block {label!r} is empty")
        found.append(Block(label, der, encode(label, der)))
    return found


def single_block(data: bytes, labels: Iterable[str]) -> Block | None:
    """The one block whose label is in ``labels``; None if absent, PemError if several."""
    wanted = set(labels)
    matching = [b for b in blocks(data) if b.label in wanted]
    if len(matching) > 1:
        raise PemError(f"more than one {' or '.join(sorted(wanted))} PEM block")
    return matching[0] if matching else None


def encode(label: str, der: bytes) -> bytes:
    """PEM-encode ``der`` with 64-column base64 lines, as Go and OpenSSL write it."""
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode(
        "ascii"
    )
