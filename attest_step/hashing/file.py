"""SHA-256 of one regular file, refusing to return a digest for a file that changed.

The file is opened with ``O_NOFOLLOW | O_NONBLOCK`` (a link swapped in fails, a FIFO swapped
in does not block). ``fstat`` on the open descriptor must show the same file (device, inode,
size, mtime_ns, ctime_ns) as the ``lstat`` of the walk, before the first byte and again after
the last one, and exactly ``size`` bytes must have been read.
"""

from __future__ import annotations

import hashlib
import os
import stat

from attest_step.errors import AttestStepError
from attest_step.walk import FileStat, shown

OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
BUFFER_SIZE = 1 << 20
"""Reusable read buffer per worker: large enough that hashlib releases the GIL per call."""


def _changed(path: bytes) -> AttestStepError:
    return AttestStepError(
        f"{shown(path)}: the file changed while it was being hashed; "
        "hash outputs only after every step that writes them has finished"
    )


def _same_file(before: FileStat, now: os.stat_result) -> bool:
    return (
        before.dev == now.st_dev
        and before.ino == now.st_ino
        and before.size == now.st_size
        and before.mtime_ns == now.st_mtime_ns
        and before.ctime_ns == now.st_ctime_ns
    )


def sha256_file(path: bytes, expected: FileStat, buffer: bytearray) -> str:
    """Hex SHA-256 of the regular file ``path`` whose walk-time lstat was ``expected``.

    ``buffer`` is reused between calls by the same worker (never shared between threads).
    """
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as err:
        raise AttestStepError(
            f"{shown(path)}: cannot open for hashing ({err.strerror or err}); "
            "check that it exists, is readable and is not a symbolic link"
        ) from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or not _same_file(expected, before):
            raise _changed(path)
        digest = hashlib.sha256()
        view = memoryview(buffer)
        remaining = before.st_size
        try:
            while remaining > 0:
                count = os.readv(fd, [view[: min(remaining, len(view))]])
                if count == 0:
                    raise _changed(path)
                digest.update(view[:count])
                remaining -= count
        except OSError as err:
            raise AttestStepError(f"{shown(path)}: read failed ({err.strerror or err})") from None
        finally:
            view.release()
        after = os.fstat(fd)
        if not _same_file(expected, after):
            raise _changed(path)
        return digest.hexdigest()
    finally:
        os.close(fd)
