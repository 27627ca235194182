"""One digest for a whole directory: SHA-256 over a canonical listing (format v1).

The exact bytes (docs/hashing.md has the full specification and a shell recipe)::

    "attest-step dir-digest v1\\n"
    then, for every regular file and symbolic link below the directory, in ascending order of
    the raw bytes of its relative path:
        MODE " " HEX " " PATH "\\0"

MODE is ``100755`` (regular file with the owner-execute bit), ``100644`` (other regular file)
or ``120000`` (symbolic link). HEX is the lowercase SHA-256 of the file's content, or of the
link's target text for a link (links are recorded, never followed). PATH is the raw bytes of
the path relative to the directory, ``/``-separated, never starting with ``./``. Directories
themselves (so empty directories) are not listed. Excluded entries are not listed.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING

from attest_step.walk import Entry

if TYPE_CHECKING:  # at run time, importing attest_step.hashing here would be circular
    from attest_step.hashing.file import Hashed

HEADER = b"attest-step dir-digest v1\n"
FORMAT_ANNOTATION = ("digestFormat", "attest-step-dir-digest-v1")
"""Annotation added to directory subjects so a verifier knows how to recompute them."""


def mode_field(mode: int) -> bytes:
    """The MODE column for an ``st_mode``."""
    if stat.S_ISLNK(mode):
        return b"120000"
    return b"100755" if mode & stat.S_IXUSR else b"100644"


def listing(entries: Sequence[Entry], hashed: Sequence[Hashed]) -> bytes:
    """The canonical listing of ``entries`` with their digests and modes (same order)."""
    rows = sorted(zip(entries, hashed, strict=True), key=lambda row: row[0].rel)
    parts = [HEADER]
    for entry, item in rows:
        parts.append(b"%s %s %s\0" % (mode_field(item.mode), item.hex.encode("ascii"), entry.rel))
    return b"".join(parts)


def dir_digest(entries: Sequence[Entry], hashed: Sequence[Hashed]) -> str:
    """Hex SHA-256 of :func:`listing`."""
    return hashlib.sha256(listing(entries, hashed)).hexdigest()
